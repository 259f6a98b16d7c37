//! Prometheus metrics the admin listener serves at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Every metric the gateway exports, registered in one private registry.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route name and status code.
    pub requests: IntCounterVec,
    /// Time from the request's arrival to its last response byte, by route name.
    pub latency: HistogramVec,
    /// Failed store calls, by operation and failure kind.
    pub store_errors: IntCounterVec,
    /// Tokens issued by the token endpoint, by grant.
    pub tokens_issued: IntCounterVec,
    /// Token requests that failed, by grant and OAuth error code.
    pub token_failures: IntCounterVec,
    /// Argon2 verifications of client secrets and passwords (mirrored from the provider).
    pub hash_verifications: IntCounter,
    /// Authentication attempts slowed down because their account had many failures.
    pub auth_throttled: IntCounter,
    /// 1 when the store's eviction policy can drop keys (Redis `maxmemory-policy`).
    pub store_evicting_policy: prometheus::IntGauge,
    /// The configuration generation in force (1 at start, one more per applied reload).
    pub config_generation: prometheus::IntGauge,
    /// Reloads by result (`applied`, `rejected`).
    pub config_reloads: IntCounterVec,
    /// Unix time of the last applied reload.
    pub config_last_reload: prometheus::Gauge,
    /// Counters kept elsewhere as atomics, copied into their Prometheus counter when rendered.
    mirrors: Mutex<Vec<(IntCounter, Arc<AtomicU64>)>>,
    /// Bearer-token checks on protected routes, by result (`valid`, `valid_cached`,
    /// `anonymous`, `missing`, `invalid_request`, `invalid_token`, `insufficient_scope`,
    /// `unavailable`).
    pub bearer_checks: IntCounterVec,
    /// `bearer_checks` resolved for each of [`BEARER_RESULTS`].
    bearer_results: Vec<IntCounter>,
    /// Client connections open, by listener.
    pub connections_open: prometheus::IntGaugeVec,
    /// Client connections closed at once because their listener was at its cap.
    pub connections_refused: IntCounterVec,
    /// Requests refused with 429 by a rate limit, by route (or OAuth endpoint).
    pub rate_limited: IntCounterVec,
    /// 1 while an upstream passes its health checks, by route and upstream.
    pub upstream_healthy: prometheus::IntGaugeVec,
    /// 1 while this instance hears the fleet's revocation events.
    pub store_events_connected: prometheus::IntGauge,
    /// Events heard from the store (revocations, by any instance).
    pub store_events: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_http_requests_total",
                "Requests answered, by route and status.",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_http_request_duration_seconds",
                "Request latency from arrival to the last response byte, by route.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let store_errors = IntCounterVec::new(
            Opts::new(
                "tollgate_store_errors_total",
                "Failed store calls, by operation and kind.",
            ),
            &["operation", "kind"],
        )?;
        let bearer_checks = IntCounterVec::new(
            Opts::new(
                "tollgate_bearer_checks_total",
                "Bearer-token checks on protected routes, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(bearer_checks.clone()))?;
        let hash_verifications = IntCounter::new(
            "tollgate_secret_hash_verifications_total",
            "Argon2 verifications of client secrets and passwords (unknown identities included).",
        )?;
        registry.register(Box::new(hash_verifications.clone()))?;
        let auth_throttled = IntCounter::new(
            "tollgate_auth_throttled_total",
            "Client or user authentications slowed down: their account had many recent failures.",
        )?;
        registry.register(Box::new(auth_throttled.clone()))?;
        let store_evicting_policy = prometheus::IntGauge::new(
            "tollgate_store_evicting_policy",
            "1 when the store's eviction policy (Redis maxmemory-policy) can drop codes, tokens or revocations.",
        )?;
        registry.register(Box::new(store_evicting_policy.clone()))?;
        let config_generation = prometheus::IntGauge::new(
            "tollgate_config_generation",
            "The configuration generation in force: 1 at start, one more per applied reload.",
        )?;
        registry.register(Box::new(config_generation.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_config_reloads_total",
                "Configuration reloads, by result (applied, rejected).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        let config_last_reload = prometheus::Gauge::new(
            "tollgate_config_last_reload_timestamp_seconds",
            "Unix time of the last applied configuration reload.",
        )?;
        registry.register(Box::new(config_last_reload.clone()))?;
        let tokens_issued = IntCounterVec::new(
            Opts::new(
                "tollgate_oauth_tokens_issued_total",
                "Tokens issued, by grant.",
            ),
            &["grant"],
        )?;
        let token_failures = IntCounterVec::new(
            Opts::new(
                "tollgate_oauth_token_failures_total",
                "Failed token requests, by grant and OAuth error code.",
            ),
            &["grant", "error"],
        )?;
        registry.register(Box::new(tokens_issued.clone()))?;
        registry.register(Box::new(token_failures.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(store_errors.clone()))?;
        let connections_open = prometheus::IntGaugeVec::new(
            Opts::new(
                "tollgate_connections_open",
                "Client connections open, by listener.",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "tollgate_connections_refused_total",
                "Client connections closed on accept because their listener was at max_connections.",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "tollgate_rate_limited_total",
                "Requests refused with 429 by a rate limit, by route.",
            ),
            &["route"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        let upstream_healthy = prometheus::IntGaugeVec::new(
            Opts::new(
                "tollgate_upstream_healthy",
                "1 while an upstream passes its health checks, 0 while it is ejected, by route and upstream.",
            ),
            &["route", "upstream"],
        )?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        let store_events_connected = prometheus::IntGauge::new(
            "tollgate_store_events_connected",
            "1 while this instance is subscribed to the revocation events of the instances sharing its store.",
        )?;
        registry.register(Box::new(store_events_connected.clone()))?;
        let store_events = IntCounter::new(
            "tollgate_store_events_total",
            "Revocation events heard from the store (published by any instance sharing it).",
        )?;
        registry.register(Box::new(store_events.clone()))?;
        Ok(Self {
            store_events_connected,
            store_events,
            connections_open,
            connections_refused,
            rate_limited,
            upstream_healthy,
            registry,
            requests,
            latency,
            store_errors,
            tokens_issued,
            token_failures,
            bearer_results: BEARER_RESULTS
                .iter()
                .map(|r| bearer_checks.with_label_values(&[r]))
                .collect(),
            bearer_checks,
            hash_verifications,
            auth_throttled,
            store_evicting_policy,
            config_generation,
            config_reloads,
            config_last_reload,
            mirrors: Mutex::default(),
        })
    }

    /// Counts a bearer check with `result`, one of [`BEARER_RESULTS`].
    pub fn bearer_checked(&self, result: &'static str) {
        match BEARER_RESULTS.iter().position(|r| *r == result) {
            Some(i) => self.bearer_results[i].inc(),
            None => self.bearer_checks.with_label_values(&[result]).inc(),
        }
    }

    /// The request metrics of `route`, resolved once.
    pub fn for_route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            requests: self.requests.clone(),
            by_status: (STATUS_MIN..=STATUS_MAX).map(|_| OnceLock::new()).collect(),
            latency: self.latency.with_label_values(&[route]),
        }
    }

    /// Makes `counter` follow `source` (read when metrics are rendered).
    pub fn mirror(&self, counter: &IntCounter, source: Arc<AtomicU64>) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        mirrors.push((counter.clone(), source));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        for (counter, source) in self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let (now, shown) = (source.load(Ordering::Relaxed), counter.get());
            if now > shown {
                counter.inc_by(now - shown);
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics; an error leaves a partial
        // page, which Prometheus reports as a scrape error rather than crashing anything.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// The results `tollgate_bearer_checks_total` counts.
pub const BEARER_RESULTS: [&str; 8] = [
    "valid",
    "valid_cached",
    "anonymous",
    "missing",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "unavailable",
];

const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 599;

/// The request counters and latency histogram of one route, resolved once: counting a
/// request is an index and an atomic add, not a label lookup (each status's counter is
/// resolved the first time that status is seen).
pub struct RouteMetrics {
    route: String,
    requests: IntCounterVec,
    by_status: Box<[OnceLock<IntCounter>]>,
    latency: prometheus::Histogram,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteMetrics({})", self.route)
    }
}

impl RouteMetrics {
    /// Counts one request answered with `status` (0: none was sent) after `elapsed`.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let resolve = || {
            self.requests
                .with_label_values(&[&self.route, &status.to_string()])
        };
        match status
            .checked_sub(STATUS_MIN)
            .and_then(|i| self.by_status.get(usize::from(i)))
        {
            Some(slot) => slot.get_or_init(resolve).inc(),
            None => resolve().inc(),
        }
        self.latency.observe(elapsed.as_secs_f64());
    }
}
