//! Turns the file structs into the validated configuration; every error names the file and
//! the key at fault.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora::utils::tls::{parse_x509, WrappedX509};
use token_module::StoreUrl;

use super::{
    file, BearerSettings, ConfigError, ConnectionTimeouts, GatewayConfig, Listener, ListenerTls,
    RequestLimits, ServerSettings, StoreSettings, STORE_URL_ENV,
};
use crate::access_log::Destination;
use crate::balancer::{Balancer, BalancerSettings, HealthCheckSettings, Resolver, UpstreamName};
use crate::client_address::{ForwardedHeader, TrustedProxies};
use crate::cors::CorsPolicy;
use crate::forwarding::UpstreamForwarded;
use crate::identity::{IdentityHeader, IdentityHeaders};
use crate::normalize::{normalize_host, normalize_path, EscapedSlashes, PathParameters, PathRules};
use crate::rate_limit::{RateKey, RateLimit};
use crate::routes::PathCase;
use crate::routes::{Route, RouteAuth, RouteTable, UpstreamTls};

/// Parses YAML into `T`. On failure: the dotted path of the key at fault (`routes[0].tls`,
/// empty when the document itself is broken) and the parser's message with its line and
/// column.
pub(super) fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
) -> Result<T, (String, String)> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            path = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| {
        // `.` is what serde_path_to_error prints for the document root.
        let path = if path == "." { String::new() } else { path };
        let e = e.without_snippet();
        let message = match (e, e.location()) {
            // "invalid u64" says less than serde's usual wording; keep that.
            (serde_saphyr::Error::InvalidScalar { ty, .. }, Some(at)) => format!(
                "invalid type: expected {ty} at line {}, column {}",
                at.line(),
                at.column()
            ),
            _ => e.to_string(),
        };
        (path, message)
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

/// A non-zero fingerprint of a CA bundle, for connection-pool keys.
fn ca_fingerprint(cas: &[WrappedX509]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for ca in cas {
        ca.borrow_raw_cert().hash(&mut hasher);
    }
    hasher.finish().max(1)
}

/// Turns file structs into validated ones; every error names `file` and the key.
pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) base: &'a Path,
}

impl Validator<'_> {
    /// A file only this process's user may create: its directory must not be writable by
    /// everyone, or another local user could put their own socket or pid file there first
    /// (and receive the listening sockets of the next upgrade). A directory that does not
    /// exist yet is created private (0700) at start.
    fn private_path(&self, key: &str, path: &str) -> Result<PathBuf, ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let path = PathBuf::from(path);
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if let Ok(meta) = std::fs::metadata(parent) {
            if meta.permissions().mode() & 0o002 != 0 {
                return Err(self.err(
                    key,
                    format!(
                        "`{}` is world-writable: put the file in a directory only the gateway's user can write (default /run/tollgate/)",
                        parent.display()
                    ),
                ));
            }
        }
        Ok(path)
    }

    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(super) fn config(
        &self,
        f: file::File,
        store_url_override: Option<&str>,
    ) -> Result<GatewayConfig, ConfigError> {
        let server = self.server(f.server)?;
        if f.listeners.is_empty() {
            return Err(self.err("listeners", "at least one listener is required"));
        }
        let listeners = f
            .listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| self.listener(&format!("listeners[{i}]"), l))
            .collect::<Result<Vec<_>, _>>()?;
        let admin = f
            .admin
            .address
            .map(|a| self.socket_addr("admin.address", &a))
            .transpose()?;
        let admin_token = match &f.admin.token_file {
            Some(file) => {
                let path = self.existing_file("admin.token_file", file)?;
                let token = std::fs::read_to_string(&path).map_err(|e| {
                    self.err(
                        "admin.token_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let token = token.trim().to_string();
                if token.len() < 16 {
                    return Err(self.err(
                        "admin.token_file",
                        "the secret must be at least 16 characters",
                    ));
                }
                Some(super::AdminToken(token))
            }
            None => None,
        };
        if admin.is_some_and(|a| !a.ip().is_loopback()) && admin_token.is_none() {
            return Err(self.err(
                "admin.token_file",
                "required when admin.address is not a loopback address: anyone who reaches the listener could reload",
            ));
        }
        let store = self.store(f.store, store_url_override)?;
        let routes_with_auth: Vec<usize> = f
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.auth.is_some())
            .map(|(i, _)| i)
            .collect();
        let routes = f
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                self.route(
                    &format!("routes[{i}]"),
                    r,
                    &server.path_rules,
                    &server.resolver,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut oauth = f
            .oauth
            .map(|o| {
                token_module::OAuthConfig::from_file(o, self.base, &default_issuer(&listeners))
                    .map_err(|e| self.err(format!("oauth.{}", e.key), e.message))
            })
            .transpose()?;
        // What the token endpoint and discovery learn from the route table.
        if let Some(oauth) = &mut oauth {
            for (i, route) in routes.iter().enumerate() {
                let Some(auth) = &route.auth else { continue };
                if let Some(audience) = &auth.audience {
                    // A token of that client would then pass as one bound to this route.
                    if let Some(client) = oauth.clients.values().find(|c| c.audience == *audience) {
                        return Err(self.err(
                            format!("routes[{i}].auth.audience"),
                            format!(
                                "`{audience}` is the audience of client `{}`'s tokens; a route audience must be its own",
                                client.client_id
                            ),
                        ));
                    }
                    if !oauth.resources.contains(audience) {
                        oauth.resources.push(audience.clone());
                    }
                }
                let scopes = auth
                    .scopes
                    .iter()
                    .chain(auth.method_scopes.iter().flat_map(|(_, s)| s))
                    .chain(auth.other_methods_scopes.iter().flatten());
                for scope in scopes {
                    if !oauth.route_scopes.contains(scope) {
                        oauth.route_scopes.push(scope.clone());
                    }
                }
            }
        }
        if oauth.is_none() {
            if let Some(i) = routes_with_auth.first() {
                return Err(self.err(
                    format!("routes[{i}].auth"),
                    "bearer tokens need the `oauth` section (its keys and clients)",
                ));
            }
        }
        let bearer = BearerSettings {
            denylist_fail_open: f.bearer.denylist_fail_open,
            identity: self.identity_headers(f.bearer.identity_headers)?,
        };
        let oauth_rate_limit = f
            .oauth_rate_limit
            .map(|l| self.rate_limit("oauth_rate_limit", "oauth".into(), l))
            .transpose()?
            .map(Arc::new);
        let path_case = server.path_case;
        Ok(GatewayConfig {
            oauth_rate_limit,
            source: self.file.to_path_buf(),
            server,
            listeners,
            admin,
            admin_token,
            store,
            routes: RouteTable::new(routes, path_case),
            oauth,
            bearer,
        })
    }

    fn server(&self, s: file::Server) -> Result<ServerSettings, ConfigError> {
        if s.threads == 0 || s.threads > 1024 {
            return Err(self.err("server.threads", "must be between 1 and 1024"));
        }
        self.in_range(
            "server.grace_period_seconds",
            s.grace_period_seconds,
            0,
            3600,
        )?;
        self.in_range(
            "server.graceful_shutdown_timeout_seconds",
            s.graceful_shutdown_timeout_seconds,
            0,
            3600,
        )?;
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
        self.in_range("server.max_uri_bytes", s.max_uri_bytes, 256, 1 << 20)?;
        self.in_range("server.max_header_count", s.max_header_count, 8, 1000)?;
        // Pingora refuses a head larger than 1 MiB before any of this is looked at.
        self.in_range("server.max_header_bytes", s.max_header_bytes, 1024, 1 << 20)?;
        self.in_range(
            "server.header_timeout_ms",
            s.header_timeout_ms,
            100,
            600_000,
        )?;
        self.in_range(
            "server.keepalive_timeout_ms",
            s.keepalive_timeout_ms,
            100,
            3_600_000,
        )?;
        self.in_range("server.body_timeout_ms", s.body_timeout_ms, 100, 600_000)?;
        let header = match s.forwarded_header {
            file::ForwardedHeader::XForwardedFor => ForwardedHeader::XForwardedFor,
            file::ForwardedHeader::Forwarded => ForwardedHeader::Forwarded,
        };
        let trusted_proxies = TrustedProxies::parse(&s.trusted_proxies, header)
            .map_err(|e| self.err("server.trusted_proxies", e))?;
        let upstream_forwarded = match s.upstream_forwarded_header {
            file::UpstreamForwardedHeader::XForwardedFor => UpstreamForwarded::XForwardedFor,
            file::UpstreamForwardedHeader::Forwarded => UpstreamForwarded::Forwarded,
            file::UpstreamForwardedHeader::None => UpstreamForwarded::None,
        };
        let access_log = match s.access_log.as_str() {
            "off" => Destination::Off,
            "stderr" => Destination::Stderr,
            path => {
                let path = self.base.join(path);
                if !path.parent().is_some_and(Path::is_dir) {
                    return Err(self.err(
                        "server.access_log",
                        format!("the directory of `{}` does not exist", path.display()),
                    ));
                }
                Destination::File(path)
            }
        };
        let resolver = match &s.dns_resolver {
            None => (Resolver::System, None),
            Some(a) => {
                let server = self.socket_addr("server.dns_resolver", a)?;
                let resolver =
                    Resolver::nameserver(server).map_err(|e| self.err("server.dns_resolver", e))?;
                (resolver, Some(server))
            }
        };
        let upgrade_sock = self.private_path("server.upgrade_sock", &s.upgrade_sock)?;
        let pid_file = self.private_path("server.pid_file", &s.pid_file)?;
        Ok(ServerSettings {
            resolver,
            access_log,
            threads: s.threads,
            grace_period: Duration::from_secs(s.grace_period_seconds),
            graceful_shutdown_timeout: Duration::from_secs(s.graceful_shutdown_timeout_seconds),
            log_level: s.log_level,
            log_json,
            upgrade_sock,
            pid_file,
            error_log: s.error_log.map(PathBuf::from),
            request_limits: RequestLimits {
                max_uri_bytes: s.max_uri_bytes as usize,
                max_header_count: s.max_header_count as usize,
                max_header_bytes: s.max_header_bytes as usize,
            },
            connection_timeouts: ConnectionTimeouts {
                header: Duration::from_millis(s.header_timeout_ms),
                keepalive: Duration::from_millis(s.keepalive_timeout_ms),
                body: Duration::from_millis(s.body_timeout_ms),
            },
            trusted_proxies,
            upstream_forwarded,
            path_case: match s.path_case {
                file::PathCase::Guarded => PathCase::Guarded,
                file::PathCase::Sensitive => PathCase::Sensitive,
                file::PathCase::Insensitive => PathCase::Insensitive,
            },
            path_rules: PathRules {
                merge_slashes: s.merge_slashes,
                escaped_slashes: match s.escaped_slashes {
                    file::EscapedSlashes::Reject => EscapedSlashes::Reject,
                    file::EscapedSlashes::Keep => EscapedSlashes::Keep,
                },
                path_parameters: match s.path_parameters {
                    file::PathParameters::Reject => PathParameters::Reject,
                    file::PathParameters::Keep => PathParameters::Keep,
                },
            },
        })
    }

    fn listener(&self, key: &str, l: file::Listener) -> Result<Listener, ConfigError> {
        let address = self.socket_addr(&format!("{key}.address"), &l.address)?;
        let tls = l
            .tls
            .map(|t| {
                Ok::<_, ConfigError>(ListenerTls {
                    cert: self.existing_file(&format!("{key}.tls.cert"), &t.cert)?,
                    key: self.existing_file(&format!("{key}.tls.key"), &t.key)?,
                    http2: t.http2,
                })
            })
            .transpose()?;
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
            timeout: Duration::from_millis(s.timeout_ms),
        })
    }

    fn route(
        &self,
        key: &str,
        r: file::Route,
        rules: &PathRules,
        resolver: &(Resolver, Option<SocketAddr>),
    ) -> Result<Route, ConfigError> {
        if !r.path_prefix.starts_with('/') {
            return Err(self.err(format!("{key}.path_prefix"), "must start with `/`"));
        }
        // Requests are matched in normal form, so a prefix in any other form would never
        // match (or would match something else than it says).
        match normalize_path(r.path_prefix.as_bytes(), rules) {
            Ok(normal) if normal.matching == r.path_prefix && normal.forward == r.path_prefix => {}
            Ok(normal) => {
                return Err(self.err(
                    format!("{key}.path_prefix"),
                    format!(
                        "`{}` is not in normal form; write `{}`",
                        r.path_prefix, normal.matching
                    ),
                ))
            }
            Err(e) => {
                return Err(self.err(
                    format!("{key}.path_prefix"),
                    format!("`{}`: {e}", r.path_prefix),
                ))
            }
        }
        let methods = r
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| self.method(&format!("{key}.methods[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = r
            .tls
            .map(|t| {
                let ca =
                    t.ca.map(|ca| self.ca_file(&format!("{key}.tls.ca"), &ca))
                        .transpose()?;
                let ca_pool_key = ca.as_ref().map_or(0, |cas| ca_fingerprint(cas));
                Ok::<_, ConfigError>(UpstreamTls {
                    sni: t.sni,
                    verify: t.verify,
                    ca,
                    ca_pool_key,
                })
            })
            .transpose()?;
        if r.upstreams.is_empty() {
            return Err(self.err(
                format!("{key}.upstreams"),
                "at least one upstream is required",
            ));
        }
        let mut names = Vec::new();
        let mut resolved = Vec::new();
        for (i, entry) in r.upstreams.iter().enumerate() {
            let entry_key = format!("{key}.upstreams[{i}]");
            let (address, weight) = match entry {
                file::UpstreamEntry::Address(a) => (a.as_str(), 1),
                file::UpstreamEntry::Weighted(w) => (w.address.as_str(), w.weight),
            };
            self.in_range(&format!("{entry_key}.weight"), weight, 1, 1000)?;
            let system = resolver.1.is_none();
            let (name, addrs) =
                self.upstream(&entry_key, address, weight as usize, tls.as_ref(), system)?;
            names.push(name);
            resolved.push(addrs);
        }
        self.in_range(
            &format!("{key}.eject_after_failures"),
            r.eject_after_failures,
            0,
            1000,
        )?;
        self.in_range(&format!("{key}.ejection_ms"), r.ejection_ms, 1, 3_600_000)?;
        self.in_range(
            &format!("{key}.dns_refresh_ms"),
            r.dns_refresh_ms,
            100,
            86_400_000,
        )?;
        let health_check = r
            .health_check
            .map(|h| self.health_check(&format!("{key}.health_check"), h))
            .transpose()?;
        let balancer = Balancer::new(
            names,
            resolved,
            resolver.clone(),
            BalancerSettings {
                health_check,
                eject_after_failures: r.eject_after_failures as u32,
                ejection: Duration::from_millis(r.ejection_ms),
                dns_refresh: Duration::from_millis(r.dns_refresh_ms),
                tls: tls.clone(),
            },
        );
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
            .transpose()?
            .map(Arc::new);
        let cors = r
            .cors
            .map(|c| self.cors(&format!("{key}.cors"), c))
            .transpose()?;
        let keep_headers = r
            .keep_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = http::HeaderName::from_bytes(h.as_bytes()).ok();
                name.filter(|n| crate::forwarding::MEANING_CHANGERS.contains(n))
                    .ok_or_else(|| {
                        self.err(
                            format!("{key}.keep_headers[{i}]"),
                            format!("`{h}` is not a header Tollgate removes (x-http-method-override, x-http-method, x-method-override, x-original-url, x-rewrite-url)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Route {
            keep_headers,
            balancer: Arc::new(balancer),
            tls,
            retry_idempotent: r.retry_idempotent,
            cors,
            metrics: Default::default(),
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

    fn rate_limit(
        &self,
        key: &str,
        policy: String,
        l: file::RateLimit,
    ) -> Result<RateLimit, ConfigError> {
        self.in_range(&format!("{key}.requests"), l.requests, 1, 1_000_000_000)?;
        self.in_range(
            &format!("{key}.window_seconds"),
            l.window_seconds,
            1,
            86_400,
        )?;
        let rate_key = match l.key {
            file::RateKey::Address => RateKey::Address,
            file::RateKey::Client => RateKey::Client,
            file::RateKey::Subject => RateKey::Subject,
        };
        Ok(RateLimit::new(
            policy,
            l.requests,
            Duration::from_secs(l.window_seconds),
            rate_key,
            l.shared,
        ))
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

    /// An upstream's name, port and SNI, and its addresses now (when the system resolver
    /// resolves names; with a DNS server of its own only addresses are known before the
    /// first query). With the system resolver a name that does not resolve is an error.
    fn upstream(
        &self,
        key: &str,
        address: &str,
        weight: usize,
        tls: Option<&UpstreamTls>,
        system_resolver: bool,
    ) -> Result<(UpstreamName, Vec<SocketAddr>), ConfigError> {
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
        let addrs: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) if system_resolver => {
                let found: Vec<SocketAddr> = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect)
                    .unwrap_or_default();
                if found.is_empty() {
                    return Err(
                        self.err(key, format!("`{address}` does not resolve to an address"))
                    );
                }
                found
            }
            Err(_) => Vec::new(),
        };
        let sni = tls.map(|t| t.sni.clone().unwrap_or_else(|| host.clone()));
        Ok((
            UpstreamName {
                host,
                port,
                weight,
                sni: sni.unwrap_or_default(),
            },
            addrs,
        ))
    }

    fn health_check(
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

    /// Every limit is bounded: an absurd value is a `--check` error, never an overflow at
    /// request time.
    fn in_range(&self, key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
        if value < min {
            return Err(self.err(key, format!("must be at least {min}")));
        }
        if value > max {
            return Err(self.err(key, format!("must be at most {max}")));
        }
        Ok(())
    }

    fn method(&self, key: &str, m: &str) -> Result<http::Method, ConfigError> {
        let upper = m.to_ascii_uppercase();
        http::Method::from_bytes(upper.as_bytes())
            .map_err(|_| self.err(key, format!("`{m}` is not an HTTP method")))
    }

    fn socket_addr(&self, key: &str, a: &str) -> Result<SocketAddr, ConfigError> {
        a.parse()
            .map_err(|_| self.err(key, format!("`{a}` is not an ip:port address")))
    }

    /// Reads a PEM bundle of CA certificates, each checked to be a well-formed X.509 one.
    fn ca_file(&self, key: &str, p: &str) -> Result<Arc<[WrappedX509]>, ConfigError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        let path = self.existing_file(key, p)?;
        let mut cas = Vec::new();
        let certs = CertificateDer::pem_file_iter(&path)
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

    fn existing_file(&self, key: &str, p: &str) -> Result<PathBuf, ConfigError> {
        let path = self.base.join(p);
        if path.is_file() {
            Ok(path)
        } else {
            Err(self.err(key, format!("file `{}` not found", path.display())))
        }
    }
}
