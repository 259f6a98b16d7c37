//! The live configuration: one immutable [`Snapshot`] of everything a request reads (routes,
//! bearer settings, path rules, the OAuth provider), swapped in one step when the file is
//! reloaded. A request takes the snapshot once, when its context is made, and keeps it for its
//! whole life: it sees the old or the new configuration, never a mix.
//!
//! A reload (SIGHUP, `POST /reload` on the admin listener, `tollgate reload`) runs the file
//! through exactly what `--check` runs, validation and then build, the build carrying state
//! over from the snapshot in force (`config::Previous`); a file that fails changes nothing.
//! What changed is found by comparing the two validated configurations (`config::diff`).
//! Settings that only a new process can take (listeners, the store, threads, the admin
//! address) are reported as waiting for the next upgrade, and everything else is applied.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use token_module::clock::Clock;
use token_module::{OAuthProvider, Store};

use crate::access_log::AccessLog;
use crate::client_address::TrustedProxies;
use crate::config::diff::{diff, Changes};
use crate::config::{
    BearerSettings, ConfigError, ConnectionTimeouts, GatewayConfig, Previous, RequestLimits,
    ValidConfig, STORE_URL_ENV,
};
use crate::forwarding::UpstreamForwarded;
use crate::metrics::Metrics;
use crate::normalize::PathRules;
use crate::oauth::OAuthEndpoints;
use crate::rate_limit::RateLimit;
use crate::routes::RouteTable;

/// Everything a request reads from the configuration, as one value.
pub struct Snapshot {
    /// 1 for the configuration the process started with, one more for each applied reload.
    pub generation: u64,
    pub routes: RouteTable,
    pub bearer: BearerSettings,
    pub path_rules: PathRules,
    pub request_limits: RequestLimits,
    pub connection_timeouts: ConnectionTimeouts,
    pub trusted_proxies: TrustedProxies,
    pub upstream_forwarded: UpstreamForwarded,
    pub oauth_rate_limit: Option<Arc<RateLimit>>,
    /// Where shared rate limits count.
    pub store: Arc<dyn Store>,
    pub access_log: AccessLog,
    pub oauth: Option<OAuthEndpoints>,
    /// What this snapshot was built from (the next reload compares its file with it).
    valid: ValidConfig,
}

impl Snapshot {
    /// The state this configuration hands on to the next one built.
    fn previous(&self) -> Previous<'_> {
        Previous {
            routes: &self.routes,
            oauth_rate_limit: self.oauth_rate_limit.as_ref(),
        }
    }
}

/// Sets the process's log filter (`server.log_level`).
pub type LogLevelSetter =
    Box<dyn Fn(&str) -> Result<(), tracing_subscriber::reload::Error> + Send + Sync>;

/// The running configuration and how to replace it.
pub struct Live {
    current: ArcSwap<Snapshot>,
    /// The file given by `--config`.
    source: PathBuf,
    builder: SnapshotBuilder,
    set_log_level: Option<LogLevelSetter>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// What every snapshot is built with: the store and the metrics outlive configurations.
struct SnapshotBuilder {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// The provider's counters are mirrored into metrics once.
    mirrored: AtomicBool,
}

/// What a reload changed, for the admin endpoint's answer and the log.
#[derive(Debug, Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    /// Named entries added, removed or changed: `routes`, `clients`, `users`, `keys`.
    pub changed: BTreeMap<&'static str, Changes>,
    /// Other settings that changed and were applied (`bearer`, `oauth`, `server.log_level`…).
    pub settings: Vec<&'static str>,
    /// Settings that changed in the file but only take effect in a new process (an upgrade).
    pub needs_upgrade: Vec<&'static str>,
}

/// Why a reload was refused (the running configuration stays).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("oauth: {0}")]
    OAuth(#[from] token_module::secrets::SecretError),
    #[error("the configuration could not be loaded: {0}")]
    Load(String),
}

impl SnapshotBuilder {
    /// Builds a snapshot; the OAuth provider is derived from `previous` when there is one (it
    /// shares the store and the metric counters).
    fn build(
        &self,
        config: GatewayConfig,
        generation: u64,
        previous: Option<&OAuthEndpoints>,
    ) -> Result<Snapshot, ReloadError> {
        let GatewayConfig {
            valid,
            routes,
            oauth,
            oauth_rate_limit,
            admin_token: _,
        } = config;
        let oauth = match oauth {
            None => None,
            Some(oauth_config) => {
                let provider = match previous {
                    Some(old) => old.provider.reconfigured(oauth_config),
                    None => OAuthProvider::new(oauth_config, Arc::clone(&self.store))?,
                };
                if !self.mirrored.swap(true, Ordering::Relaxed) {
                    let m = &self.metrics;
                    m.mirror(&m.hash_verifications, provider.hash_verifications());
                    m.mirror(&m.auth_throttled, provider.throttled_attempts());
                }
                Some(OAuthEndpoints {
                    provider,
                    metrics: Arc::clone(&self.metrics),
                })
            }
        };
        let server = &valid.server;
        let access_log =
            AccessLog::open(server.access_log.clone(), server.log_json).map_err(|e| {
                ReloadError::Load(format!(
                    "server.access_log: cannot open {:?}: {e}",
                    server.access_log
                ))
            })?;
        Ok(Snapshot {
            generation,
            routes,
            bearer: valid.bearer.clone(),
            path_rules: server.path_rules,
            request_limits: server.request_limits,
            connection_timeouts: server.connection_timeouts,
            trusted_proxies: server.trusted_proxies.clone(),
            upstream_forwarded: server.upstream_forwarded,
            oauth_rate_limit,
            store: Arc::clone(&self.store),
            access_log,
            oauth,
            valid,
        })
    }
}

impl Live {
    /// The configuration the process starts with (generation 1).
    pub fn new(
        config: GatewayConfig,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        set_log_level: Option<LogLevelSetter>,
    ) -> Result<Self, ReloadError> {
        let builder = SnapshotBuilder {
            store,
            metrics,
            mirrored: AtomicBool::new(false),
        };
        let source = config.valid.source.clone();
        let first = builder.build(config, 1, None)?;
        builder.metrics.config_generation.set(1);
        Ok(Self {
            current: ArcSwap::from_pointee(first),
            source,
            builder,
            set_log_level,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// The configuration in force now.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Reads the file again and, when it is valid, puts it in force in one step. A file that
    /// fails is refused as a whole and the running configuration stays. Counted and logged
    /// either way.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.try_reload().await;
        let outcome = if result.is_ok() {
            "applied"
        } else {
            "rejected"
        };
        self.builder
            .metrics
            .config_reloads
            .with_label_values(&[outcome])
            .inc();
        match &result {
            Ok(report) => {
                self.builder
                    .metrics
                    .config_generation
                    .set(report.generation as i64);
                let now = token_module::clock::SystemClock.now();
                self.builder.metrics.config_last_reload.set(now as f64);
                tracing::info!(
                    generation = report.generation,
                    changed = ?report.changed.keys().collect::<Vec<_>>(),
                    settings = ?report.settings,
                    "configuration reloaded"
                );
                if !report.needs_upgrade.is_empty() {
                    tracing::warn!(
                        settings = ?report.needs_upgrade,
                        "these settings changed in the file but take effect only in a new process (tollgate --upgrade)"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays")
            }
        }
        result
    }

    async fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        let source = self.source.clone();
        let current = self.current.load_full();
        let in_force = Arc::clone(&current);
        // Reading files and resolving upstream names block: keep them off the event loop.
        let loaded = tokio::task::spawn_blocking(move || {
            let store_override = std::env::var(STORE_URL_ENV).ok().filter(|s| !s.is_empty());
            let valid = ValidConfig::load(&source, store_override.as_deref())?;
            GatewayConfig::build(&valid, Some(in_force.previous()))
        })
        .await
        .map_err(|e| ReloadError::Load(e.to_string()))??;
        let changes = diff(&current.valid, &loaded.valid);
        let log_level = loaded.valid.server.log_level.clone();
        let generation = current.generation + 1;
        let next = self
            .builder
            .build(loaded, generation, current.oauth.as_ref())?;
        if changes.settings.contains(&"server.log_level") {
            self.apply_log_level(&log_level);
        }
        self.current.store(Arc::new(next));
        Ok(ReloadReport {
            generation,
            changed: changes.changed,
            settings: changes.settings,
            needs_upgrade: changes.needs_upgrade,
        })
    }

    /// `RUST_LOG`, when set, wins over the file, as it does at start.
    fn apply_log_level(&self, level: &str) {
        if std::env::var_os("RUST_LOG").is_some() {
            tracing::info!("server.log_level changed, but RUST_LOG overrides it");
            return;
        }
        if let Some(set) = &self.set_log_level {
            if let Err(e) = set(level) {
                tracing::warn!(error = %e, "could not change the log level");
            }
        }
    }
}

/// The operator's signals, as nginx and HAProxy take them: SIGHUP reloads the
/// configuration, SIGUSR1 reopens the access-log file (after a rotation moved it away).
pub struct OperatorSignals(pub Arc<Live>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for OperatorSignals {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hangups), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            tracing::error!("cannot listen for SIGHUP/SIGUSR1; reload through the admin listener");
            return;
        };
        loop {
            tokio::select! {
                Some(()) = hangups.recv() => {
                    // The outcome is logged and counted by `reload`.
                    let _ = self.0.reload().await;
                }
                Some(()) = usr1.recv() => match self.0.load().access_log.reopen() {
                    Ok(()) => tracing::info!("access log reopened"),
                    Err(e) => tracing::error!(error = %e, "cannot reopen the access log"),
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Marks the process as draining on SIGQUIT (a graceful upgrade) and SIGTERM (a graceful
/// stop). Pingora keeps serving for `server.grace_period_seconds` and then drops idle
/// keep-alive connections; answering with `Connection: close` meanwhile moves clients to
/// fresh connections first, which the new process (or the load balancer) takes.
pub struct DrainOnStop(pub Arc<std::sync::atomic::AtomicBool>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for DrainOnStop {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut quit), Ok(mut term)) =
            (signal(SignalKind::quit()), signal(SignalKind::terminate()))
        else {
            tracing::warn!("cannot listen for SIGQUIT/SIGTERM; connections are not drained");
            return;
        };
        tokio::select! {
            _ = quit.recv() => {}
            _ = term.recv() => {}
            _ = shutdown.changed() => {}
        }
        tracing::info!("draining: responses close their connections");
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs every route's due discovery and health checks, for the configuration in force.
pub struct HealthService {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
}

/// How often the health service looks for due work.
const HEALTH_TICK: std::time::Duration = std::time::Duration::from_millis(100);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for HealthService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut generation = 0;
        let mut interval = tokio::time::interval(HEALTH_TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            let snapshot = self.live.load();
            if snapshot.generation != generation {
                // Routes of the old configuration are gone: so are their series. Kept
                // balancers publish theirs again at once.
                self.metrics.upstream_healthy.reset();
                for route in snapshot.routes.iter() {
                    route.balancer.publish(&route.name, &self.metrics);
                }
                generation = snapshot.generation;
            }
            for route in snapshot.routes.iter() {
                if let Some(work) = route.balancer.claim() {
                    let balancer = Arc::clone(&route.balancer);
                    let metrics = Arc::clone(&self.metrics);
                    tokio::spawn(balancer.run(work, route.name.clone(), metrics));
                }
            }
        }
    }
}
