//! Gateway configuration, in River's two layers and two steps.
//!
//! [`file`] holds serde structs that mirror the YAML exactly (unknown keys are errors, every
//! field documents its default). [`validate`] turns them into a [`ValidConfig`]: plain data,
//! every value checked, and no I/O at all — paths are named, not read; upstreams are
//! `host:port`, not resolved. [`GatewayConfig::build`] then does the I/O: it reads the files
//! the configuration names, resolves upstream names, builds balancers and rate limiters, and
//! carries their state over from the configuration in force. A reload compares the old and
//! the new [`ValidConfig`] with `PartialEq` ([`diff`]). File structs never leak past
//! [`validate`], except the `oauth` section, which token_module validates itself when the
//! configuration is built. Relative paths are resolved against the file's own directory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use token_module::StoreUrl;

use crate::access_log::Destination;
use crate::balancer::HealthCheckSettings;
use crate::client_address::TrustedProxies;
use crate::cors::CorsPolicy;
use crate::forwarding::UpstreamForwarded;
use crate::identity::IdentityHeaders;
use crate::normalize::PathRules;
use crate::rate_limit::{RateKey, RateLimit};
use crate::routes::{RouteAuth, RouteTable};

mod build;
mod build_routes;
pub mod diff;
pub mod file;
mod listeners;
mod parse;
mod routes;
mod server;
mod upstreams;
mod validate;

#[cfg(test)]
mod tests;

pub use build::Previous;
pub use parse::admin_address;
pub use validate::validate;

/// The environment variable that overrides `store.url` (so a deployment can point the same
/// file at its Redis without editing it).
pub const STORE_URL_ENV: &str = "TOLLGATE_STORE_URL";

/// A configuration problem, naming the file and the offending key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the key (`routes[1].upstreams[0]`), or empty for whole-file problems
    /// (the YAML parser's own messages already carry the path and line).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration: what the file says, checked, as plain values. Made without
/// I/O by [`validate`]; two of them compare with `==` (a reload's report).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// The file it came from.
    pub source: PathBuf,
    pub server: ServerSettings,
    /// At least one.
    pub listeners: Vec<Listener>,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    /// In file order.
    pub routes: Vec<RouteSettings>,
    pub oauth: Option<OAuthSection>,
    pub bearer: BearerSettings,
    /// The rate limit of the OAuth endpoints.
    pub oauth_rate_limit: Option<RateLimitSettings>,
}

impl ValidConfig {
    /// Reads `path` and validates it: the file itself is the only thing read.
    /// `store_url_override` (normally the value of [`STORE_URL_ENV`]) replaces `store.url`.
    pub fn load(path: &Path, store_url_override: Option<&str>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        validate(parse::parse_file(&text, path)?, path, store_url_override)
    }

    /// The directory relative paths of the file are resolved against.
    pub fn base(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }
}

/// Process-level settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    pub threads: usize,
    pub grace_period: Duration,
    pub graceful_shutdown_timeout: Duration,
    pub log_level: String,
    pub log_json: bool,
    /// Where a process started with `--upgrade` receives the listening sockets.
    pub upgrade_sock: PathBuf,
    /// With `--daemon`: the process id file, and the log file.
    pub pid_file: PathBuf,
    pub error_log: Option<PathBuf>,
    /// How request paths are brought to normal form.
    pub path_rules: PathRules,
    /// How routes compare path case (`server.path_case`).
    pub path_case: crate::routes::PathCase,
    /// Bounds on the request head.
    pub request_limits: RequestLimits,
    /// Deadlines of request heads, idle connections and body reads.
    pub connection_timeouts: ConnectionTimeouts,
    /// Peers whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Which forwarding headers the upstream gets.
    pub upstream_forwarded: UpstreamForwarded,
    /// Where access-log lines go.
    pub access_log: Destination,
    /// The DNS server that resolves upstream names; `None`: the system's resolver.
    pub dns_resolver: Option<SocketAddr>,
}

/// Bounds on a request's head, checked before anything else looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest request target, path and query (414 past it).
    pub max_uri_bytes: usize,
    /// Most header fields (431 past it).
    pub max_header_count: usize,
    /// Largest header section: names, values, `: ` and CRLF of each field (431 past it).
    pub max_header_bytes: usize,
}

/// Connection timeouts, from `server.*_timeout_ms`; a connection takes them when it is
/// accepted, a request when its head is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// The whole request head must arrive within this, from the connection's accept or from
    /// the first byte of a later request on a keep-alive connection.
    pub header: Duration,
    /// An idle keep-alive connection is closed after this.
    pub keepalive: Duration,
    /// Longest wait between two reads of a request body.
    pub body: Duration,
}

/// A client-facing listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<ListenerTls>,
    pub max_connections: usize,
}

/// A listener's certificate and key files (found by build; read when the server starts).
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub http2: bool,
}

/// The admin listener.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminSettings {
    /// `None`: no admin listener.
    pub address: Option<SocketAddr>,
    /// The file holding the secret `POST /reload` must present (read by build).
    pub token_file: Option<PathBuf>,
}

/// Store settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreSettings {
    pub url: StoreUrl,
    pub key_prefix: String,
    pub timeout: Duration,
}

/// The admin listener's reload secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// How protected routes treat bearer tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct BearerSettings {
    pub denylist_fail_open: bool,
    pub identity: IdentityHeaders,
}

/// A validated route: what [`crate::routes::Route`] is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSettings {
    /// Its `name`, else its path prefix.
    pub name: String,
    /// In normal form.
    pub path_prefix: String,
    /// Lower case, port-less.
    pub host: Option<String>,
    pub methods: Vec<http::Method>,
    /// At least one.
    pub upstreams: Vec<UpstreamAddress>,
    pub tls: Option<UpstreamTlsSettings>,
    pub health_check: Option<HealthCheckSettings>,
    pub eject_after_failures: u32,
    pub ejection: Duration,
    pub dns_refresh: Duration,
    pub retry_idempotent: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub auth: Option<RouteAuth>,
    pub rate_limit: Option<RateLimitSettings>,
    pub cors: Option<CorsPolicy>,
    pub keep_headers: Vec<http::HeaderName>,
}

/// An upstream as configured: a name (or an address) and a port, not resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddress {
    /// Without brackets.
    pub host: String,
    pub port: u16,
    pub weight: usize,
}

impl std::fmt::Display for UpstreamAddress {
    /// `host:port`, an IPv6 address in brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// TLS towards a route's upstreams, its CA file named (read by build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTlsSettings {
    pub sni: Option<String>,
    pub verify: bool,
    pub ca: Option<PathBuf>,
}

/// The `oauth` section as the file has it, its `issuer` settled (the default comes from the
/// listeners). token_module validates the rest when the configuration is built, reading the
/// signing keys in the same pass. Its `Debug` names clients and users but leaves out their
/// secret and password hashes.
#[derive(Clone, PartialEq)]
pub struct OAuthSection(pub token_module::config::file::OAuth);

impl fmt::Debug for OAuthSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let oauth = &self.0;
        let clients: Vec<&String> = oauth.clients.iter().map(|c| &c.client_id).collect();
        let users: Vec<&String> = oauth.users.iter().map(|u| &u.username).collect();
        f.debug_struct("OAuthSection")
            .field("issuer", &oauth.issuer)
            .field("keys", &oauth.keys)
            .field("clients", &clients)
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

/// A validated rate limit; build gives it counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// The route's name, or `oauth`.
    pub policy: String,
    pub requests: u64,
    pub window: Duration,
    pub key: RateKey,
    pub shared: bool,
}

/// A configuration ready to serve: the validated values and what was built from them.
#[derive(Debug)]
pub struct GatewayConfig {
    /// What it was built from.
    pub valid: ValidConfig,
    /// The secret `POST /reload` must present (`admin.token_file`).
    pub admin_token: Option<AdminToken>,
    pub routes: RouteTable,
    pub oauth: Option<token_module::OAuthConfig>,
    /// The rate limit of the OAuth endpoints.
    pub oauth_rate_limit: Option<Arc<RateLimit>>,
}

impl GatewayConfig {
    /// Reads, parses, validates and builds `path` (what `--check` and a start do).
    /// `store_url_override` (normally the value of [`STORE_URL_ENV`]) replaces `store.url`.
    pub fn load(path: &Path, store_url_override: Option<&str>) -> Result<Self, ConfigError> {
        Self::build(&ValidConfig::load(path, store_url_override)?, None)
    }
}
