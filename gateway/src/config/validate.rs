//! [`validate`]: the file structs into a [`ValidConfig`], with no I/O at all (no file read,
//! no name resolved, no socket, nothing built); every error names the file and the key. The
//! sections have their own files: `server.rs`, `listeners.rs`, `routes.rs`, `upstreams.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use token_module::StoreUrl;

use super::{
    file, AdminSettings, BearerSettings, ConfigError, Listener, OAuthSection, StoreSettings,
    ValidConfig, STORE_URL_ENV,
};
use crate::identity::{IdentityHeader, IdentityHeaders};

/// Validates the parsed file `source`. `store_url_override` (normally the value of
/// [`STORE_URL_ENV`]) replaces `store.url`. Relative paths are joined to `source`'s
/// directory, and no more is done with them.
pub fn validate(
    f: file::File,
    source: &Path,
    store_url_override: Option<&str>,
) -> Result<ValidConfig, ConfigError> {
    let v = Validator {
        file: source,
        base: source.parent().unwrap_or(Path::new(".")),
    };
    let server = v.server(f.server)?;
    if f.listeners.is_empty() {
        return Err(v.err("listeners", "at least one listener is required"));
    }
    let listeners = f
        .listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| v.listener(&format!("listeners[{i}]"), l))
        .collect::<Result<Vec<_>, _>>()?;
    let admin = v.admin(f.admin)?;
    let store = v.store(f.store, store_url_override)?;
    let routes = f
        .routes
        .into_iter()
        .enumerate()
        .map(|(i, r)| v.route(&format!("routes[{i}]"), r, &server.path_rules))
        .collect::<Result<Vec<_>, _>>()?;
    let oauth = f.oauth.map(|mut oauth| {
        oauth
            .issuer
            .get_or_insert_with(|| default_issuer(&listeners));
        OAuthSection(oauth)
    });
    if oauth.is_none() {
        if let Some(i) = routes.iter().position(|r| r.auth.is_some()) {
            return Err(v.err(
                format!("routes[{i}].auth"),
                "bearer tokens need the `oauth` section (its keys and clients)",
            ));
        }
    }
    let bearer = BearerSettings {
        denylist_fail_open: f.bearer.denylist_fail_open,
        identity: v.identity_headers(f.bearer.identity_headers)?,
    };
    let oauth_rate_limit = f
        .oauth_rate_limit
        .map(|l| v.rate_limit("oauth_rate_limit", "oauth".into(), l))
        .transpose()?;
    Ok(ValidConfig {
        source: source.to_path_buf(),
        server,
        listeners,
        admin,
        store,
        routes,
        oauth,
        bearer,
        oauth_rate_limit,
    })
}

/// The gateway's public base URL when `oauth.issuer` is not set: the first TLS listener's
/// port on `localhost` (`https://localhost:6882` for the demo), else the first listener's.
fn default_issuer(listeners: &[Listener]) -> String {
    let tls = listeners.iter().find(|l| l.tls.is_some());
    match tls.or(listeners.first()) {
        Some(l) if l.tls.is_some() => format!("https://localhost:{}", l.address.port()),
        Some(l) => format!("http://localhost:{}", l.address.port()),
        None => "https://localhost".to_string(),
    }
}

/// Checks file structs; every error names `file` and the key. The sections' checks are
/// methods of this, each in its section's file.
pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    /// The directory relative paths are joined to.
    pub(super) base: &'a Path,
}

impl Validator<'_> {
    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// A path of the file, relative ones joined to the file's directory; its shape only.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        self.base.join(p)
    }

    /// Every limit is bounded: an absurd value is a `--check` error, never an overflow at
    /// request time.
    pub(super) fn in_range(
        &self,
        key: &str,
        value: u64,
        min: u64,
        max: u64,
    ) -> Result<(), ConfigError> {
        if value < min {
            return Err(self.err(key, format!("must be at least {min}")));
        }
        if value > max {
            return Err(self.err(key, format!("must be at most {max}")));
        }
        Ok(())
    }

    pub(super) fn method(&self, key: &str, m: &str) -> Result<http::Method, ConfigError> {
        let upper = m.to_ascii_uppercase();
        http::Method::from_bytes(upper.as_bytes())
            .map_err(|_| self.err(key, format!("`{m}` is not an HTTP method")))
    }

    pub(super) fn socket_addr(&self, key: &str, a: &str) -> Result<SocketAddr, ConfigError> {
        a.parse()
            .map_err(|_| self.err(key, format!("`{a}` is not an ip:port address")))
    }

    fn admin(&self, a: file::Admin) -> Result<AdminSettings, ConfigError> {
        let address = a
            .address
            .map(|a| self.socket_addr("admin.address", &a))
            .transpose()?;
        let token_file = a.token_file.map(|f| self.path(&f));
        if address.is_some_and(|a| !a.ip().is_loopback()) && token_file.is_none() {
            return Err(self.err(
                "admin.token_file",
                "required when admin.address is not a loopback address: anyone who reaches the listener could reload",
            ));
        }
        Ok(AdminSettings {
            address,
            token_file,
        })
    }

    fn store(
        &self,
        s: file::Store,
        store_url_override: Option<&str>,
    ) -> Result<StoreSettings, ConfigError> {
        let (key, url) = match store_url_override {
            Some(url) => (format!("store.url (from {STORE_URL_ENV})"), url.to_string()),
            None => ("store.url".to_string(), s.url),
        };
        let url = StoreUrl::parse(&url).map_err(|e| self.err(key, e.to_string()))?;
        self.in_range("store.timeout_ms", s.timeout_ms, 1, 60_000)?;
        Ok(StoreSettings {
            url,
            key_prefix: s.key_prefix,
            timeout: std::time::Duration::from_millis(s.timeout_ms),
        })
    }

    fn identity_headers(&self, h: file::IdentityHeaders) -> Result<IdentityHeaders, ConfigError> {
        let name = |field: &str, value: &str| {
            IdentityHeader::parse(value).ok_or_else(|| {
                self.err(
                    format!("bearer.identity_headers.{field}"),
                    format!("`{value}` is not a header name"),
                )
            })
        };
        Ok(IdentityHeaders {
            user_id: name("user_id", &h.user_id)?,
            user_type: name("user_type", &h.user_type)?,
            client_id: name("client_id", &h.client_id)?,
            scopes: name("scopes", &h.scopes)?,
        })
    }
}
