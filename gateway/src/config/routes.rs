//! `routes[]`, validated: the prefix in normal form, methods, timeouts, `auth`, `rate_limit`,
//! `cors`, `keep_headers`; the upstreams in `upstreams.rs`.

use std::time::Duration;

use super::validate::Validator;
use super::{file, ConfigError, RateLimitSettings, RouteSettings};
use crate::cors::CorsPolicy;
use crate::normalize::{normalize_host, normalize_path, PathRules};
use crate::rate_limit::RateKey;
use crate::routes::RouteAuth;

impl Validator<'_> {
    pub(super) fn route(
        &self,
        key: &str,
        r: file::Route,
        rules: &PathRules,
    ) -> Result<RouteSettings, ConfigError> {
        self.path_prefix(&format!("{key}.path_prefix"), &r.path_prefix, rules)?;
        let methods = r
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| self.method(&format!("{key}.methods[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = r.tls.map(|t| self.upstream_tls(t));
        let upstreams = self.upstreams(key, &r.upstreams)?;
        for (field, value, min, max) in [
            ("eject_after_failures", r.eject_after_failures, 0, 1000),
            ("ejection_ms", r.ejection_ms, 1, 3_600_000),
            ("dns_refresh_ms", r.dns_refresh_ms, 100, 86_400_000),
        ] {
            self.in_range(&format!("{key}.{field}"), value, min, max)?;
        }
        let health_check = r
            .health_check
            .map(|h| self.health_check(&format!("{key}.health_check"), h))
            .transpose()?;
        for (field, ms) in [
            ("connect_timeout_ms", r.connect_timeout_ms),
            ("read_timeout_ms", r.read_timeout_ms),
            ("write_timeout_ms", r.write_timeout_ms),
        ] {
            self.in_range(&format!("{key}.{field}"), ms, 1, 3_600_000)?;
        }
        let auth = r
            .auth
            .map(|a| self.auth(&format!("{key}.auth"), a))
            .transpose()?;
        let name = r.name.unwrap_or_else(|| r.path_prefix.clone());
        let rate_limit = r
            .rate_limit
            .map(|l| self.rate_limit(&format!("{key}.rate_limit"), name.clone(), l))
            .transpose()?;
        let cors = r
            .cors
            .map(|c| self.cors(&format!("{key}.cors"), c))
            .transpose()?;
        Ok(RouteSettings {
            keep_headers: self.keep_headers(key, &r.keep_headers)?,
            upstreams,
            tls,
            health_check,
            eject_after_failures: r.eject_after_failures as u32,
            ejection: Duration::from_millis(r.ejection_ms),
            dns_refresh: Duration::from_millis(r.dns_refresh_ms),
            retry_idempotent: r.retry_idempotent,
            cors,
            rate_limit,
            name,
            path_prefix: r.path_prefix,
            host: r.host.map(|h| normalize_host(&h).into_owned()),
            methods,
            connect_timeout: Duration::from_millis(r.connect_timeout_ms),
            read_timeout: Duration::from_millis(r.read_timeout_ms),
            write_timeout: Duration::from_millis(r.write_timeout_ms),
            auth,
        })
    }

    /// Requests are matched in normal form, so a prefix in any other form would never match
    /// (or would match something else than it says).
    fn path_prefix(&self, key: &str, prefix: &str, rules: &PathRules) -> Result<(), ConfigError> {
        if !prefix.starts_with('/') {
            return Err(self.err(key, "must start with `/`"));
        }
        match normalize_path(prefix.as_bytes(), rules) {
            Ok(normal) if normal.matching == prefix && normal.forward == prefix => Ok(()),
            Ok(normal) => Err(self.err(
                key,
                format!(
                    "`{prefix}` is not in normal form; write `{}`",
                    normal.matching
                ),
            )),
            Err(e) => Err(self.err(key, format!("`{prefix}`: {e}"))),
        }
    }

    fn keep_headers(
        &self,
        route: &str,
        names: &[String],
    ) -> Result<Vec<http::HeaderName>, ConfigError> {
        names
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = http::HeaderName::from_bytes(h.as_bytes()).ok();
                name.filter(|n| crate::forwarding::MEANING_CHANGERS.contains(n))
                    .ok_or_else(|| {
                        self.err(
                            format!("{route}.keep_headers[{i}]"),
                            format!("`{h}` is not a header Tollgate removes (x-http-method-override, x-http-method, x-method-override, x-original-url, x-rewrite-url)"),
                        )
                    })
            })
            .collect()
    }

    fn cors(&self, key: &str, c: file::Cors) -> Result<CorsPolicy, ConfigError> {
        if c.allowed_origins.is_empty() {
            return Err(self.err(format!("{key}.allowed_origins"), "at least one origin"));
        }
        let origins = c
            .allowed_origins
            .iter()
            .enumerate()
            .map(|(i, o)| {
                token_module::config::parse_origin(o)
                    .map_err(|e| self.err(format!("{key}.allowed_origins[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let methods = c
            .allowed_methods
            .iter()
            .enumerate()
            .map(|(i, m)| self.method(&format!("{key}.allowed_methods[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let header_name = |field: &str, list: Vec<String>| {
            list.into_iter()
                .enumerate()
                .map(|(i, h)| {
                    http::HeaderName::from_bytes(h.as_bytes())
                        .map(|n| n.as_str().to_string())
                        .map_err(|_| {
                            self.err(
                                format!("{key}.{field}[{i}]"),
                                format!("`{h}` is not a header name"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        self.in_range(
            &format!("{key}.max_age_seconds"),
            c.max_age_seconds,
            0,
            86_400,
        )?;
        Ok(CorsPolicy {
            origins,
            methods,
            headers: header_name("allowed_headers", c.allowed_headers)?,
            expose: header_name("expose_headers", c.expose_headers)?,
            max_age: c.max_age_seconds,
            credentials: c.allow_credentials,
        })
    }

    /// A rate limit named `policy`; build gives it its counters.
    pub(super) fn rate_limit(
        &self,
        key: &str,
        policy: String,
        l: file::RateLimit,
    ) -> Result<RateLimitSettings, ConfigError> {
        self.in_range(&format!("{key}.requests"), l.requests, 1, 1_000_000_000)?;
        self.in_range(
            &format!("{key}.window_seconds"),
            l.window_seconds,
            1,
            86_400,
        )?;
        Ok(RateLimitSettings {
            policy,
            requests: l.requests,
            window: Duration::from_secs(l.window_seconds),
            key: match l.key {
                file::RateKey::Address => RateKey::Address,
                file::RateKey::Client => RateKey::Client,
                file::RateKey::Subject => RateKey::Subject,
            },
            shared: l.shared,
        })
    }

    fn auth(&self, key: &str, mut a: file::Auth) -> Result<RouteAuth, ConfigError> {
        let other_methods_scopes = a.method_scopes.remove("*");
        let mut method_scopes: Vec<(http::Method, Vec<String>)> = Vec::new();
        for (m, scopes) in a.method_scopes {
            let method_key = format!("{key}.method_scopes.{m}");
            let method = self.method(&method_key, &m)?;
            if method_scopes.iter().any(|(other, _)| *other == method) {
                return Err(self.err(method_key, format!("`{method}` is listed twice")));
            }
            method_scopes.push((method, scopes));
        }
        if let Some(audience) = &a.audience {
            if audience.is_empty() || audience.chars().any(char::is_whitespace) {
                return Err(self.err(
                    format!("{key}.audience"),
                    "must be a non-empty string without spaces (an absolute URI is usual)",
                ));
            }
        }
        let upstream_jwt_ttl = match a.upstream_token.as_deref() {
            None | Some("forward") => None,
            Some("jwt") => {
                if a.audience.is_none() {
                    return Err(self.err(
                        format!("{key}.upstream_token"),
                        "`jwt` needs the route's `audience` (the upstream token's `aud`)",
                    ));
                }
                self.in_range(
                    &format!("{key}.upstream_token_ttl_seconds"),
                    a.upstream_token_ttl_seconds,
                    1,
                    3600,
                )?;
                Some(Duration::from_secs(a.upstream_token_ttl_seconds))
            }
            Some(other) => {
                return Err(self.err(
                    format!("{key}.upstream_token"),
                    format!("`{other}` is not `forward` or `jwt`"),
                ))
            }
        };
        Ok(RouteAuth {
            required: a.required,
            scopes: a.scopes,
            method_scopes,
            other_methods_scopes,
            forward_authorization: a.forward_authorization,
            audience: a.audience,
            upstream_jwt_ttl,
        })
    }
}
