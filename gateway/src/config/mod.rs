//! Gateway configuration: the YAML file format and the validated configuration built from it.
//!
//! Two layers, as in River: [`file`] holds serde structs that mirror the YAML exactly (unknown
//! keys are errors, every field documents its default); [`GatewayConfig::load`] converts them
//! into the validated types the rest of the gateway uses. File structs never leak past that.
//! Relative paths in the file are resolved against the file's own directory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use token_module::StoreUrl;

use crate::access_log::Destination;
use crate::balancer::Resolver;
use crate::client_address::TrustedProxies;
use crate::forwarding::UpstreamForwarded;
use crate::identity::IdentityHeaders;
use crate::normalize::PathRules;
use crate::rate_limit::RateLimit;
use crate::routes::RouteTable;

/// The environment variable that overrides `store.url` (so a deployment can point the same
/// file at its Redis without editing it).
pub const STORE_URL_ENV: &str = "TOLLGATE_STORE_URL";

/// A configuration problem, naming the file and the offending key.
#[derive(Debug)]
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

pub mod file;
mod validator;

/// Process-level settings.
#[derive(Debug, Clone)]
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
    /// Who resolves upstream names, and the DNS server's address if not the system.
    pub resolver: (Resolver, Option<SocketAddr>),
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
#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<ListenerTls>,
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub http2: bool,
}

/// Store settings.
#[derive(Debug, Clone)]
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

/// The validated configuration.
#[derive(Debug)]
pub struct GatewayConfig {
    pub source: PathBuf,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub admin: Option<SocketAddr>,
    /// The secret `POST /reload` must present (`admin.token_file`).
    pub admin_token: Option<AdminToken>,
    pub store: StoreSettings,
    pub routes: RouteTable,
    pub oauth: Option<token_module::OAuthConfig>,
    pub bearer: BearerSettings,
    /// The rate limit of the OAuth endpoints.
    pub oauth_rate_limit: Option<std::sync::Arc<RateLimit>>,
}

/// How protected routes treat bearer tokens.
#[derive(Debug, Clone)]
pub struct BearerSettings {
    pub denylist_fail_open: bool,
    pub identity: IdentityHeaders,
}

/// The admin listener's address and reload secret as `path` sets them, read without
/// validating the rest (what `tollgate reload` needs to reach the running gateway; the
/// gateway validates the file).
pub fn admin_address(path: &Path) -> Result<Option<(SocketAddr, Option<AdminToken>)>, ConfigError> {
    #[derive(serde::Deserialize)]
    struct Partial {
        #[serde(default)]
        admin: file::Admin,
    }
    let err = |key: &str, message: String| ConfigError {
        file: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read: {e}")))?;
    let partial = validator::parse_yaml::<Partial>(&text).map_err(|(key, m)| err(&key, m))?;
    let Some(address) = partial.admin.address else {
        return Ok(None);
    };
    let address = address.parse().map_err(|_| {
        err(
            "admin.address",
            format!("`{address}` is not an ip:port address"),
        )
    })?;
    let token = match partial.admin.token_file {
        Some(file) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(file);
            let token = std::fs::read_to_string(&file).map_err(|e| {
                err(
                    "admin.token_file",
                    format!("cannot read {}: {e}", file.display()),
                )
            })?;
            Some(AdminToken(token.trim().to_string()))
        }
        None => None,
    };
    Ok(Some((address, token)))
}

impl GatewayConfig {
    /// Reads, parses and validates `path`. `store_url_override` (normally the value of
    /// [`STORE_URL_ENV`]) replaces `store.url`.
    pub fn load(path: &Path, store_url_override: Option<&str>) -> Result<Self, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read: {e}")))?;
        let parsed = validator::parse_yaml::<file::File>(&text)
            .map_err(|(key, message)| err(&key, message))?;
        let base = path.parent().unwrap_or(Path::new("."));
        validator::Validator { file: path, base }.config(parsed, store_url_override)
    }
}
