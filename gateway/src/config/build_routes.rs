//! Build, for routes: the CA bundles read, upstream names resolved, the balancer and the rate
//! limit built, or kept from the route of the same name in the configuration in force.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use pingora::utils::tls::{parse_x509, WrappedX509};

use super::build::{rate_limit, Builder};
use super::{ConfigError, RouteSettings, UpstreamAddress, UpstreamTlsSettings};
use crate::balancer::{Balancer, BalancerSettings, Resolver, UpstreamName, UpstreamTls};
use crate::routes::Route;

impl Builder<'_> {
    /// Route `key` as `r` says; `kept` is the route of that name in force, whose balancer and
    /// rate limit are taken over when they are the same.
    pub(super) fn route(
        &self,
        key: &str,
        r: &RouteSettings,
        resolver: &Resolver,
        kept: Option<&Route>,
    ) -> Result<Route, ConfigError> {
        let tls = r
            .tls
            .as_ref()
            .map(|t| self.upstream_tls(&format!("{key}.tls.ca"), t))
            .transpose()?;
        let mut names = Vec::with_capacity(r.upstreams.len());
        let mut resolved = Vec::with_capacity(r.upstreams.len());
        for (i, upstream) in r.upstreams.iter().enumerate() {
            resolved.push(self.resolve(&format!("{key}.upstreams[{i}]"), upstream)?);
            let sni = tls
                .as_ref()
                .map(|t| t.sni.as_ref().unwrap_or(&upstream.host));
            names.push(UpstreamName {
                host: upstream.host.clone(),
                port: upstream.port,
                weight: upstream.weight,
                sni: sni.cloned().unwrap_or_default(),
            });
        }
        let settings = BalancerSettings {
            health_check: r.health_check.clone(),
            eject_after_failures: r.eject_after_failures,
            ejection: r.ejection,
            dns_refresh: r.dns_refresh,
            tls: tls.clone(),
        };
        let nameserver = self.valid.server.dns_resolver;
        let balancer = match kept.map(|k| &k.balancer) {
            Some(kept) if kept.is_built_from(&names, &settings, nameserver) => Arc::clone(kept),
            _ => Arc::new(Balancer::new(
                names,
                resolved,
                (resolver.clone(), nameserver),
                settings,
            )),
        };
        let kept_limit = kept.and_then(|k| k.rate_limit.as_ref());
        Ok(Route {
            name: r.name.clone(),
            path_prefix: r.path_prefix.clone(),
            host: r.host.clone(),
            methods: r.methods.clone(),
            balancer,
            tls,
            retry_idempotent: r.retry_idempotent,
            connect_timeout: r.connect_timeout,
            read_timeout: r.read_timeout,
            write_timeout: r.write_timeout,
            auth: r.auth.clone(),
            rate_limit: r.rate_limit.as_ref().map(|l| rate_limit(l, kept_limit)),
            cors: r.cors.clone(),
            keep_headers: r.keep_headers.clone(),
            metrics: Default::default(),
        })
    }

    /// An upstream's addresses now: an address is itself; a name is resolved by the system
    /// resolver, and one that does not resolve is an error. With a DNS server of its own
    /// (`server.dns_resolver`) a name has no address before the first query.
    fn resolve(
        &self,
        key: &str,
        upstream: &UpstreamAddress,
    ) -> Result<Vec<SocketAddr>, ConfigError> {
        if let Ok(ip) = upstream.host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, upstream.port)]);
        }
        if self.valid.server.dns_resolver.is_some() {
            return Ok(Vec::new());
        }
        let found: Vec<SocketAddr> = (upstream.host.as_str(), upstream.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default();
        if found.is_empty() {
            return Err(self.err(key, format!("`{upstream}` does not resolve to an address")));
        }
        Ok(found)
    }

    fn upstream_tls(&self, key: &str, t: &UpstreamTlsSettings) -> Result<UpstreamTls, ConfigError> {
        let ca = t.ca.as_ref().map(|p| self.ca_file(key, p)).transpose()?;
        Ok(UpstreamTls {
            sni: t.sni.clone(),
            verify: t.verify,
            ca_pool_key: ca.as_ref().map_or(0, |cas| ca_fingerprint(cas)),
            ca,
        })
    }

    /// Reads a PEM bundle of CA certificates, each checked to be a well-formed X.509 one.
    fn ca_file(
        &self,
        key: &str,
        path: &std::path::Path,
    ) -> Result<Arc<[WrappedX509]>, ConfigError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        self.existing_file(key, path)?;
        let mut cas = Vec::new();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| self.err(key, format!("cannot read `{}`: {e}", path.display())))?;
        for cert in certs {
            let der =
                cert.map_err(|e| self.err(key, format!("bad PEM in `{}`: {e}", path.display())))?;
            if x509_parser::parse_x509_certificate(der.as_ref()).is_err() {
                return Err(self.err(
                    key,
                    format!("`{}` holds a malformed certificate", path.display()),
                ));
            }
            cas.push(WrappedX509::new(der.as_ref().to_vec(), parse_x509));
        }
        if cas.is_empty() {
            return Err(self.err(key, format!("`{}` holds no certificate", path.display())));
        }
        Ok(cas.into())
    }
}

/// A non-zero fingerprint of a CA bundle, for connection-pool keys.
fn ca_fingerprint(cas: &[WrappedX509]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for ca in cas {
        ca.borrow_raw_cert().hash(&mut hasher);
    }
    hasher.finish().max(1)
}
