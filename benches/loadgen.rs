//! The load generator: drives a running gateway over keep-alive HTTP/1.1 connections, plain or
//! TLS, and reports throughput and latency per scenario. `scripts/bench.sh` points it at
//! processes on loopback; operators point it at their own deployment (README, "Load-testing your
//! own deployment"). It also measures the raw RS256 signing rate and prints the bench's table.
//!
//! ```text
//! loadgen run --target https://gw.example.com --scenario client_credentials=1,protected=9 \
//!     --client-id ID --seconds 30 --rate 500 --json out.json --svg out.svg
//! loadgen run --target http://127.0.0.1:16882 --scenario protected --jsonl   # a JSON line per row
//! loadgen sign-rate --key conf/keys/demo-rs256-100.pem --seconds 3
//! loadgen report target/bench/results.jsonl                                 # the bench's table
//! ```
//!
//! Each connection runs its steps back to back (closed loop) or on a fixed schedule (`--rate`,
//! latency measured from the scheduled start, so a stall is not hidden); in a mix it picks each
//! step's scenario by weight. It sends to the `--target` given and nowhere else (a redirect's
//! `Location` is read, never followed). Every run is bounded in time: the setup (the tokens the
//! scenarios need) within `--timeout-ms`, each request within `--timeout-ms` (an error past
//! it), and the run at most `--warmup` + `--seconds` + `--timeout-ms` after the setup. Secrets,
//! passwords and tokens are never printed, error messages included.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde_json::{json, Value};
use tokio_rustls::rustls;

/// Why a load run failed: a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LoadError(String);

impl From<String> for LoadError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for LoadError {
    fn from(message: &str) -> Self {
        Self(message.to_string())
    }
}

type LoadResult<T> = Result<T, LoadError>;

/// The light-oauth2 seed client of the demo configurations (its secret is public).
const DEMO_CLIENT_ID: &str = "f7d42348-c647-4efb-a52d-4c5787421e72";
const DEMO_CLIENT_SECRET: &str = "f6h1FTI8Q3-7UScPZDzfXA";
/// About the length of a light-oauth2 client_credentials access token.
const UNCHECKED_TOKEN_LEN: usize = 600;
/// The protected route with a rate limit and health checks in conf/bench.yaml.
const GUARDED_PATH: &str = "/v1/guarded/x";
/// Latencies are recorded up to a minute (`--timeout-ms` is at most that).
const MAX_LATENCY_MICROS: u64 = 60_000_000;
/// Longest part of a server's error body kept in a message.
const MAX_ERROR_BODY: usize = 300;

#[derive(Parser)]
#[command(about = "Tollgate's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// RS256 signatures per second on this thread, with the key parsed once.
    SignRate {
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Drives a scenario or a weighted mix of them against one URL and prints the results.
    Run(Box<RunArgs>),
    /// Prints the Markdown table of a bench run's JSON lines.
    Report { results: PathBuf },
}

#[derive(Args)]
struct RunArgs {
    /// Where every request goes: `https://host[:port][/base]` or `http://…`; a bare `host:port`
    /// is plain HTTP. `Host` (and SNI) are the URL's; a base path is put in front of every
    /// request path. Nothing else is ever contacted.
    #[arg(long, value_name = "URL")]
    target: String,
    /// A scenario, or a weighted mix `NAME=WEIGHT,…` (e.g. `client_credentials=1,protected=9`):
    /// client_credentials, password, refresh_token, authorization_code, protected,
    /// protected_opaque, unprotected; for scripts/bench.sh also protected_guarded (GET
    /// /v1/guarded/x), bare_pingora (as unprotected) and upstream (as unprotected).
    #[arg(long, value_name = "NAME | NAME=WEIGHT,...")]
    scenario: String,
    /// Keep-alive connections, each sending one step after another.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Steps per second across all connections (open loop); without it each connection sends
    /// its next step as soon as the last one is answered.
    #[arg(long)]
    rate: Option<f64>,
    /// Bound on each request, connecting included (past it: an error), on the setup, and on
    /// how long the run may outlast warm-up + seconds. At most 60000.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// PEM file of CA certificates to trust besides the system's roots (a private CA).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The results' row name instead of the scenario's (for a mix: of the total row), e.g.
    /// `protected_reloading` for the protected scenario while the configuration reloads.
    #[arg(long)]
    label: Option<String>,
    /// Print one JSON line per row (the form `report` reads) instead of the table.
    #[arg(long)]
    jsonl: bool,
    /// Also write the full results (every row, with a list of percentiles) to this JSON file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write a latency-by-percentile plot of every row to this SVG file.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// The process id of the server under load, when it runs on this machine (Linux): its CPU
    /// time over the measured seconds (every thread, user and system, from /proc) is reported
    /// as the share of one core it used and as CPU time per request, which shows whether the
    /// server was the bottleneck and, unlike requests per second, leaves out time the server
    /// waited for its core.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    #[command(flatten)]
    credentials: Credentials,
    #[command(flatten)]
    paths: Paths,
}

/// Who the scenarios authenticate as. No `Debug`: it holds secrets.
#[derive(Args)]
#[command(next_help_heading = "Credentials")]
struct Credentials {
    /// The confidential client of the token scenarios and of `protected`.
    #[arg(long, env = "LOADGEN_CLIENT_ID", default_value = DEMO_CLIENT_ID)]
    client_id: String,
    /// Its secret, sent as HTTP Basic (RFC 6749 2.3.1); empty: `client_id` in the form instead.
    #[arg(long, env = "LOADGEN_CLIENT_SECRET", hide_env_values = true, default_value = DEMO_CLIENT_SECRET)]
    client_secret: String,
    /// The user of the password and authorization_code scenarios.
    #[arg(long, env = "LOADGEN_USERNAME", default_value = "admin")]
    username: String,
    /// That user's password.
    #[arg(
        long,
        env = "LOADGEN_PASSWORD",
        hide_env_values = true,
        default_value = "123456"
    )]
    password: String,
    /// Scope to ask for in the client's token and authorize requests (default: none named).
    #[arg(long, env = "LOADGEN_SCOPE")]
    scope: Option<String>,
    /// The client of protected_opaque: one with opaque tokens whose password grant needs no
    /// secret.
    #[arg(long, env = "LOADGEN_OPAQUE_CLIENT_ID", default_value = "1421589198")]
    opaque_client_id: String,
    /// The user of protected_opaque's password grant.
    #[arg(long, env = "LOADGEN_OPAQUE_USERNAME", default_value = "Hillary")]
    opaque_username: String,
    /// That user's password.
    #[arg(
        long,
        env = "LOADGEN_OPAQUE_PASSWORD",
        hide_env_values = true,
        default_value = "12345678"
    )]
    opaque_password: String,
    /// Scope of protected_opaque's token (empty: none named).
    #[arg(long, default_value = "identify")]
    opaque_scope: String,
}

/// The paths the scenarios use, below the target's base path.
#[derive(Args)]
#[command(next_help_heading = "Paths")]
struct Paths {
    #[arg(long, default_value = "/oauth2/token")]
    token_path: String,
    #[arg(long, default_value = "/oauth2/authorize")]
    authorize_path: String,
    /// GET with the client's token (protected).
    #[arg(long, default_value = "/v1/pets")]
    protected_path: String,
    /// GET with an unchecked token-sized header (unprotected).
    #[arg(long, default_value = "/v1/open/x")]
    unprotected_path: String,
    /// GET with the opaque client's token (protected_opaque).
    #[arg(long, default_value = "/v1/opaque/x")]
    opaque_path: String,
}

/// Where the connections go: one address, resolved once, and what to say to it.
struct Endpoint {
    /// `scheme://authority/base` as parsed, for messages.
    url: String,
    addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    authority: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Endpoint {
    /// Parses `--target`, resolves its host once and prepares TLS; returns the base path too.
    async fn new(target: &str, ca: Option<&Path>, timeout: Duration) -> LoadResult<(Self, String)> {
        let url = if target.contains("://") {
            target.to_string()
        } else {
            format!("http://{target}")
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("--target `{target}`: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err("--target must be an http:// or https:// URL".into()),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--target `{target}` names no host"))?;
        if authority.as_str().contains('@') {
            return Err(
                "--target must not hold credentials; use --client-id and LOADGEN_CLIENT_SECRET"
                    .into(),
            );
        }
        if uri.query().is_some() {
            return Err("--target must not have a query".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("resolving {host}: no answer within the timeout"))?
            .map_err(|e| format!("resolving {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolving {host}: no address"))?;
        let tls = match (https, ca) {
            (true, ca) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| format!("`{host}` as a TLS server name: {e}"))?;
                Some((
                    tokio_rustls::TlsConnector::from(Arc::new(tls_config(ca)?)),
                    name,
                ))
            }
            (false, Some(_)) => return Err("--ca is for an https:// target".into()),
            (false, None) => None,
        };
        let base = uri.path().trim_end_matches('/').to_string();
        let endpoint = Self {
            url: format!(
                "{}://{}{base}",
                if https { "https" } else { "http" },
                authority.as_str()
            ),
            addr,
            authority: authority.as_str().to_string(),
            tls,
            timeout,
        };
        Ok((endpoint, base))
    }
}

/// The system's roots plus `--ca`; HTTP/1.1 offered by ALPN.
fn tls_config(ca: Option<&Path>) -> LoadResult<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped; what counts is that some root is left.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(ca) = ca {
        let certs =
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to trust: none in the system store and no --ca".into());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Everything the scenarios send that does not change during a run, built once. No `Debug`:
/// it holds secrets.
struct Plan {
    endpoint: Arc<Endpoint>,
    token_path: String,
    /// `Authorization` of the client's token requests; `None` for a client without a secret.
    token_authorization: Option<String>,
    /// `client_id=…` when the client has no secret, else empty: the start of its token requests.
    client_form: String,
    client_credentials_body: Bytes,
    password_body: Bytes,
    authorize_uri: String,
    /// The user's credentials at the authorization endpoint.
    user_authorization: String,
    opaque_body: Bytes,
    protected_path: String,
    opaque_path: String,
    unprotected_path: String,
    guarded_path: String,
    /// Strings that never appear in a message (secrets, passwords, their encodings).
    secrets: Vec<String>,
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Plan {
    fn new(endpoint: Endpoint, base: &str, c: &Credentials, p: &Paths) -> LoadResult<Self> {
        let path = |flag: &str, value: &str| -> LoadResult<String> {
            if value.starts_with('/') {
                Ok(format!("{base}{value}"))
            } else {
                Err(LoadError(format!("--{flag} must start with `/`")))
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let client_basic = (!c.client_secret.is_empty()).then(|| {
            b64.encode(format!(
                "{}:{}",
                url_encode(&c.client_id),
                url_encode(&c.client_secret)
            ))
        });
        let client_form = match client_basic {
            Some(_) => String::new(),
            None => form(&[("client_id", &c.client_id)]),
        };
        // A form of the client's token request, with `--scope` when given.
        let client_form_with = |pairs: &[(&str, &str)]| {
            let mut body = form_urlencoded::Serializer::for_suffix(client_form.clone(), 0);
            body.extend_pairs(pairs);
            if let Some(scope) = &c.scope {
                body.append_pair("scope", scope);
            }
            body.finish()
        };
        let client_credentials_body = client_form_with(&[("grant_type", "client_credentials")]);
        let password_body = client_form_with(&[
            ("grant_type", "password"),
            ("username", &c.username),
            ("password", &c.password),
        ]);
        let mut authorize_query = form_urlencoded::Serializer::new(String::new());
        authorize_query.extend_pairs([
            ("response_type", "code"),
            ("client_id", &c.client_id),
            ("state", "loadgen"),
        ]);
        if let Some(scope) = &c.scope {
            authorize_query.append_pair("scope", scope);
        }
        let authorize_query = authorize_query.finish();
        let user_basic = b64.encode(format!("{}:{}", c.username, c.password));
        let mut opaque = vec![
            ("client_id", c.opaque_client_id.as_str()),
            ("grant_type", "password"),
            ("username", &c.opaque_username),
            ("password", &c.opaque_password),
        ];
        if !c.opaque_scope.is_empty() {
            opaque.push(("scope", &c.opaque_scope));
        }
        // Each as sent and form-encoded, as a server echoing a request would quote it.
        let secrets = [&c.client_secret, &c.password, &c.opaque_password]
            .into_iter()
            .flat_map(|s| [s.clone(), url_encode(s)])
            .chain([user_basic.clone()])
            .chain(client_basic.clone())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Self {
            endpoint: Arc::new(endpoint),
            token_path: path("token-path", &p.token_path)?,
            token_authorization: client_basic.map(|b| format!("Basic {b}")),
            client_form,
            client_credentials_body: Bytes::from(client_credentials_body),
            password_body: Bytes::from(password_body),
            authorize_uri: format!(
                "{}?{authorize_query}",
                path("authorize-path", &p.authorize_path)?
            ),
            user_authorization: format!("Basic {user_basic}"),
            opaque_body: Bytes::from(form(&opaque)),
            protected_path: path("protected-path", &p.protected_path)?,
            opaque_path: path("opaque-path", &p.opaque_path)?,
            unprotected_path: path("unprotected-path", &p.unprotected_path)?,
            guarded_path: format!("{base}{GUARDED_PATH}"),
            secrets,
        })
    }

    /// A token request of the client: its `client_id` when it has no secret, then `pairs`.
    fn client_body(&self, pairs: &[(&str, &str)]) -> Bytes {
        let mut body = form_urlencoded::Serializer::for_suffix(self.client_form.clone(), 0);
        body.extend_pairs(pairs);
        Bytes::from(body.finish())
    }

    /// `text` (a server's reply) cut short, without any secret of this run or `token`.
    fn redact(&self, text: &str, token: Option<&str>) -> String {
        let mut text = text.to_string();
        for secret in self.secrets.iter().map(String::as_str).chain(token) {
            text = text.replace(secret, "[redacted]");
        }
        match text.char_indices().nth(MAX_ERROR_BODY) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }

    /// `Ok` when `reply` has `status`; otherwise an error quoting the server's body, redacted.
    fn check(&self, reply: &Reply, status: u16, token: Option<&str>) -> LoadResult<()> {
        if reply.status == status {
            Ok(())
        } else {
            Err(LoadError(format!(
                "status {} (wanted {status}): {}",
                reply.status,
                self.redact(&String::from_utf8_lossy(&reply.body), token)
            )))
        }
    }
}

/// One keep-alive connection, re-opened when the server closes it.
struct Conn {
    endpoint: Arc<Endpoint>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: Bytes,
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

impl Conn {
    /// One request and its whole reply within the endpoint's timeout.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> LoadResult<Reply> {
        let timeout = self.endpoint.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, path, headers, body)).await {
            Ok(reply) => reply,
            Err(_) => {
                // The connection is mid-request: start afresh.
                self.sender = None;
                Err(LoadError(format!(
                    "no reply within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    async fn connect(&self) -> LoadResult<SendRequest<Full<Bytes>>> {
        let endpoint = &self.endpoint;
        let stream = tokio::net::TcpStream::connect(endpoint.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", endpoint.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let handshake_error = |e: hyper::Error| format!("HTTP/1.1 with {}: {e}", endpoint.url);
        Ok(match &endpoint.tls {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(handshake_error)?;
                tokio::spawn(conn);
                sender
            }
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", endpoint.url))?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(handshake_error)?;
                tokio::spawn(conn);
                sender
            }
        })
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> LoadResult<Reply> {
        for _ in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.sender = Some(self.connect().await?);
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", self.endpoint.authority.as_str());
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(body.clone()))
                .map_err(|e| e.to_string())?;
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let location = resp
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_string);
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    return Ok(Reply {
                        status,
                        location,
                        body,
                    });
                }
                Err(_) => self.sender = None,
            }
        }
        Err("the connection failed twice".into())
    }

    /// A token request of the client (`--client-id`).
    async fn token(&mut self, plan: &Plan, body: Bytes) -> LoadResult<Reply> {
        match &plan.token_authorization {
            Some(authorization) => {
                self.send(
                    Method::POST,
                    &plan.token_path,
                    &[("authorization", authorization), FORM],
                    body,
                )
                .await
            }
            None => {
                self.send(Method::POST, &plan.token_path, &[FORM], body)
                    .await
            }
        }
    }
}

fn json_field(reply: &Reply, field: &str) -> LoadResult<String> {
    let v: Value =
        serde_json::from_slice(&reply.body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    v[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| LoadError(format!("no `{field}` in the reply")))
}

/// The scenarios; each step of one is its measured unit of work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    ClientCredentials,
    Password,
    RefreshToken,
    AuthorizationCode,
    Protected,
    ProtectedOpaque,
    ProtectedGuarded,
    Unprotected,
    BarePingora,
    Upstream,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::ClientCredentials,
        Kind::Password,
        Kind::RefreshToken,
        Kind::AuthorizationCode,
        Kind::Protected,
        Kind::ProtectedOpaque,
        Kind::ProtectedGuarded,
        Kind::Unprotected,
        Kind::BarePingora,
        Kind::Upstream,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::ClientCredentials => "client_credentials",
            Kind::Password => "password",
            Kind::RefreshToken => "refresh_token",
            Kind::AuthorizationCode => "authorization_code",
            Kind::Protected => "protected",
            Kind::ProtectedOpaque => "protected_opaque",
            Kind::ProtectedGuarded => "protected_guarded",
            Kind::Unprotected => "unprotected",
            Kind::BarePingora => "bare_pingora",
            Kind::Upstream => "upstream",
        }
    }
}

/// `NAME` or `NAME=WEIGHT,NAME=WEIGHT,…`: the scenarios and their weights (1 when not given).
fn parse_mix(spec: &str) -> LoadResult<Vec<(Kind, u32)>> {
    let mut mix: Vec<(Kind, u32)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once('=') {
            Some((name, weight)) => (
                name.trim(),
                weight
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=1_000_000).contains(w))
                    .ok_or_else(|| {
                        format!("`{part}`: a weight is a whole number from 1 to 1000000")
                    })?,
            ),
            None => (part, 1),
        };
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown scenario `{name}` (known: {})", known.join(", "))
            })?;
        if mix.iter().any(|(k, _)| *k == kind) {
            return Err(LoadError(format!("`{name}` is named twice")));
        }
        mix.push((kind, weight));
    }
    if mix.is_empty() {
        return Err("--scenario names no scenario".into());
    }
    Ok(mix)
}

/// Per-connection state of a scenario.
enum State {
    ClientCredentials,
    Password,
    RefreshToken {
        refresh_token: String,
    },
    AuthorizationCode,
    Get {
        path: String,
        authorization: String,
        /// The header holds a real token (kept out of messages).
        secret: bool,
    },
}

impl State {
    /// What a connection needs before its first step: the tokens of the GET scenarios and the
    /// refresh token to rotate.
    async fn setup(kind: Kind, plan: &Plan, conn: &mut Conn) -> LoadResult<Self> {
        let get_with_token = |path: &str, reply: &Reply| -> LoadResult<Self> {
            Ok(State::Get {
                path: path.to_string(),
                authorization: format!("Bearer {}", json_field(reply, "access_token")?),
                secret: true,
            })
        };
        Ok(match kind {
            Kind::ClientCredentials => State::ClientCredentials,
            Kind::Password => State::Password,
            Kind::RefreshToken => {
                let reply = conn.token(plan, plan.password_body.clone()).await?;
                plan.check(&reply, 200, None)?;
                State::RefreshToken {
                    refresh_token: json_field(&reply, "refresh_token")?,
                }
            }
            Kind::AuthorizationCode => State::AuthorizationCode,
            // `protected_guarded`: the same check on a route with a rate limit and active
            // health checks (conf/bench.yaml), to show what they cost.
            Kind::Protected | Kind::ProtectedGuarded => {
                let reply = conn
                    .token(plan, plan.client_credentials_body.clone())
                    .await?;
                plan.check(&reply, 200, None)?;
                let path = if kind == Kind::Protected {
                    &plan.protected_path
                } else {
                    &plan.guarded_path
                };
                get_with_token(path, &reply)?
            }
            Kind::ProtectedOpaque => {
                let reply = conn
                    .send(
                        Method::POST,
                        &plan.token_path,
                        &[FORM],
                        plan.opaque_body.clone(),
                    )
                    .await?;
                plan.check(&reply, 200, None)?;
                get_with_token(&plan.opaque_path, &reply)?
            }
            // The same Authorization header as the protected scenario (a token's size), unchecked:
            // the comparison then isolates the cost of checking it.
            Kind::Unprotected | Kind::BarePingora | Kind::Upstream => State::Get {
                path: plan.unprotected_path.clone(),
                authorization: format!("Bearer {}", "x".repeat(UNCHECKED_TOKEN_LEN)),
                secret: false,
            },
        })
    }

    /// One measured unit of work.
    async fn step(&mut self, plan: &Plan, conn: &mut Conn) -> LoadResult<()> {
        match self {
            State::ClientCredentials => {
                let reply = conn
                    .token(plan, plan.client_credentials_body.clone())
                    .await?;
                plan.check(&reply, 200, None)
            }
            State::Password => {
                let reply = conn.token(plan, plan.password_body.clone()).await?;
                plan.check(&reply, 200, None)
            }
            State::RefreshToken { refresh_token } => {
                let body = plan.client_body(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ]);
                let reply = conn.token(plan, body).await?;
                plan.check(&reply, 200, Some(refresh_token))?;
                *refresh_token = json_field(&reply, "refresh_token")?;
                Ok(())
            }
            State::AuthorizationCode => {
                let reply = conn
                    .send(
                        Method::GET,
                        &plan.authorize_uri,
                        &[("authorization", &plan.user_authorization)],
                        Bytes::new(),
                    )
                    .await?;
                plan.check(&reply, 302, None)?;
                let location = reply.location.ok_or("no Location in the authorize reply")?;
                let query = location.split_once('?').map_or("", |(_, q)| q);
                let code = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .ok_or("no code in the authorize redirect")?;
                let body =
                    plan.client_body(&[("grant_type", "authorization_code"), ("code", &code)]);
                let reply = conn.token(plan, body).await?;
                plan.check(&reply, 200, Some(&code))
            }
            State::Get {
                path,
                authorization,
                secret,
            } => {
                let reply = conn
                    .send(
                        Method::GET,
                        path,
                        &[("authorization", authorization)],
                        Bytes::new(),
                    )
                    .await?;
                let token = authorization.strip_prefix("Bearer ").filter(|_| *secret);
                plan.check(&reply, 200, token)
            }
        }
    }
}

/// A small deterministic PRNG (SplitMix64) for the mix: each connection gets its own seed,
/// so a run's sequence of scenarios is reproducible.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index into `weights`, each chosen with probability weight / sum.
    fn pick(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        if weights.len() < 2 || total == 0 {
            return 0;
        }
        let mut r = self.next() % total;
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }
}

/// What was measured for one scenario, or for a whole mix.
struct Tally {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> LoadResult<Self> {
        Ok(Self {
            latencies: Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 3)
                .map_err(|e| e.to_string())?,
            errors: 0,
            first_error: None,
        })
    }

    fn merge(&mut self, other: &Tally) -> LoadResult<()> {
        self.latencies
            .add(&other.latencies)
            .map_err(|e| e.to_string())?;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        Ok(())
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latencies.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn error(&mut self, error: impl FnOnce() -> String) {
        self.errors += 1;
        self.first_error.get_or_insert_with(error);
    }
}

/// The scenarios' weights and one tally per scenario, shared by every connection: memory does
/// not grow with `--connections`, and on this one-thread runtime the locks are never contended.
struct Mix {
    weights: Vec<u32>,
    tallies: Vec<Mutex<Tally>>,
}

fn lock(tally: &Mutex<Tally>) -> MutexGuard<'_, Tally> {
    // A panic elsewhere cannot leave a tally half-written in a way that matters here.
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When a run's steps start and stop, the same for every connection.
#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    measure_from: Instant,
    end: Instant,
    /// Past this a step still waiting is abandoned as an error: `end` plus the request timeout.
    hard_end: Instant,
    /// Between one connection's steps in open loop; `None`: closed loop.
    interval: Option<Duration>,
}

/// One connection's steps from `schedule.start + offset` to `schedule.end`, recorded in the
/// mix's tallies.
async fn drive(
    plan: Arc<Plan>,
    mix: Arc<Mix>,
    mut conn: Conn,
    mut states: Vec<State>,
    mut rng: SplitMix64,
    schedule: Schedule,
    offset: Duration,
) {
    let mut next = schedule.start + offset;
    tokio::time::sleep_until(next.into()).await;
    // The scheduled start of the first step not sent when the run's time was up (open loop).
    let unsent_from = loop {
        let scheduled = match schedule.interval {
            Some(every) => {
                let at = next;
                next += every;
                if at >= schedule.end {
                    break None;
                }
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        if scheduled >= schedule.end {
            break None;
        }
        if Instant::now() >= schedule.hard_end {
            break Some(scheduled);
        }
        let i = rng.pick(&mix.weights);
        let (Some(state), Some(tally)) = (states.get_mut(i), mix.tallies.get(i)) else {
            break None;
        };
        let result =
            match tokio::time::timeout_at(schedule.hard_end.into(), state.step(&plan, &mut conn))
                .await
            {
                Ok(result) => result,
                Err(_) => Err("still waiting when the run's time was up".into()),
            };
        if scheduled >= schedule.measure_from {
            match result {
                Ok(()) => {
                    let micros = scheduled
                        .elapsed()
                        .as_micros()
                        .clamp(1, MAX_LATENCY_MICROS.into());
                    let _ = lock(tally).latencies.record(micros as u64);
                }
                Err(e) => lock(tally).error(|| e.to_string()),
            }
        }
    };
    // In open loop a stalled connection falls behind its schedule; the measured steps it never
    // sent are errors too, or a stall would hide the requests it held up.
    if let (Some(mut at), Some(every)) = (unsent_from, schedule.interval) {
        while at < schedule.end {
            if at >= schedule.measure_from {
                if let Some(tally) = mix.tallies.get(rng.pick(&mix.weights)) {
                    lock(tally).error(|| {
                        "not sent by the run's end: the connection was waiting for an earlier reply"
                            .to_string()
                    });
                }
            }
            at += every;
        }
    }
}

/// A connection with the state of every scenario of the mix.
async fn set_up(plan: Arc<Plan>, kinds: Vec<Kind>) -> LoadResult<(Conn, Vec<State>)> {
    let mut conn = Conn {
        endpoint: Arc::clone(&plan.endpoint),
        sender: None,
    };
    let mut states = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let state = State::setup(kind, &plan, &mut conn)
            .await
            .map_err(|e| format!("setting up {}: {e}", kind.name()))?;
        states.push(state);
    }
    Ok((conn, states))
}

/// A result row: one scenario of the run, or the total of a mix.
struct Row {
    name: String,
    tally: Tally,
    /// The sum of a mix's scenarios.
    total: bool,
}

/// What a run was asked to do, for the outputs.
struct RunInfo {
    target: String,
    scenario: String,
    mix: bool,
    connections: usize,
    rate: Option<f64>,
    seconds: f64,
    warmup: f64,
    timeout_ms: u64,
    /// The server's CPU time over the measured seconds (`--server-pid`).
    server_cpu: Option<ServerCpu>,
}

/// What the server under load used (`--server-pid`).
#[derive(Clone, Copy)]
struct ServerCpu {
    /// CPU time, user and system, every thread.
    used: Duration,
    /// The wall time between the two readings.
    over: Duration,
}

impl ServerCpu {
    /// The share of one core.
    fn core_share(self) -> f64 {
        self.used.as_secs_f64() / self.over.as_secs_f64().max(1e-9)
    }

    /// CPU microseconds per request.
    fn us_per_request(self, requests: u64) -> f64 {
        self.used.as_secs_f64() * 1e6 / requests.max(1) as f64
    }
}

/// The CPU time a process has used so far: user and system, every thread (/proc/PID/stat).
fn process_cpu(pid: u32) -> LoadResult<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("--server-pid: {path}: {e}"))?;
    // The command name (field 2) is in parentheses and may hold anything: fields are counted
    // after its closing one, which leaves utime and stime (fields 14 and 15) at 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(format!("--server-pid: {path} does not read as a process status").into());
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .ok_or("--server-pid: the clock tick rate is unknown")?;
    Ok(Duration::from_secs_f64(
        (user + system) as f64 / per_second as f64,
    ))
}

fn check_args(args: &RunArgs) -> LoadResult<()> {
    if !(1..=10_000).contains(&args.connections) {
        return Err("--connections must be from 1 to 10000".into());
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        return Err("--seconds must be more than 0 and at most 86400".into());
    }
    if !(args.warmup.is_finite() && (0.0..=3_600.0).contains(&args.warmup)) {
        return Err("--warmup must be from 0 to 3600".into());
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
            return Err("--rate must be more than 0 and at most 10000000".into());
        }
    }
    if !(1..=60_000).contains(&args.timeout_ms) {
        return Err("--timeout-ms must be from 1 to 60000".into());
    }
    Ok(())
}

async fn run(args: RunArgs) -> LoadResult<()> {
    check_args(&args)?;
    let scenarios = parse_mix(&args.scenario)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let (endpoint, base) = Endpoint::new(&args.target, args.ca.as_deref(), timeout).await?;
    let plan = Arc::new(Plan::new(endpoint, &base, &args.credentials, &args.paths)?);
    let kinds: Vec<Kind> = scenarios.iter().map(|(k, _)| *k).collect();

    // Every connection first gets what its scenarios need, all within one timeout.
    let setup_deadline = Instant::now() + timeout;
    let setups: Vec<_> = (0..args.connections)
        .map(|_| {
            let setup = set_up(Arc::clone(&plan), kinds.clone());
            tokio::spawn(tokio::time::timeout_at(setup_deadline.into(), setup))
        })
        .collect();
    let mut ready = Vec::with_capacity(setups.len());
    for setup in setups {
        let outcome = setup.await.map_err(|e| e.to_string())?;
        ready.push(outcome.map_err(|_| {
            format!(
                "the setup (the tokens the scenarios need) took longer than {} ms",
                args.timeout_ms
            )
        })??);
    }

    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r));
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.seconds);
    let schedule = Schedule {
        start,
        measure_from,
        end,
        hard_end: end + timeout,
        interval,
    };
    let mix = Arc::new(Mix {
        weights: scenarios.iter().map(|(_, w)| *w).collect(),
        tallies: kinds
            .iter()
            .map(|_| Tally::new().map(Mutex::new))
            .collect::<LoadResult<_>>()?,
    });
    // The server's CPU time at the start and at the end of the measured seconds. A server
    // that is gone by the end (it crashed under load) leaves the run's results without it.
    let server_cpu = args.server_pid.map(|pid| {
        process_cpu(pid)?;
        Ok::<_, LoadError>(tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let (before, from) = (process_cpu(pid).ok()?, Instant::now());
            tokio::time::sleep_until(end.into()).await;
            match process_cpu(pid) {
                Ok(after) => Some(ServerCpu {
                    used: after.saturating_sub(before),
                    over: from.elapsed(),
                }),
                Err(e) => {
                    eprintln!("loadgen: no CPU time for the server: {e}");
                    None
                }
            }
        }))
    });
    let server_cpu = server_cpu.transpose()?;
    let tasks: Vec<_> = ready
        .into_iter()
        .enumerate()
        .map(|(i, (conn, states))| {
            // Spread the schedule of open-loop connections across one interval.
            let offset = interval.map_or(Duration::ZERO, |every| {
                every.mul_f64(i as f64 / args.connections as f64)
            });
            let rng = SplitMix64(0x6c6f_6164_6765_6e00 ^ i as u64);
            tokio::spawn(drive(
                Arc::clone(&plan),
                Arc::clone(&mix),
                conn,
                states,
                rng,
                schedule,
                offset,
            ))
        })
        .collect();
    // Every task ends by `hard_end`; the second's margin is for the last replies' bookkeeping.
    let give_up = schedule.hard_end + Duration::from_secs(1);
    for task in tasks {
        tokio::time::timeout_at(give_up.into(), task)
            .await
            .map_err(|_| "a connection did not stop at the run's end")?
            .map_err(|e| e.to_string())?;
    }
    let server_cpu = match server_cpu {
        Some(sampler) => sampler.await.map_err(|e| e.to_string())?,
        None => None,
    };
    let per_scenario = Arc::try_unwrap(mix)
        .map_err(|_| "a connection did not stop at the run's end")?
        .tallies
        .into_iter()
        .map(|t| t.into_inner().unwrap_or_else(PoisonError::into_inner));

    let single = kinds.len() == 1;
    let mut rows: Vec<Row> = kinds
        .iter()
        .zip(per_scenario)
        .map(|(kind, tally)| Row {
            name: match (&args.label, single) {
                (Some(label), true) => label.clone(),
                _ => kind.name().to_string(),
            },
            tally,
            total: false,
        })
        .collect();
    if !single {
        let mut total = Tally::new()?;
        for row in &rows {
            total.merge(&row.tally)?;
        }
        rows.push(Row {
            name: args.label.clone().unwrap_or_else(|| "total".to_string()),
            tally: total,
            total: true,
        });
    }
    let info = RunInfo {
        target: plan.endpoint.url.clone(),
        scenario: args.scenario.clone(),
        mix: !single,
        connections: args.connections,
        rate: args.rate,
        seconds: args.seconds,
        warmup: args.warmup,
        timeout_ms: args.timeout_ms,
        server_cpu,
    };
    if args.jsonl {
        for row in &rows {
            println!("{}", row_json(row, &info));
        }
    } else {
        print!("{}", table(&rows, &info));
    }
    if let Some(path) = &args.json {
        let full = json!({
            "target": info.target,
            "scenario": info.scenario,
            "connections": info.connections,
            "rate": info.rate,
            "seconds": info.seconds,
            "warmup": info.warmup,
            "timeout_ms": info.timeout_ms,
            "rows": rows.iter().map(|row| {
                let mut v = row_json(row, &info);
                v["percentiles"] = percentile_list(&row.tally);
                v
            }).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&full).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let svg = svg_plot(&rows, &info).map_err(|e| e.to_string())?;
        std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A row as the JSON line `report` reads (its fields "scenario", "connections", "rate",
/// "requests", "errors", "first_error", "rps", "p50_ms", "p99_ms" keep their meaning).
fn row_json(row: &Row, info: &RunInfo) -> Value {
    let t = &row.tally;
    let mut v = json!({
        "scenario": row.name,
        "connections": info.connections,
        "rate": info.rate,
        "requests": t.latencies.len(),
        "errors": t.errors,
        "first_error": t.first_error,
        "rps": t.latencies.len() as f64 / info.seconds,
        "p50_ms": t.ms(0.5),
        "p90_ms": t.ms(0.9),
        "p99_ms": t.ms(0.99),
        "p999_ms": t.ms(0.999),
        "max_ms": t.latencies.max() as f64 / 1000.0,
    });
    if info.mix {
        v["mix"] = Value::from(info.scenario.as_str());
    }
    // The server's CPU belongs to every request of the run: the one row, or a mix's total.
    if let (Some(cpu), true) = (info.server_cpu, row.total || !info.mix) {
        v["server_core_share"] = Value::from(cpu.core_share());
        if !t.latencies.is_empty() {
            v["server_cpu_us_per_request"] = Value::from(cpu.us_per_request(t.latencies.len()));
        }
    }
    v
}

/// The classic percentile list of an HdrHistogram report.
fn percentile_list(tally: &Tally) -> Value {
    const PERCENTILES: [f64; 18] = [
        0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 90.0, 95.0, 99.0, 99.5, 99.9,
        99.99, 99.999, 100.0,
    ];
    PERCENTILES
        .iter()
        .map(|p| json!({ "percentile": p, "ms": tally.ms(p / 100.0) }))
        .collect()
}

/// The human-readable results: a line on the run, then one row per scenario.
fn table(rows: &[Row], info: &RunInfo) -> String {
    let load = match info.rate {
        Some(rate) => format!("open loop at {rate}/s"),
        None => "closed loop".to_string(),
    };
    let mut out = format!(
        "{} — {}: {} connections, {load}, {} s measured after {} s of warm-up\n\n",
        info.target, info.scenario, info.connections, info.seconds, info.warmup
    );
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(8);
    out += &format!(
        "{:<width$} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8}\n",
        "scenario",
        "requests",
        "req/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    for row in rows {
        let t = &row.tally;
        out += &format!(
            "{:<width$} {:>9} {:>9.1} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2}\n",
            row.name,
            t.latencies.len(),
            t.latencies.len() as f64 / info.seconds,
            t.errors,
            t.ms(0.5),
            t.ms(0.9),
            t.ms(0.99),
            t.ms(0.999),
            t.latencies.max() as f64 / 1000.0,
        );
    }
    for row in rows.iter().filter(|r| !r.total) {
        if let Some(e) = &row.tally.first_error {
            out += &format!("first error in {}: {e}\n", row.name);
        }
    }
    if let (Some(cpu), Some(all)) = (
        info.server_cpu,
        rows.iter().find(|r| r.total).or(rows.first()),
    ) {
        out += &format!(
            "server: {:.0} % of one core, {:.1} µs of CPU per request\n",
            100.0 * cpu.core_share(),
            cpu.us_per_request(all.tally.latencies.len())
        );
    }
    out
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A latency-by-percentile plot as HdrHistogram's plotter draws it: the x axis in "nines"
/// (0, 90, 99, 99.9, 99.99 % at equal distances, i.e. -log10(1 - q)), latency in ms up the y
/// axis, one line per row. Written by hand: one chart of lines does not need a plotting crate.
fn svg_plot(rows: &[Row], info: &RunInfo) -> Result<String, std::fmt::Error> {
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    const NINES: f64 = 4.0; // the right edge: 99.99 %
    const STEPS: usize = 80;
    let (w, h, left, right, top, bottom) = (800.0, 480.0, 70.0, 30.0, 60.0, 60.0);
    let (plot_w, plot_h) = (w - left - right, h - top - bottom);
    let curves: Vec<(&Row, Vec<(f64, f64)>)> = rows
        .iter()
        .filter(|r| !r.tally.latencies.is_empty())
        .map(|r| {
            let points = (0..=STEPS)
                .map(|i| {
                    let nines = NINES * i as f64 / STEPS as f64;
                    (nines, r.tally.ms(1.0 - 10f64.powf(-nines)))
                })
                .collect();
            (r, points)
        })
        .collect();
    let highest = curves
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, ms)| *ms))
        .fold(0.0, f64::max);
    let (step, y_max) = nice_axis(highest);
    let x = |nines: f64| left + plot_w * nines / NINES;
    let y = |ms: f64| top + plot_h * (1.0 - ms / y_max);

    let mut s = String::new();
    writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    )?;
    writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#)?;
    let load = info
        .rate
        .map_or("closed loop".to_string(), |r| format!("{r}/s"));
    writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14" font-weight="bold">Latency by percentile: {}</text>"#,
        w / 2.0,
        xml_escape(&info.target),
    )?;
    writeln!(
        s,
        r#"<text x="{}" y="40" text-anchor="middle">{}: {} connections, {load}, {} s measured</text>"#,
        w / 2.0,
        xml_escape(&info.scenario),
        info.connections,
        info.seconds
    )?;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let ticks = (y_max / step).round() as usize;
    for k in 0..=ticks {
        let ms = k as f64 * step;
        let py = y(ms);
        writeln!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{ms:.decimals$}</text>"##,
            left + plot_w,
            left - 6.0,
            py + 4.0
        )?;
    }
    for (nines, label) in [
        (0.0, "0 %"),
        (1.0, "90 %"),
        (2.0, "99 %"),
        (3.0, "99.9 %"),
        (4.0, "99.99 %"),
    ] {
        let px = x(nines);
        writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="#e0e0e0"/><text x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            top + plot_h,
            top + plot_h + 18.0
        )?;
    }
    writeln!(
        s,
        r#"<path d="M{left} {top} V{} H{}" fill="none" stroke="black"/>"#,
        top + plot_h,
        left + plot_w
    )?;
    writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text>"#,
        left + plot_w / 2.0,
        h - 14.0
    )?;
    writeln!(
        s,
        r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">latency (ms)</text>"#,
        top + plot_h / 2.0
    )?;
    for (i, (row, points)) in curves.iter().enumerate() {
        // The total of a mix in black and dashed, the scenarios in colour.
        let (colour, dash) = if row.total {
            ("black", r#" stroke-dasharray="6 4""#)
        } else {
            (COLOURS[i % COLOURS.len()], "")
        };
        let coords: Vec<String> = points
            .iter()
            .map(|(n, ms)| format!("{:.1},{:.1}", x(*n), y(*ms)))
            .collect();
        writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            coords.join(" ")
        )?;
        let ly = top + 16.0 + 18.0 * i as f64;
        writeln!(
            s,
            r#"<line x1="{}" y1="{ly:.1}" x2="{}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{:.1}">{} ({} requests)</text>"#,
            left + 12.0,
            left + 36.0,
            left + 42.0,
            ly + 4.0,
            xml_escape(&row.name),
            row.tally.latencies.len()
        )?;
    }
    writeln!(s, "</svg>")?;
    Ok(s)
}

/// A y axis for values up to `highest`: a step of 1, 2 or 5 times a power of ten giving about
/// five ticks, and the top (a whole number of steps).
fn nice_axis(highest: f64) -> (f64, f64) {
    let highest = if highest > 0.0 { highest } else { 1.0 };
    let raw = highest / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step, (highest / step).ceil() * step)
}

/// RS256 signatures per second: aws-lc-rs with the key parsed once, on this thread.
fn sign_rate(key: &Path, seconds: f64) -> LoadResult<Value> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| e.to_string())?;
    let pair = RsaKeyPair::from_pkcs8(der.secret_der()).map_err(|e| e.to_string())?;
    let message = [b'x'; 350]; // about the size of a light-oauth2 header.payload
    let mut signature = vec![0u8; pair.public_modulus_len()];
    let rng = SystemRandom::new();
    let (start, mut count) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        pair.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
            .map_err(|e| e.to_string())?;
        count += 1;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    Ok(json!({ "sign_rate": rate, "signatures": count }))
}

/// The median over rounds of `name`'s closed-loop `field` divided by `other`'s in the same
/// round (the runs are interleaved, so a round's pair saw the same machine).
fn paired_ratio(
    rows: &[(RowKey, Vec<&Value>)],
    field: &str,
    name: &str,
    other: &str,
) -> Option<f64> {
    let values = |n: &str| -> Vec<Option<f64>> {
        rows.iter()
            .find(|((s, r), _)| s == n && r.is_none())
            .map(|(_, runs)| runs.iter().map(|r| r[field].as_f64()).collect())
            .unwrap_or_default()
    };
    let ratios: Vec<f64> = values(name)
        .iter()
        .zip(values(other).iter())
        .filter_map(|(m, o)| Some((*m)? / (*o).filter(|o| *o > 0.0)?))
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// A table row: scenario and open-loop rate (`None`: closed loop).
type RowKey = (String, Option<f64>);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// The bench's table: one row per scenario and load (the median of its runs), token rows
/// also as a share of the signing rate, proxy rows as a share of the bare Pingora proxy
/// measured in the same rounds.
fn report(path: &Path) -> LoadResult<()> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sign_rate = median(
        lines
            .iter()
            .filter_map(|l| l["sign_rate"].as_f64())
            .collect(),
    );
    let rss_mb = lines
        .iter()
        .find_map(|l| l["peak_rss_kb"].as_f64())
        .map(|kb| kb / 1024.0);
    // (scenario, rate) in first-seen order, with their runs.
    let mut rows: Vec<(RowKey, Vec<&Value>)> = Vec::new();
    for l in lines.iter().filter(|l| l["scenario"].is_string()) {
        let key = (
            l["scenario"].as_str().unwrap_or("").to_string(),
            l["rate"].as_f64(),
        );
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, runs)) => runs.push(l),
            None => rows.push((key, vec![l])),
        }
    }
    let stat = |runs: &[&Value], field: &str| {
        median(runs.iter().filter_map(|r| r[field].as_f64()).collect())
    };
    println!("| scenario | load | runs | requests/s | p50 ms | p99 ms | errors | server core | server CPU µs/request | vs RS256 signing | vs bare Pingora, requests/s | vs bare Pingora, CPU/request |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for ((name, rate), runs) in &rows {
        let rps = stat(runs, "rps");
        let load = rate.map_or("max".to_string(), |r| format!("{r:.0}/s"));
        let token_row = matches!(
            name.as_str(),
            "client_credentials" | "password" | "refresh_token" | "authorization_code"
        );
        let vs_sign = if token_row && sign_rate > 0.0 && rate.is_none() {
            format!("{:.0} %", 100.0 * rps / sign_rate)
        } else {
            String::new()
        };
        // What the row is compared with: bare Pingora, or the protected route it varies.
        let baseline = match (name.as_str(), rate) {
            (
                "protected"
                | "unprotected"
                | "protected_opaque"
                | "upstream"
                | "client_credentials_es256"
                | "client_credentials_eddsa",
                None,
            ) => Some(("bare_pingora", "")),
            ("protected_reloading" | "protected_guarded", None) => {
                Some(("protected", " of protected"))
            }
            _ => None,
        };
        let percent = |ratio: Option<f64>, of: &str| {
            ratio.map_or(String::new(), |r| format!("{:.0} %{of}", 100.0 * r))
        };
        let (vs_rate, vs_cpu) = baseline.map_or_else(Default::default, |(base, of)| {
            (
                percent(paired_ratio(&rows, "rps", name, base), of),
                // Fewer CPU microseconds per request is faster: the baseline's over the row's.
                // The upstream row's server is the echo upstream, another program: its CPU
                // time is not compared.
                if name == "upstream" {
                    String::new()
                } else {
                    percent(
                        paired_ratio(&rows, "server_cpu_us_per_request", base, name),
                        of,
                    )
                },
            )
        });
        let measured = |field: &str, show: &dyn Fn(f64) -> String| {
            let values: Vec<f64> = runs.iter().filter_map(|r| r[field].as_f64()).collect();
            if values.is_empty() {
                String::new()
            } else {
                show(median(values))
            }
        };
        let core = measured("server_core_share", &|v| format!("{:.0} %", 100.0 * v));
        let cpu = measured("server_cpu_us_per_request", &|v| format!("{v:.1}"));
        let errors: u64 = runs.iter().filter_map(|r| r["errors"].as_u64()).sum();
        println!(
            "| {name} | {load} | {} | {rps:.0} | {:.2} | {:.2} | {errors} | {core} | {cpu} | {vs_sign} | {vs_rate} | {vs_cpu} |",
            runs.len(),
            stat(runs, "p50_ms"),
            stat(runs, "p99_ms"),
        );
    }
    println!();
    println!(
        "RS256 signing, one thread, key parsed once (median of {} runs): {sign_rate:.0}/s",
        lines.iter().filter(|l| l["sign_rate"].is_number()).count()
    );
    if let Some(mb) = rss_mb {
        println!("Gateway peak resident memory: {mb:.1} MB");
    }
    for l in lines.iter().filter(|l| l["first_error"].is_string()) {
        println!("first error in {}: {}", l["scenario"], l["first_error"]);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::SignRate { key, seconds } => sign_rate(&key, seconds).map(|v| println!("{v}")),
        Command::Run(args) => run(*args).await,
        Command::Report { results } => report(&results),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
