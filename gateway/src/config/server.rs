//! The `server` section, validated: limits in range, names parsed, paths named (build looks
//! at the directories they are in).

use std::path::PathBuf;
use std::time::Duration;

use super::validate::Validator;
use super::{file, ConfigError, ConnectionTimeouts, RequestLimits, ServerSettings};
use crate::access_log::Destination;
use crate::client_address::{ForwardedHeader, TrustedProxies};
use crate::forwarding::UpstreamForwarded;
use crate::normalize::{EscapedSlashes, PathParameters, PathRules};
use crate::routes::PathCase;

impl Validator<'_> {
    pub(super) fn server(&self, s: file::Server) -> Result<ServerSettings, ConfigError> {
        if s.threads == 0 || s.threads > 1024 {
            return Err(self.err("server.threads", "must be between 1 and 1024"));
        }
        for (key, value, min, max) in [
            ("grace_period_seconds", s.grace_period_seconds, 0, 3600),
            (
                "graceful_shutdown_timeout_seconds",
                s.graceful_shutdown_timeout_seconds,
                0,
                3600,
            ),
        ] {
            self.in_range(&format!("server.{key}"), value, min, max)?;
        }
        let log_json = match s.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(self.err(
                    "server.log_format",
                    format!("`{other}` is not `text` or `json`"),
                ))
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&s.log_level).is_err() {
            return Err(self.err(
                "server.log_level",
                format!("`{}` is not a log filter", s.log_level),
            ));
        }
        let request_limits = self.request_limits(&s)?;
        let connection_timeouts = self.connection_timeouts(&s)?;
        let trusted_proxies = self.trusted_proxies(&s)?;
        let path_rules = path_rules(&s);
        let upstream_forwarded = match s.upstream_forwarded_header {
            file::UpstreamForwardedHeader::XForwardedFor => UpstreamForwarded::XForwardedFor,
            file::UpstreamForwardedHeader::Forwarded => UpstreamForwarded::Forwarded,
            file::UpstreamForwardedHeader::None => UpstreamForwarded::None,
        };
        let access_log = match s.access_log.as_str() {
            "off" => Destination::Off,
            "stderr" => Destination::Stderr,
            path => Destination::File(self.path(path)),
        };
        let dns_resolver = s
            .dns_resolver
            .as_deref()
            .map(|a| self.socket_addr("server.dns_resolver", a))
            .transpose()?;
        Ok(ServerSettings {
            dns_resolver,
            access_log,
            threads: s.threads,
            grace_period: Duration::from_secs(s.grace_period_seconds),
            graceful_shutdown_timeout: Duration::from_secs(s.graceful_shutdown_timeout_seconds),
            log_level: s.log_level,
            log_json,
            upgrade_sock: PathBuf::from(s.upgrade_sock),
            pid_file: PathBuf::from(s.pid_file),
            error_log: s.error_log.map(PathBuf::from),
            request_limits,
            connection_timeouts,
            trusted_proxies,
            upstream_forwarded,
            path_case: match s.path_case {
                file::PathCase::Guarded => PathCase::Guarded,
                file::PathCase::Sensitive => PathCase::Sensitive,
                file::PathCase::Insensitive => PathCase::Insensitive,
            },
            path_rules,
        })
    }

    fn trusted_proxies(&self, s: &file::Server) -> Result<TrustedProxies, ConfigError> {
        let header = match s.forwarded_header {
            file::ForwardedHeader::XForwardedFor => ForwardedHeader::XForwardedFor,
            file::ForwardedHeader::Forwarded => ForwardedHeader::Forwarded,
        };
        TrustedProxies::parse(&s.trusted_proxies, header)
            .map_err(|e| self.err("server.trusted_proxies", e))
    }

    fn request_limits(&self, s: &file::Server) -> Result<RequestLimits, ConfigError> {
        self.in_range("server.max_uri_bytes", s.max_uri_bytes, 256, 1 << 20)?;
        self.in_range("server.max_header_count", s.max_header_count, 8, 1000)?;
        // Pingora refuses a head larger than 1 MiB before any of this is looked at.
        self.in_range("server.max_header_bytes", s.max_header_bytes, 1024, 1 << 20)?;
        Ok(RequestLimits {
            max_uri_bytes: s.max_uri_bytes as usize,
            max_header_count: s.max_header_count as usize,
            max_header_bytes: s.max_header_bytes as usize,
        })
    }

    fn connection_timeouts(&self, s: &file::Server) -> Result<ConnectionTimeouts, ConfigError> {
        for (key, value, max) in [
            ("header_timeout_ms", s.header_timeout_ms, 600_000),
            ("keepalive_timeout_ms", s.keepalive_timeout_ms, 3_600_000),
            ("body_timeout_ms", s.body_timeout_ms, 600_000),
        ] {
            self.in_range(&format!("server.{key}"), value, 100, max)?;
        }
        Ok(ConnectionTimeouts {
            header: Duration::from_millis(s.header_timeout_ms),
            keepalive: Duration::from_millis(s.keepalive_timeout_ms),
            body: Duration::from_millis(s.body_timeout_ms),
        })
    }
}

fn path_rules(s: &file::Server) -> PathRules {
    PathRules {
        merge_slashes: s.merge_slashes,
        escaped_slashes: match s.escaped_slashes {
            file::EscapedSlashes::Reject => EscapedSlashes::Reject,
            file::EscapedSlashes::Keep => EscapedSlashes::Keep,
        },
        path_parameters: match s.path_parameters {
            file::PathParameters::Reject => PathParameters::Reject,
            file::PathParameters::Keep => PathParameters::Keep,
        },
    }
}
