//! `listeners[]`, validated: addresses parsed, certificate and key files named (build checks
//! that they exist; the server reads them when it starts).

use super::validate::Validator;
use super::{file, ConfigError, Listener, ListenerTls};

impl Validator<'_> {
    pub(super) fn listener(&self, key: &str, l: file::Listener) -> Result<Listener, ConfigError> {
        let address = self.socket_addr(&format!("{key}.address"), &l.address)?;
        let tls = l.tls.map(|t| ListenerTls {
            cert: self.path(&t.cert),
            key: self.path(&t.key),
            http2: t.http2,
        });
        self.in_range(
            &format!("{key}.max_connections"),
            l.max_connections,
            1,
            1_000_000,
        )?;
        Ok(Listener {
            address,
            tls,
            max_connections: l.max_connections as usize,
        })
    }
}
