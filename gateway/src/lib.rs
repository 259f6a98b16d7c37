//! Tollgate: a Pingora edge gateway that answers OAuth 2.0 in-process and proxies the rest.
//!
//! `main.rs` only parses the command line and calls [`main_with`]; the integration tests run
//! the same binary. [`serve`] wires the configured services together.

pub mod access_log;
pub mod admin;
pub mod balancer;
pub mod client_address;
pub mod config;
pub mod connection;
pub mod cors;
pub mod error;
pub mod forwarding;
pub mod identity;
pub mod live;
pub mod metrics;
pub mod normalize;
pub mod oauth;
pub mod proxy;
pub mod rate_limit;
pub mod request;
pub mod respond;
pub mod routes;
pub mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use token_module::Store;

use crate::admin::AdminApp;
use crate::config::{GatewayConfig, ServerSettings, STORE_URL_ENV};
use crate::connection::{EdgeApp, ListenerCap};
use crate::live::{DrainOnStop, HealthService, Live, LogLevelSetter, OperatorSignals};
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::store::{EventsState, EvictionCheckAtStart, EvictionWatch, MeteredStore, StoreEvents};

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An edge gateway with an in-process OAuth 2.0 token endpoint"
)]
pub struct Cli {
    /// The configuration file.
    #[arg(short, long, default_value = "conf/gateway.yaml")]
    pub config: PathBuf,
    /// Validate the configuration and exit: 0 when valid, 1 with the file and key at fault.
    #[arg(long)]
    pub check: bool,
    /// Take over the listening sockets of a running Tollgate (or of a supervisor) through
    /// `server.upgrade_sock` instead of binding them: Pingora's graceful upgrade.
    #[arg(long)]
    pub upgrade: bool,
    /// Run in the background (for `Type=forking` units): the process id goes to
    /// `server.pid_file`, logs to `server.error_log`.
    #[arg(long)]
    pub daemon: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands besides serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an argon2id hash of a secret or password read from standard input, for the
    /// `secret_hash` / `password_hash` keys (one trailing newline is ignored).
    HashSecret,
    /// Ask the running gateway (through its admin listener, `admin.address` of `--config`) to
    /// reload its configuration; prints what changed, or the errors. Exit 0 when applied.
    Reload,
}

/// Reads a secret from stdin and prints its hash.
fn hash_secret() -> ExitCode {
    use std::io::Read;
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("tollgate: cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    let secret = input
        .strip_suffix('\n')
        .map_or(input.as_str(), |s| s.strip_suffix('\r').unwrap_or(s));
    if secret.is_empty() {
        eprintln!("tollgate: the secret is empty (pipe it to standard input)");
        return ExitCode::from(1);
    }
    match token_module::secrets::hash_secret(secret.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: hashing failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// `tollgate reload`: `POST /reload` to the admin listener named by the configuration.
fn request_reload(config_path: &std::path::Path) -> ExitCode {
    use std::io::{Read, Write};
    let (admin, token) = match config::admin_address(config_path) {
        Ok(Some(found)) => found,
        Ok(None) => {
            eprintln!(
                "tollgate: the admin listener is off (admin.address: null); send SIGHUP instead"
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(1);
        }
    };
    let exchange = || -> std::io::Result<String> {
        let mut stream =
            std::net::TcpStream::connect_timeout(&admin, std::time::Duration::from_secs(5))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        // Addressed to the listener by its address: it refuses names (DNS rebinding).
        let authorization = token.as_ref().map_or(String::new(), |t| {
            format!("Authorization: Bearer {}\r\n", t.0)
        });
        stream.write_all(
            format!("POST /reload HTTP/1.1\r\nHost: {admin}\r\n{authorization}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    };
    match exchange() {
        Ok(reply) => {
            let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
            println!("{body}");
            if head.starts_with("HTTP/1.1 200") {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("tollgate: cannot reach the admin listener at {admin}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the command line: validates the configuration, then serves until stopped.
pub fn main_with(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::HashSecret) => return hash_secret(),
        Some(Command::Reload) => return request_reload(&cli.config),
        None => {}
    }
    let store_override = std::env::var(STORE_URL_ENV).ok().filter(|s| !s.is_empty());
    let config = match GatewayConfig::load(&cli.config, store_override.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.check {
        println!(
            "tollgate: {} is valid ({} routes)",
            cli.config.display(),
            config.routes.len()
        );
        return ExitCode::SUCCESS;
    }
    let set_log_level = init_logging(&config.valid.server);
    let start = Start {
        upgrade: cli.upgrade,
        daemon: cli.daemon,
    };
    match serve(config, start, set_log_level) {
        Ok(never) => match never {},
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tollgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr through `tracing`; Pingora's `log` records are bridged in. Returns what
/// sets the log filter again on a reload.
fn init_logging(settings: &ServerSettings) -> Option<LogLevelSetter> {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    // `try_init` fails only when a subscriber is already set (e.g. by an embedding program),
    // which is fine to keep; its filter is then not ours to change.
    use tracing_subscriber::{fmt, prelude::*, reload};
    let (filter, handle) = reload::Layer::new(filter);
    let lines = fmt::layer().with_writer(std::io::stderr);
    let lines = if settings.log_json {
        lines.json().boxed()
    } else {
        lines.boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init()
        .ok()?;
    Some(Box::new(move |level| handle.reload(EnvFilter::new(level))))
}

/// How the process starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Start {
    /// Receive the listening sockets through `server.upgrade_sock` (Pingora's graceful
    /// upgrade) instead of binding them.
    pub upgrade: bool,
    /// Run in the background, writing `server.pid_file`.
    pub daemon: bool,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("store: {0}")]
    Store(#[from] token_module::StoreError),
    #[error("oauth: {0}")]
    OAuth(#[from] token_module::secrets::SecretError),
    #[error("{0}")]
    Config(#[from] crate::live::ReloadError),
    /// A directory the server needs could not be made.
    #[error("{0}")]
    Setup(String),
    #[error("{file}: TLS for {address}: {message}")]
    Tls {
        file: String,
        address: String,
        message: String,
    },
}

/// Creates the directory of `file` (the upgrade socket, the pid file) when it is missing,
/// readable and writable by this user only.
fn private_dir(file: &std::path::Path) -> Result<(), ServeError> {
    use std::os::unix::fs::DirBuilderExt;
    match file.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ServeError::Setup(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}

/// Starts every configured service and serves until the process is told to stop. With
/// `start.upgrade`, the listening sockets are received through `server.upgrade_sock` (from
/// the process being replaced, or from whoever started this one) instead of bound. Returns
/// only when something could not be set up.
pub fn serve(
    config: GatewayConfig,
    start: Start,
    set_log_level: Option<LogLevelSetter>,
) -> Result<std::convert::Infallible, ServeError> {
    let valid = &config.valid;
    for file in [&valid.server.upgrade_sock, &valid.server.pid_file] {
        private_dir(file)?;
    }
    let metrics = Arc::new(Metrics::new()?);
    let store: Arc<dyn Store> = Arc::new(MeteredStore::open(
        &valid.store,
        metrics.store_errors.clone(),
    )?);

    let server_conf = ServerConf {
        threads: valid.server.threads,
        upgrade_sock: valid.server.upgrade_sock.to_string_lossy().into_owned(),
        pid_file: valid.server.pid_file.to_string_lossy().into_owned(),
        error_log: valid
            .server
            .error_log
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        grace_period_seconds: Some(valid.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(valid.server.graceful_shutdown_timeout.as_secs()),
        // Every timeout on tokio's timer wheel, not Pingora's "fast" timers: each proxied
        // request waits for its upstream under a read timeout, and with one worker thread the
        // wheel costs about 2,000 instructions per request less than the fast timers'
        // shared clock thread and notifications (README, Performance).
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: start.upgrade,
        daemon: start.daemon,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf);
    server.bootstrap();

    let listeners = valid.listeners.clone();
    let admin_address = valid.admin.address;
    let admin_token = config.admin_token.clone();
    let source = valid.source.clone();
    let store_url = format!("{:?}", valid.store.url);
    let live = Arc::new(Live::new(
        config,
        Arc::clone(&store),
        Arc::clone(&metrics),
        set_log_level,
    )?);
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let local_labels = crate::oauth::Endpoint::ALL
        .iter()
        .map(|e| e.label())
        .chain(["unmatched"]);
    let gateway = Gateway {
        local_metrics: local_labels.map(|l| (l, metrics.for_route(l))).collect(),
        live: Arc::clone(&live),
        metrics: Arc::clone(&metrics),
        draining: Arc::clone(&draining),
    };
    let mut http = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = HttpServerOptions::default();
    // HTTP/2 connections are not wrapped by the head deadline (see `connection`).
    options.h2_idle_timeout = Some(live.load().connection_timeouts.keepalive);
    http.server_options = Some(options);
    let caps = listeners
        .iter()
        .map(|l| ListenerCap::new(l.address, l.max_connections))
        .collect();
    let edge = EdgeApp {
        proxy: Arc::new(http),
        live: Arc::clone(&live),
        metrics: Arc::clone(&metrics),
        caps,
    };
    let mut proxy = Service::new("tollgate".to_string(), edge);
    for listener in &listeners {
        let address = listener.address.to_string();
        match &listener.tls {
            None => proxy.add_tcp(&address),
            Some(tls) => {
                let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
                let mut settings = TlsSettings::intermediate(&path(&tls.cert), &path(&tls.key))
                    .map_err(|e| ServeError::Tls {
                        file: source.display().to_string(),
                        address: address.clone(),
                        message: e.to_string(),
                    })?;
                if tls.http2 {
                    settings.enable_h2();
                }
                proxy.add_tls_with_settings(&address, None, settings);
            }
        }
        tracing::info!(%address, tls = listener.tls.is_some(), "listening");
    }
    server.add_service(proxy);

    let eviction = Arc::new(EvictionWatch::new(
        Arc::clone(&store),
        metrics.store_evicting_policy.clone(),
    ));
    server.add_service(pingora::services::background::background_service(
        "store eviction policy",
        EvictionCheckAtStart(Arc::clone(&eviction)),
    ));
    server.add_service(pingora::services::background::background_service(
        "drain on stop",
        DrainOnStop(draining),
    ));
    server.add_service(pingora::services::background::background_service(
        "SIGHUP reloads, SIGUSR1 reopens logs",
        OperatorSignals(Arc::clone(&live)),
    ));
    server.add_service(pingora::services::background::background_service(
        "upstream health",
        HealthService {
            live: Arc::clone(&live),
            metrics: Arc::clone(&metrics),
        },
    ));
    let events = Arc::new(arc_swap::ArcSwap::from_pointee(EventsState::Disconnected));
    server.add_service(pingora::services::background::background_service(
        "store events",
        StoreEvents {
            store: Arc::clone(&store),
            live: Arc::clone(&live),
            metrics: Arc::clone(&metrics),
            state: Arc::clone(&events),
        },
    ));
    if let Some(address) = admin_address {
        let app = AdminApp {
            address,
            reload_token: admin_token,
            store,
            metrics,
            eviction,
            live,
            events,
        };
        let mut admin = Service::new("tollgate admin".to_string(), app);
        admin.add_tcp(&address.to_string());
        server.add_service(admin);
        tracing::info!(%address, "admin listening");
    }
    tracing::info!(config = %source.display(), store = %store_url, "starting");
    server.run_forever()
}
