//! Tollgate: a Pingora edge gateway that answers OAuth 2.0 in-process and proxies the rest.
//!
//! `main.rs` only parses the command line and calls [`main_with`]; the integration tests run
//! the same binary. [`serve`] wires the configured services together.

pub mod admin;
pub mod config;
pub mod error;
pub mod identity;
pub mod metrics;
pub mod normalize;
pub mod oauth;
pub mod proxy;
pub mod request;
pub mod respond;
pub mod routes;
pub mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use token_module::Store;

use crate::admin::AdminApp;
use crate::config::{GatewayConfig, ServerSettings, STORE_URL_ENV};
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::store::{EvictionCheckAtStart, EvictionWatch, MeteredStore};

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
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands besides serving.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print an argon2id hash of a secret or password read from standard input, for the
    /// `secret_hash` / `password_hash` keys (one trailing newline is ignored).
    HashSecret,
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

/// Runs the command line: validates the configuration, then serves until stopped.
pub fn main_with(cli: Cli) -> ExitCode {
    if let Some(Command::HashSecret) = cli.command {
        return hash_secret();
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
    init_logging(&config.server);
    match serve(config, cli.upgrade) {
        Ok(never) => match never {},
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("tollgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr through `tracing`; Pingora's `log` records are bridged in.
fn init_logging(settings: &ServerSettings) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already set (e.g. by an embedding program),
    // which is fine to keep.
    let _ = if settings.log_json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Starts every configured service and serves until the process is told to stop. With
/// `upgrade`, the listening sockets are received through `server.upgrade_sock` (from the
/// process being replaced, or from whoever started this one) instead of bound. Returns only
/// when something could not be set up.
pub fn serve(config: GatewayConfig, upgrade: bool) -> Result<std::convert::Infallible, ServeError> {
    let metrics = Arc::new(Metrics::new()?);
    let store: Arc<dyn Store> = Arc::new(MeteredStore::open(
        &config.store,
        metrics.store_errors.clone(),
    )?);

    let server_conf = ServerConf {
        threads: config.server.threads,
        upgrade_sock: config.server.upgrade_sock.to_string_lossy().into_owned(),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.graceful_shutdown_timeout.as_secs()),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), server_conf);
    server.bootstrap();

    let oauth = match config.oauth {
        Some(oauth_config) => {
            let provider = token_module::OAuthProvider::new(oauth_config, Arc::clone(&store))?;
            metrics.mirror(&metrics.hash_verifications, provider.hash_verifications());
            metrics.mirror(&metrics.auth_throttled, provider.throttled_attempts());
            Some(crate::oauth::OAuthEndpoints {
                provider,
                metrics: Arc::clone(&metrics),
            })
        }
        None => None,
    };
    let gateway = Gateway {
        oauth,
        bearer: config.bearer,
        path_rules: config.server.path_rules,
        routes: config.routes,
        metrics: Arc::clone(&metrics),
        store: Arc::clone(&store),
    };
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "tollgate");
    for listener in &config.listeners {
        let address = listener.address.to_string();
        match &listener.tls {
            None => proxy.add_tcp(&address),
            Some(tls) => {
                let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
                let mut settings = TlsSettings::intermediate(&path(&tls.cert), &path(&tls.key))
                    .map_err(|e| ServeError::Tls {
                        file: config.source.display().to_string(),
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
    if let Some(address) = config.admin {
        let app = AdminApp {
            store,
            metrics,
            eviction,
        };
        let mut admin = Service::new("tollgate admin".to_string(), app);
        admin.add_tcp(&address.to_string());
        server.add_service(admin);
        tracing::info!(%address, "admin listening");
    }
    tracing::info!(config = %config.source.display(), store = ?config.store.url, "starting");
    server.run_forever()
}
