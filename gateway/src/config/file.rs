//! The file format. Every field's default is stated in its doc and in the README.
//!
//! These structs mirror the YAML exactly: unknown keys are errors and every field documents
//! its default. Only the configuration loaders read them: the rest of the code sees the
//! validated types of `mod.rs`, built from these.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Process settings. Default: see [`Server`].
    #[serde(default)]
    pub server: Server,
    /// Client-facing listeners. Default: one plain-HTTP listener on `0.0.0.0:6882`.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<Listener>,
    /// The operations listener. Default: see [`Admin`].
    #[serde(default)]
    pub admin: Admin,
    /// Where codes and tokens are kept. Default: the embedded in-memory store.
    #[serde(default)]
    pub store: Store,
    /// The route table. Default: empty (every request but the OAuth endpoints gets 404).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// The OAuth 2.0 authorization server. Default: none (no OAuth endpoints).
    #[serde(default)]
    pub oauth: Option<token_module::config::file::OAuth>,
    /// How protected routes treat bearer tokens. Default: see [`Bearer`].
    #[serde(default)]
    pub bearer: Bearer,
    /// A rate limit on the OAuth endpoints (token, authorize, revoke, introspect, userinfo,
    /// JWKS, discovery); policy name `oauth`. Default: none.
    #[serde(default)]
    pub oauth_rate_limit: Option<RateLimit>,
}

/// A rate limit: at most `requests` per key in each window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per key and window. Required, at least 1.
    pub requests: u64,
    /// Window length, whole seconds. Default: 1.
    #[serde(default = "one")]
    pub window_seconds: u64,
    /// What requests are counted by: `address` (the client address), `client` (the token's
    /// or the request's `client_id`) or `subject` (the token's user, else its client).
    /// Requests without the key are counted by address. Default: `address`.
    #[serde(default)]
    pub key: RateKey,
    /// Count in the store as well, so every gateway on that store shares one budget.
    /// Default: false (each instance counts alone).
    #[serde(default)]
    pub shared: bool,
}

/// `rate_limit.key`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateKey {
    #[default]
    Address,
    Client,
    Subject,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bearer {
    /// When the store cannot be asked whether a validly signed JWT was revoked, accept it
    /// (true) or answer 503 (false). Opaque tokens always need the store. Default: false.
    pub denylist_fail_open: bool,
    /// Headers that carry the caller's identity upstream. Every client-sent copy is
    /// removed on every route. Default: see [`IdentityHeaders`].
    pub identity_headers: IdentityHeaders,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaders {
    /// Default: `X-User-Id`.
    pub user_id: String,
    /// Default: `X-User-Type`.
    pub user_type: String,
    /// Default: `X-Client-Id`.
    pub client_id: String,
    /// Granted scopes, space-separated. Default: `X-Scopes`.
    pub scopes: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user_id: "X-User-Id".into(),
            user_type: "X-User-Type".into(),
            client_id: "X-Client-Id".into(),
            scopes: "X-Scopes".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Worker threads for the proxy. Default: 2.
    pub threads: usize,
    /// Seconds to keep serving after SIGTERM before closing listeners. Default: 5.
    pub grace_period_seconds: u64,
    /// Seconds in-flight requests get to finish after that. Default: 5.
    pub graceful_shutdown_timeout_seconds: u64,
    /// The Unix socket through which a new process started with `--upgrade` receives this
    /// one's listening sockets; its directory may not be world-writable. Default:
    /// `/run/tollgate/upgrade.sock`.
    pub upgrade_sock: String,
    /// With `--daemon`: where the process id is written; its directory may not be
    /// world-writable. Default: `/run/tollgate/tollgate.pid`.
    pub pid_file: String,
    /// With `--daemon`: the file logs are appended to. Default: none (logs are dropped).
    pub error_log: Option<String>,
    /// Log filter in `tracing` syntax; `RUST_LOG` overrides it. Default: `info`.
    pub log_level: String,
    /// `text` or `json` log lines. Default: `text`.
    pub log_format: String,
    /// Merge repeated slashes in request paths (`/v1//pets` → `/v1/pets`); `false`
    /// refuses them with 400. Default: true.
    pub merge_slashes: bool,
    /// Longest request target (path and query) accepted, in bytes; longer gets 414.
    /// Default: 8192.
    pub max_uri_bytes: u64,
    /// Most request header fields accepted; more gets 431. Default: 100.
    pub max_header_count: u64,
    /// Largest request header section accepted (names, values and separators), in bytes;
    /// larger gets 431. Default: 32768.
    pub max_header_bytes: u64,
    /// `%2F` / `%5C` in a path: `reject` (400) or `keep` (forwarded unchanged, matched
    /// as opaque bytes). Default: `reject`.
    pub escaped_slashes: EscapedSlashes,
    /// `;` parameters in a path segment: `reject` (400) or `keep` (forwarded; each
    /// segment is matched on what precedes its `;`). Default: `reject`.
    pub path_parameters: PathParameters,
    /// How routes compare path case: `guarded` (exact, and a path that falls under a
    /// protected route only without case, trailing dots or a `.ext` suffix is refused with
    /// 400), `sensitive` (exact, nothing refused: every upstream matches exactly) or
    /// `insensitive` (case ignored: every upstream ignores it). Default: `guarded`.
    pub path_case: PathCase,
    /// A request head must arrive whole within this many ms, counted from the connection's
    /// accept (or, on a keep-alive connection, from the head's first byte); past it the
    /// connection is closed, with a 408 when part of a head came. Default: 10000.
    pub header_timeout_ms: u64,
    /// An idle keep-alive connection (HTTP/1.1 between requests, HTTP/2 without an open
    /// stream) is closed after this many ms. Default: 60000.
    pub keepalive_timeout_ms: u64,
    /// Longest wait between two reads of a request body, ms; past it the request ends
    /// (HTTP/1.1). Default: 30000.
    pub body_timeout_ms: u64,
    /// Peers (CIDRs or addresses) whose `X-Forwarded-For` / `Forwarded` headers name the
    /// client: for requests from them the client address is the nearest address in those
    /// headers that is not itself trusted. Default: none (the socket's peer is the client).
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies name the client in: `x-forwarded-for` or `forwarded`
    /// (RFC 7239). Only that one is read. Default: `x-forwarded-for`.
    pub forwarded_header: ForwardedHeader,
    /// What the upstream is told about the client: `x-forwarded-for` (`X-Forwarded-For`,
    /// the peer's address appended to what a trusted proxy sent, and `X-Forwarded-Proto`),
    /// `forwarded` (one RFC 7239 `Forwarded` header, this hop's element appended to what a
    /// trusted proxy sent) or `none` (nothing added, what came removed). From a peer not in
    /// `trusted_proxies`, `X-Forwarded-Host`, `X-Forwarded-Port`, `X-Forwarded-Prefix` and
    /// `X-Real-IP` are removed too. Default: `x-forwarded-for`.
    pub upstream_forwarded_header: UpstreamForwardedHeader,
    /// A DNS server (`ip:port`, asked over UDP) that resolves upstream names instead of
    /// the system's resolver. Default: none (the system resolver).
    pub dns_resolver: Option<String>,
    /// The access log: `stderr`, `off`, or a file path (reopened on SIGUSR1 and on reload).
    /// Lines follow `log_format`. Default: `stderr`.
    pub access_log: String,
}

/// `server.forwarded_header`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

/// `server.upstream_forwarded_header`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
    None,
}

/// `server.escaped_slashes`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    #[default]
    Reject,
    Keep,
}

/// `server.path_case`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathCase {
    #[default]
    Guarded,
    Sensitive,
    Insensitive,
}

/// `server.path_parameters`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathParameters {
    #[default]
    Reject,
    Keep,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            threads: 2,
            grace_period_seconds: 5,
            graceful_shutdown_timeout_seconds: 5,
            upgrade_sock: "/run/tollgate/upgrade.sock".into(),
            pid_file: "/run/tollgate/tollgate.pid".into(),
            error_log: None,
            log_level: "info".into(),
            log_format: "text".into(),
            merge_slashes: true,
            max_uri_bytes: 8192,
            max_header_count: 100,
            max_header_bytes: 32_768,
            escaped_slashes: EscapedSlashes::default(),
            path_parameters: PathParameters::default(),
            path_case: PathCase::default(),
            header_timeout_ms: 10_000,
            keepalive_timeout_ms: 60_000,
            body_timeout_ms: 30_000,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            upstream_forwarded_header: UpstreamForwardedHeader::default(),
            access_log: "stderr".into(),
            dns_resolver: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `ip:port` to bind. Required.
    pub address: String,
    /// Serve TLS with this certificate. Default: none (plain HTTP).
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Most client connections open at once on this listener; a connection accepted past
    /// it is closed at once (counted in `tollgate_connections_refused_total`).
    /// Default: 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
}

fn default_max_connections() -> u64 {
    10_000
}

pub fn default_listeners() -> Vec<Listener> {
    vec![Listener {
        address: "0.0.0.0:6882".into(),
        tls: None,
        max_connections: default_max_connections(),
    }]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain. Required.
    pub cert: String,
    /// PEM private key. Required.
    pub key: String,
    /// Offer HTTP/2 through ALPN. Default: true.
    #[serde(default = "yes")]
    pub http2: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// `ip:port` of `/healthz`, `/readyz` and `/metrics`; `null` turns it off.
    /// Default: `127.0.0.1:9090`.
    pub address: Option<String>,
    /// A file holding the secret `POST /reload` must present as `Authorization: Bearer
    /// <secret>` (read at start). Required when `address` is not a loopback address.
    /// Default: none (any caller that reaches the listener may reload).
    pub token_file: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: Some("127.0.0.1:9090".into()),
            token_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// `memory://`, `redis://host:port/db`, `rediss://…`, or
    /// `redis+cluster://h1:p1,h2:p2`. `TOLLGATE_STORE_URL` overrides it. Default: `memory://`.
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis.
    /// Default: `tollgate:`.
    pub key_prefix: String,
    /// Bound on every store call, connecting included, in milliseconds. Default: 1000.
    pub timeout_ms: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
            key_prefix: "tollgate:".into(),
            timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name used in metrics and logs. Default: the path prefix.
    #[serde(default)]
    pub name: Option<String>,
    /// Requests whose path is this prefix or lies below it (segment-wise) match; the
    /// longest matching prefix wins. Required, must start with `/`.
    pub path_prefix: String,
    /// Match only this `Host` (port ignored, case-insensitive). Default: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Match only these methods. Default: any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Each upstream: `host:port`, or `{address: host:port, weight: 3}`; chosen by
    /// weighted round-robin among the healthy ones. A name is resolved again every
    /// `dns_refresh_ms` and each of its addresses is an upstream. Required, at least one.
    pub upstreams: Vec<UpstreamEntry>,
    /// Active health checks of the upstreams. Default: none (every address is taken as
    /// healthy unless ejected).
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Consecutive connect failures that eject an address for `ejection_ms`; 0 never
    /// ejects. Default: 3.
    #[serde(default = "default_eject_after")]
    pub eject_after_failures: u64,
    /// How long an ejected address gets no requests, ms. Default: 10000.
    #[serde(default = "default_ejection_ms")]
    pub ejection_ms: u64,
    /// How often upstream names are resolved again, ms. Default: 30000.
    #[serde(default = "default_dns_refresh_ms")]
    pub dns_refresh_ms: u64,
    /// Retry an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS) on another upstream
    /// when the first failed after it was sent; a failed connect is always retried.
    /// Default: true.
    #[serde(default = "yes")]
    pub retry_idempotent: bool,
    /// Connect to the upstreams over TLS. Default: none (plain HTTP).
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Connect timeout per upstream attempt, ms. Default: 2000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for upstream bytes (each read), ms. Default: 30000.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Longest wait for the upstream to accept bytes (each write), ms. Default: 30000.
    #[serde(default = "default_read_timeout_ms")]
    pub write_timeout_ms: u64,
    /// Bearer-token requirements. Default: none (the route is public).
    #[serde(default)]
    pub auth: Option<Auth>,
    /// A rate limit on this route; the policy is named after the route. Default: none.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// CORS for browser pages calling this route from other origins. Default: none (no
    /// CORS headers; the upstream's own pass through).
    #[serde(default)]
    pub cors: Option<Cors>,
    /// Method- and URL-override headers to pass to this route's upstream, which Tollgate
    /// removes otherwise: `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
    /// `X-Original-URL`, `X-Rewrite-URL` (the upstream would act on a method or path that
    /// was never matched nor authorized). Default: none.
    #[serde(default)]
    pub keep_headers: Vec<String>,
}

/// `routes[].cors`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Exact origins (`https://app.example.com`). Required, at least one; `*` is refused.
    pub allowed_origins: Vec<String>,
    /// Methods pages may use. Default: GET, HEAD, POST, PUT, PATCH, DELETE.
    #[serde(default = "default_cors_methods")]
    pub allowed_methods: Vec<String>,
    /// Request headers pages may send. Default: `authorization`, `content-type`.
    #[serde(default = "default_cors_headers")]
    pub allowed_headers: Vec<String>,
    /// Response headers pages may read beyond the CORS-safelisted ones. Default: none.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Seconds a browser may keep a preflight answer. Default: 600.
    #[serde(default = "default_cors_max_age")]
    pub max_age_seconds: u64,
    /// Let pages send cookies (`Access-Control-Allow-Credentials: true`). Default: false.
    #[serde(default)]
    pub allow_credentials: bool,
}

fn default_cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn default_cors_headers() -> Vec<String> {
    ["authorization", "content-type"].map(String::from).to_vec()
}

fn default_cors_max_age() -> u64 {
    600
}

/// One `routes[].upstreams` entry.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UpstreamEntry {
    Address(String),
    Weighted(WeightedUpstream),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedUpstream {
    /// `host:port`. Required.
    pub address: String,
    /// Relative share of requests. Default: 1.
    #[serde(default = "one")]
    pub weight: u64,
}

/// `routes[].health_check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// `GET` this path on each address and expect a 2xx or 3xx status; without it a TCP
    /// connect is the check. Default: none.
    #[serde(default)]
    pub http_path: Option<String>,
    /// Time between checks, ms. Default: 5000.
    #[serde(default = "default_check_interval_ms")]
    pub interval_ms: u64,
    /// Longest wait for a check's connect (and answer), ms. Default: 1000.
    #[serde(default = "default_check_timeout_ms")]
    pub timeout_ms: u64,
    /// Consecutive successes before an unhealthy address takes traffic again. Default: 1.
    #[serde(default = "one")]
    pub healthy_after: u64,
    /// Consecutive failures before a healthy address stops taking traffic. Default: 2.
    #[serde(default = "default_unhealthy_after")]
    pub unhealthy_after: u64,
}

fn default_eject_after() -> u64 {
    3
}

fn default_ejection_ms() -> u64 {
    10_000
}

fn default_dns_refresh_ms() -> u64 {
    30_000
}

fn default_check_interval_ms() -> u64 {
    5_000
}

fn default_check_timeout_ms() -> u64 {
    1_000
}

fn default_unhealthy_after() -> u64 {
    2
}

fn default_connect_timeout_ms() -> u64 {
    2000
}

fn default_read_timeout_ms() -> u64 {
    30_000
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// Server name sent in SNI and verified. Default: the upstream's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the upstream's certificate chain and name. Default: true.
    #[serde(default = "yes")]
    pub verify: bool,
    /// PEM file of the CAs to trust for this upstream instead of the system's.
    /// Default: none (system roots).
    #[serde(default)]
    pub ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Require a valid bearer token. Default: true.
    #[serde(default = "yes")]
    pub required: bool,
    /// Scopes every request must carry. Default: none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes required per method, instead of `scopes`, for the methods listed; the
    /// key `"*"` gives the scopes of every method not listed. Without `"*"`, a
    /// non-standard method (`PURGE`) that is not listed is refused with 405.
    /// Default: none.
    #[serde(default)]
    pub method_scopes: BTreeMap<String, Vec<String>>,
    /// Pass the client's `Authorization` header on to the upstream. Default: true.
    #[serde(default = "yes")]
    pub forward_authorization: bool,
    /// The route's audience: a token requested with this `resource` (RFC 8707) is accepted
    /// here and refused on every other route; the `aud` of `upstream_token: jwt` tokens.
    /// Default: none.
    #[serde(default)]
    pub audience: Option<String>,
    /// What the upstream gets in `Authorization`: `forward` (the client's token, as
    /// `forward_authorization` says) or `jwt` (a short-lived JWT for `audience`, signed by the
    /// active key: a phantom token). Default: `forward`.
    #[serde(default)]
    pub upstream_token: Option<String>,
    /// Lifetime of those JWTs, seconds (never past the client's token). Default: 60.
    #[serde(default = "default_upstream_token_ttl")]
    pub upstream_token_ttl_seconds: u64,
}

fn default_upstream_token_ttl() -> u64 {
    60
}
