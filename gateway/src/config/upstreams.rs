//! A route's upstreams, validated: `host:port` syntax and weights, TLS settings with the CA
//! file named, health checks. Names are resolved, and CA files read, by build.

use std::time::Duration;

use super::validate::Validator;
use super::{file, ConfigError, UpstreamAddress, UpstreamTlsSettings};
use crate::balancer::HealthCheckSettings;

impl Validator<'_> {
    /// `{route}.upstreams`: at least one, each `host:port` with a weight in range.
    pub(super) fn upstreams(
        &self,
        route: &str,
        entries: &[file::UpstreamEntry],
    ) -> Result<Vec<UpstreamAddress>, ConfigError> {
        if entries.is_empty() {
            return Err(self.err(
                format!("{route}.upstreams"),
                "at least one upstream is required",
            ));
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let key = format!("{route}.upstreams[{i}]");
                let (address, weight) = match entry {
                    file::UpstreamEntry::Address(a) => (a.as_str(), 1),
                    file::UpstreamEntry::Weighted(w) => (w.address.as_str(), w.weight),
                };
                self.in_range(&format!("{key}.weight"), weight, 1, 1000)?;
                self.upstream(&key, address, weight as usize)
            })
            .collect()
    }

    /// `host:port`, `[v6]:port` or `v4:port`; the host is not resolved here.
    fn upstream(
        &self,
        key: &str,
        address: &str,
        weight: usize,
    ) -> Result<UpstreamAddress, ConfigError> {
        let not_host_port = || self.err(key, format!("`{address}` is not host:port"));
        let (host, port) = address.rsplit_once(':').ok_or_else(not_host_port)?;
        let port: u16 = port.parse().map_err(|_| not_host_port())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(not_host_port());
        }
        Ok(UpstreamAddress { host, port, weight })
    }

    pub(super) fn upstream_tls(&self, t: file::UpstreamTls) -> UpstreamTlsSettings {
        UpstreamTlsSettings {
            sni: t.sni,
            verify: t.verify,
            ca: t.ca.map(|ca| self.path(&ca)),
        }
    }

    pub(super) fn health_check(
        &self,
        key: &str,
        h: file::HealthCheck,
    ) -> Result<HealthCheckSettings, ConfigError> {
        self.in_range(&format!("{key}.interval_ms"), h.interval_ms, 100, 3_600_000)?;
        self.in_range(&format!("{key}.timeout_ms"), h.timeout_ms, 10, 60_000)?;
        self.in_range(&format!("{key}.healthy_after"), h.healthy_after, 1, 100)?;
        self.in_range(&format!("{key}.unhealthy_after"), h.unhealthy_after, 1, 100)?;
        if let Some(path) = &h.http_path {
            if !path.starts_with('/') || path.parse::<http::Uri>().is_err() {
                return Err(self.err(
                    format!("{key}.http_path"),
                    format!("`{path}` is not an absolute path"),
                ));
            }
        }
        Ok(HealthCheckSettings {
            http_path: h.http_path,
            interval: Duration::from_millis(h.interval_ms),
            timeout: Duration::from_millis(h.timeout_ms),
            healthy_after: h.healthy_after as usize,
            unhealthy_after: h.unhealthy_after as usize,
        })
    }
}
