//! The gateway's view of the token store: the configured [`Store`] wrapped so that every
//! failure is counted in metrics and logged (never with its key, which may embed a secret).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prometheus::IntCounterVec;
use token_module::{Store, StoreError};

use crate::config::StoreSettings;

/// A [`Store`] that reports its failures.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    errors: IntCounterVec,
}

impl MeteredStore {
    /// Opens the store the settings name (no connection is made yet) and wraps it.
    pub fn open(settings: &StoreSettings, errors: IntCounterVec) -> Result<Self, StoreError> {
        let inner =
            token_module::store::open(&settings.url, &settings.key_prefix, settings.timeout)?;
        Ok(Self { inner, errors })
    }

    fn observe<T>(&self, operation: &str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            let kind = match e {
                StoreError::Timeout(_) => "timeout",
                StoreError::Unavailable(_) => "unavailable",
                _ => "other",
            };
            self.errors.with_label_values(&[operation, kind]).inc();
            tracing::warn!(operation, error = %e, "store call failed");
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.observe("put", self.inner.put(key, value, ttl).await)
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.observe(
            "put_if_absent",
            self.inner.put_if_absent(key, value, ttl).await,
        )
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observe("get", self.inner.get(key).await)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.observe("take", self.inner.take(key).await)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.observe(
            "compare_and_swap",
            self.inner.compare_and_swap(key, expected, new, ttl).await,
        )
    }

    async fn take_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.observe("take_if", self.inner.take_if(key, expected).await)
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        self.observe("decr", self.inner.decr(key).await)
    }

    async fn counts(&self, keys: &[&str]) -> Result<Vec<u64>, StoreError> {
        self.observe("counts", self.inner.counts(keys).await)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.observe("delete", self.inner.delete(key).await)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.observe("incr", self.inner.incr(key, ttl).await)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.observe("ping", self.inner.ping().await)
    }

    async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        self.observe("eviction_policy", self.inner.eviction_policy().await)
    }

    async fn publish_event(&self, event: &str) -> Result<(), StoreError> {
        self.observe("publish", self.inner.publish_event(event).await)
    }

    async fn put_and_publish(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        event: &str,
    ) -> Result<bool, StoreError> {
        let result = self.inner.put_and_publish(key, value, ttl, event).await;
        self.observe("put", result)
    }

    async fn subscribe_events(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        self.observe("subscribe", self.inner.subscribe_events().await)
    }
}

/// Whether this instance hears the events of the others sharing its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsState {
    /// Nothing else shares the store (the embedded one): there is nothing to hear.
    NotShared,
    /// Subscribed: revocations made anywhere reach this instance's caches at once.
    Connected,
    /// Not subscribed (yet, or any more): revocations made elsewhere are seen within the
    /// reuse window (`oauth.denylist_cache_ms`) only. `/readyz` says `degraded`.
    Disconnected,
}

/// Follows the store's events for as long as the process runs: subscribes, hands each event
/// to the OAuth provider in force, and subscribes again (with a growing pause, at most
/// [`RESUBSCRIBE_MAX`]) when the subscription is lost. Each new subscription first makes the
/// provider forget its "not revoked" answers, since events may have been missed meanwhile.
pub struct StoreEvents {
    pub store: Arc<dyn Store>,
    pub live: Arc<crate::live::Live>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub state: Arc<arc_swap::ArcSwap<EventsState>>,
}

const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);
/// Every instance publishes this every [`HEARTBEAT_EVERY`]: a subscription that hears nothing
/// (not even its own) for three of them is taken as dead — a connection a NAT or a partition
/// dropped without a word would otherwise look subscribed forever.
const HEARTBEAT: &str = "heartbeat";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// The subscription loop, apart from what it feeds (so it can be tested on its own).
struct Follower<'a> {
    store: &'a dyn Store,
    metrics: &'a crate::metrics::Metrics,
    state: &'a arc_swap::ArcSwap<EventsState>,
}

impl Follower<'_> {
    fn set(&self, state: EventsState) {
        self.metrics
            .store_events_connected
            .set(i64::from(state == EventsState::Connected));
        self.state.store(Arc::new(state));
    }

    /// Runs until the store says it is not shared; `subscribed` is called on each new
    /// subscription, `event` with each event heard.
    async fn follow(&self, subscribed: impl Fn(), event: impl Fn(&str)) {
        let mut pause = RESUBSCRIBE_MIN;
        let mut warned = false;
        loop {
            match self.store.subscribe_events().await {
                Ok(None) => {
                    self.set(EventsState::NotShared);
                    return;
                }
                Ok(Some(events)) => {
                    self.set(EventsState::Connected);
                    subscribed();
                    if warned {
                        tracing::info!("subscribed to the store's revocation events again");
                    }
                    pause = RESUBSCRIBE_MIN;
                    self.listen(events, &event).await;
                    self.set(EventsState::Disconnected);
                    tracing::warn!("lost the store's revocation events; revocations made elsewhere are seen within the reuse window until they are back");
                    warned = true;
                }
                Err(e) => {
                    self.set(EventsState::Disconnected);
                    if !warned {
                        tracing::warn!(error = %e, "cannot subscribe to the store's revocation events; retrying");
                        warned = true;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RESUBSCRIBE_MAX);
        }
    }

    /// Hands on the events of one subscription until it closes or goes silent.
    async fn listen(&self, mut events: tokio::sync::mpsc::Receiver<String>, event: impl Fn(&str)) {
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                received = events.recv() => {
                    let Some(received) = received else { return };
                    heard = tokio::time::Instant::now();
                    if received != HEARTBEAT {
                        self.metrics.store_events.inc();
                        event(&received);
                    }
                }
                _ = heartbeat.tick() => {
                    if heard.elapsed() > HEARTBEAT_EVERY * 3 {
                        return;
                    }
                    // A failure shows as silence, which the check above acts on.
                    let _ = self.store.publish_event(HEARTBEAT).await;
                }
            }
        }
    }
}

#[async_trait]
impl pingora::services::background::BackgroundService for StoreEvents {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let follower = Follower {
            store: self.store.as_ref(),
            metrics: &self.metrics,
            state: &self.state,
        };
        let subscribed = || {
            if let Some(oauth) = &self.live.load().oauth {
                oauth.provider.events_may_be_lost();
            }
        };
        let event = |event: &str| {
            if let Some(oauth) = &self.live.load().oauth {
                oauth.provider.apply_event(event);
            }
        };
        tokio::select! {
            _ = follower.follow(subscribed, event) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Watches the store's eviction policy: at start and on every `/readyz`. A policy that can
/// evict (anything but `noeviction`; the `volatile-*` ones too, since every key Tollgate
/// writes has a TTL) is logged once as a warning and exported as
/// `tollgate_store_evicting_policy 1`.
pub struct EvictionWatch {
    store: Arc<dyn Store>,
    evicting: prometheus::IntGauge,
    warned: std::sync::atomic::AtomicBool,
}

impl EvictionWatch {
    pub fn new(store: Arc<dyn Store>, evicting: prometheus::IntGauge) -> Self {
        Self {
            store,
            evicting,
            warned: Default::default(),
        }
    }

    /// Asks the store for its policy and reports it. A store that is down or will not say is
    /// left as last seen (`/readyz` reports the outage itself).
    pub async fn check(&self) {
        let Ok(Some(policy)) = self.store.eviction_policy().await else {
            return;
        };
        let evicting = policy != "noeviction";
        self.evicting.set(i64::from(evicting));
        if evicting && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                %policy,
                "the Redis maxmemory-policy can evict keys: authorization codes, refresh tokens and revocations may be lost; set `maxmemory-policy noeviction`"
            );
        }
    }
}

/// The start-up check of an [`EvictionWatch`], as a Pingora background service.
pub struct EvictionCheckAtStart(pub Arc<EvictionWatch>);

#[async_trait]
impl pingora::services::background::BackgroundService for EvictionCheckAtStart {
    /// Checks once at start; `/readyz` checks again on every call.
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        self.0.check().await;
    }
}

#[cfg(test)]
mod tests;
