//! Upstream selection for a route, on Pingora's `pingora-load-balancing`: weighted
//! round-robin over the addresses the route's upstream names resolve to, re-resolved every
//! `dns_refresh_ms` (an upstream whose name moves to another address keeps working), active
//! health checks (TCP connect or an HTTP `GET`), and passive ejection of an address after
//! consecutive connect failures. `live::HealthService` drives the periodic work of every
//! route of the live configuration.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::{
    HealthCheck as PingoraHealthCheck, HttpHealthCheck, TcpHealthCheck,
};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::utils::tls::WrappedX509;

use crate::metrics::Metrics;

/// One configured upstream: a name (or address) and port, and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamName {
    /// The host as configured, without brackets.
    pub host: String,
    pub port: u16,
    pub weight: usize,
    /// The server name for TLS towards it (empty without TLS).
    pub sni: String,
}

/// TLS towards a route's upstreams (its health checks included).
#[derive(Clone)]
pub struct UpstreamTls {
    /// SNI and verified name; `None` means the upstream's host.
    pub sni: Option<String>,
    /// Verify the certificate chain and name.
    pub verify: bool,
    /// CAs trusted for this upstream instead of the system roots.
    pub ca: Option<Arc<[WrappedX509]>>,
    /// Identifies the trusted CAs in Pingora's connection-pool key, which does not include
    /// them: without it a connection verified against one route's CA could be reused for a
    /// route that trusts other CAs. 0 for the system roots.
    pub ca_pool_key: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("ca_certificates", &self.ca.as_ref().map_or(0, |c| c.len()))
            .finish()
    }
}

impl PartialEq for UpstreamTls {
    /// The CAs compare by their fingerprint.
    fn eq(&self, other: &Self) -> bool {
        (&self.sni, self.verify, self.ca_pool_key) == (&other.sni, other.verify, other.ca_pool_key)
    }
}

impl Eq for UpstreamTls {}

/// Active health checking of a route's upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// `GET` this path and expect a 2xx or 3xx; `None` checks that a TCP connect succeeds.
    pub http_path: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes before an unhealthy upstream takes traffic again.
    pub healthy_after: usize,
    /// Consecutive failures before a healthy upstream stops taking traffic.
    pub unhealthy_after: usize,
}

/// How a route finds and judges its upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerSettings {
    pub health_check: Option<HealthCheckSettings>,
    /// Consecutive connect failures that eject an address for `ejection`; 0 never ejects.
    pub eject_after_failures: u32,
    pub ejection: Duration,
    /// How often names are resolved again.
    pub dns_refresh: Duration,
    /// The route's TLS, which HTTP health checks use too (`None`: plain).
    pub tls: Option<UpstreamTls>,
}

/// Where names are resolved.
#[derive(Clone)]
pub enum Resolver {
    /// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, `resolv.conf`).
    System,
    /// One DNS server (`server.dns_resolver`), asked over UDP.
    Nameserver(Arc<hickory_resolver::TokioResolver>),
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => write!(f, "system"),
            Self::Nameserver(_) => write!(f, "nameserver"),
        }
    }
}

impl Resolver {
    /// A resolver that asks only `server`, without a cache (every refresh asks again).
    pub fn nameserver(server: SocketAddr) -> Result<Self, String> {
        use hickory_resolver::config::{
            ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
        };
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        let mut connection = ConnectionConfig::udp();
        connection.port = server.port();
        let name_server = NameServerConfig::new(server.ip(), true, vec![connection]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        hickory_resolver::Resolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![name_server]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map(|r| Self::Nameserver(Arc::new(r)))
        .map_err(|e| e.to_string())
    }

    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match self {
            Self::System => Ok(tokio::net::lookup_host((host, port)).await?.collect()),
            Self::Nameserver(resolver) => {
                let fqdn = if host.ends_with('.') {
                    host.to_string()
                } else {
                    format!("{host}.")
                };
                let found = resolver
                    .lookup_ip(fqdn.as_str())
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok(found.iter().map(|ip| SocketAddr::new(ip, port)).collect())
            }
        }
    }
}

/// The addresses of each upstream (in configuration order), as last resolved.
type Resolved = Arc<ArcSwap<Vec<Vec<SocketAddr>>>>;

/// Discovery by name: each upstream's current addresses. A name that fails to resolve keeps
/// its last addresses (a DNS outage must not empty a route).
struct NameDiscovery {
    upstreams: Vec<UpstreamName>,
    resolver: Resolver,
    /// The last addresses of each upstream; the first discovery returns these (resolved when
    /// the configuration was loaded) without asking anyone. Shared with the balancer, which
    /// finds an address's upstream (its SNI) there.
    last: Resolved,
    asked: AtomicBool,
}

impl NameDiscovery {
    fn backends(&self, addresses: &[Vec<SocketAddr>]) -> BTreeSet<Backend> {
        let mut set = BTreeSet::new();
        for (upstream, addrs) in self.upstreams.iter().zip(addresses) {
            for addr in addrs {
                set.insert(Backend {
                    addr: (*addr).into(),
                    weight: upstream.weight,
                    ext: Default::default(),
                });
            }
        }
        set
    }
}

#[async_trait]
impl ServiceDiscovery for NameDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        if self.asked.swap(true, Ordering::Relaxed) {
            let mut fresh = Vec::with_capacity(self.upstreams.len());
            for (i, u) in self.upstreams.iter().enumerate() {
                match self.resolver.resolve(&u.host, u.port).await {
                    Ok(addrs) if !addrs.is_empty() => fresh.push(addrs),
                    other => {
                        if let Err(e) = other {
                            tracing::warn!(upstream = %u.host, error = %e, "cannot resolve an upstream; keeping its last addresses");
                        }
                        fresh.push(self.last.load().get(i).cloned().unwrap_or_default());
                    }
                }
            }
            self.last.store(Arc::new(fresh));
        }
        Ok((self.backends(&self.last.load()), HashMap::new()))
    }
}

/// Consecutive connect failures of one address, and until when it is ejected.
#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    ejected_until: Option<Instant>,
}

/// A route's upstream selection.
pub struct Balancer {
    lb: LoadBalancer<RoundRobin>,
    upstreams: Vec<UpstreamName>,
    resolved: Resolved,
    settings: BalancerSettings,
    /// The DNS server asked, `None` for the system resolver.
    nameserver: Option<SocketAddr>,
    failures: Mutex<HashMap<SocketAddr, Failures>>,
    /// Entries in `failures`: the hot path skips the lock while it is 0.
    failing: AtomicUsize,
    /// Periodic work: when it is next due (ms since `epoch`), and whether it is running.
    epoch: Instant,
    next_resolve_ms: AtomicU64,
    next_check_ms: AtomicU64,
    busy: AtomicBool,
    /// The `tollgate_upstream_healthy` series last published.
    published: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} {:?} nameserver={:?}",
            self.upstreams, self.settings, self.nameserver
        )
    }
}

/// Picks the round-robin selection makes before the explicit scan.
const SELECT_ROUNDS: usize = 16;

/// Polls a future once: the first discovery answers without waiting.
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

impl Balancer {
    /// A balancer over `upstreams`, whose addresses when the configuration was loaded are
    /// `resolved` (empty where unknown yet).
    pub fn new(
        upstreams: Vec<UpstreamName>,
        resolved: Vec<Vec<SocketAddr>>,
        resolver: (Resolver, Option<SocketAddr>),
        settings: BalancerSettings,
    ) -> Self {
        let (resolver, nameserver) = resolver;
        let resolved: Resolved = Arc::new(ArcSwap::from_pointee(resolved));
        let discovery = NameDiscovery {
            upstreams: upstreams.clone(),
            resolver,
            last: Arc::clone(&resolved),
            asked: AtomicBool::new(false),
        };
        let mut lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(Box::new(discovery)));
        if let Some(check) = &settings.health_check {
            let host = upstreams.first().map_or("localhost", |u| u.host.as_str());
            lb.set_health_check(health_check(check, host, settings.tls.as_ref()));
        }
        // The first discovery answers at once with the load-time addresses.
        if let Some(Err(e)) = now_or_never(lb.update()) {
            tracing::warn!(error = %e, "upstream discovery failed");
        }
        Self {
            lb,
            upstreams,
            resolved,
            settings,
            nameserver,
            failures: Mutex::default(),
            failing: AtomicUsize::new(0),
            epoch: Instant::now(),
            // Due at once: resolve and check as soon as the health service runs.
            next_resolve_ms: AtomicU64::new(0),
            next_check_ms: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            published: Mutex::default(),
        }
    }

    fn ejected(&self, addr: &SocketAddr, now: Instant) -> bool {
        if self.failing.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .get(addr)
            .and_then(|f| f.ejected_until)
            .is_some_and(|until| until > now)
    }

    /// The address to try for a request that already tried `tried`, with its SNI: a
    /// healthy, not ejected one if there is any; else (every address down) any untried one,
    /// since refusing all traffic helps nobody; `None` when every address was tried.
    pub fn select(&self, tried: &[SocketAddr]) -> Option<(SocketAddr, &str)> {
        let resolved = self.resolved.load();
        // One address (the common route): nothing to choose, and when it is down it is
        // still the only one to try.
        if let [only] = resolved.as_slice() {
            if let [addr] = only.as_slice() {
                let sni = self.upstreams.first().map_or("", |u| u.sni.as_str());
                return (!tried.contains(addr)).then_some((*addr, sni));
            }
        }
        let now = Instant::now();
        let address = |b: &Backend| b.addr.as_inet().copied();
        let untried = |b: &Backend| address(b).is_some_and(|a| !tried.contains(&a));
        let usable = |b: &Backend| untried(b) && address(b).is_some_and(|a| !self.ejected(&a, now));
        // Round-robin first; its later picks are random, so when they miss, every address
        // is looked at in turn before falling back to one that is down.
        let chosen = self
            .lb
            .select_with(b"", SELECT_ROUNDS, |b, healthy| healthy && usable(b))
            .or_else(|| {
                let all = self.lb.backends().get_backend();
                let backends = self.lb.backends();
                all.iter()
                    .find(|b| backends.ready(b) && usable(b))
                    .or_else(|| all.iter().find(|b| untried(b)))
                    .cloned()
            })?;
        let addr = address(&chosen)?;
        let sni = resolved
            .iter()
            .zip(&self.upstreams)
            .find(|(addrs, _)| addrs.contains(&addr))
            .map_or("", |(_, u)| u.sni.as_str());
        Some((addr, sni))
    }

    /// Whether this balancer finds and judges `upstreams` as `settings` say, asking
    /// `nameserver` (a reload then keeps it, with its health state).
    pub fn is_built_from(
        &self,
        upstreams: &[UpstreamName],
        settings: &BalancerSettings,
        nameserver: Option<SocketAddr>,
    ) -> bool {
        self.upstreams == upstreams && self.settings == *settings && self.nameserver == nameserver
    }

    /// How many addresses the route has now.
    pub fn len(&self) -> usize {
        self.lb.backends().get_backend().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A connect to `addr` failed; past `eject_after_failures` in a row it is ejected.
    pub fn connect_failed(&self, addr: SocketAddr) {
        if self.settings.eject_after_failures == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = failures.entry(addr).or_default();
        entry.count += 1;
        if entry.count >= self.settings.eject_after_failures {
            entry.ejected_until = Some(Instant::now() + self.settings.ejection);
            entry.count = 0;
            tracing::warn!(upstream = %addr, "upstream ejected after consecutive connect failures");
        }
        self.failing.store(failures.len(), Ordering::Relaxed);
    }

    /// A connect to `addr` succeeded: its failure count starts over.
    pub fn connected(&self, addr: SocketAddr) {
        if self.failing.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&addr);
        self.failing.store(failures.len(), Ordering::Relaxed);
    }

    fn since_epoch(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// What periodic work is due (resolve, check), claimed for one run; `None` when
    /// nothing is due or a run is still going.
    pub fn claim(&self) -> Option<(bool, bool)> {
        let now = self.since_epoch();
        let resolve = now >= self.next_resolve_ms.load(Ordering::Relaxed);
        let check = self.settings.health_check.is_some()
            && now >= self.next_check_ms.load(Ordering::Relaxed);
        if !(resolve || check) || self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        Some((resolve, check))
    }

    /// Runs the claimed work (resolving names, health checks), then publishes each
    /// address's health as `tollgate_upstream_healthy{route, upstream}`.
    pub async fn run(
        self: Arc<Self>,
        (resolve, check): (bool, bool),
        route: String,
        metrics: Arc<Metrics>,
    ) {
        if resolve {
            if let Err(e) = self.lb.update().await {
                tracing::warn!(route, error = %e, "upstream discovery failed");
            }
            let next = self.since_epoch() + self.settings.dns_refresh.as_millis() as u64;
            self.next_resolve_ms.store(next, Ordering::Relaxed);
        }
        if let Some(settings) = &self.settings.health_check {
            if check {
                self.lb.backends().run_health_check(true).await;
                let next = self.since_epoch() + settings.interval.as_millis() as u64;
                self.next_check_ms.store(next, Ordering::Relaxed);
            }
        }
        self.publish(&route, &metrics);
        self.busy.store(false, Ordering::Release);
    }

    pub fn publish(&self, route: &str, metrics: &Metrics) {
        let now = Instant::now();
        let mut shown = Vec::new();
        for backend in self.lb.backends().get_backend().iter() {
            let Some(addr) = backend.addr.as_inet() else {
                continue;
            };
            let label = addr.to_string();
            let up = self.lb.backends().ready(backend) && !self.ejected(addr, now);
            metrics
                .upstream_healthy
                .with_label_values(&[route, &label])
                .set(i64::from(up));
            shown.push(label);
        }
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for gone in published.iter().filter(|l| !shown.contains(l)) {
            let _ = metrics.upstream_healthy.remove_label_values(&[route, gone]);
        }
        *published = shown;
    }
}

fn health_check(
    settings: &HealthCheckSettings,
    host: &str,
    tls: Option<&UpstreamTls>,
) -> Box<dyn PingoraHealthCheck + Send + Sync + 'static> {
    match &settings.http_path {
        None => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_success = settings.healthy_after;
            check.consecutive_failure = settings.unhealthy_after;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check
        }
        Some(path) => {
            // One check for every address: the first upstream's host names them (Host, and
            // SNI unless the route sets its own).
            let mut check = HttpHealthCheck::new(host, tls.is_some());
            if let Some(tls) = tls {
                let options = &mut check.peer_template.options;
                options.verify_cert = tls.verify;
                options.verify_hostname = tls.verify;
                options.ca = tls.ca.clone();
                if let Some(sni) = &tls.sni {
                    check.peer_template.sni = sni.clone();
                }
            }
            check.consecutive_success = settings.healthy_after;
            check.consecutive_failure = settings.unhealthy_after;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check.peer_template.options.read_timeout = Some(settings.timeout);
            // Checked to be a path when the configuration was loaded.
            check.req.set_uri(path.parse().unwrap_or_default());
            check.validator = Some(Box::new(|resp| {
                let status = resp.status.as_u16();
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::HTTPStatus(status),
                        "health check status",
                    )
                }
            }));
            Box::new(check)
        }
    }
}
