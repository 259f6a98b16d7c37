//! The token store: where authorization codes, refresh-token families, opaque access tokens,
//! revocation entries and brute-force counters live.
//!
//! Two implementations pass one shared suite (`tests/store_suite.rs`): [`MemoryStore`] for a
//! single instance with no dependencies, and [`RedisStore`] (single node, TLS or Cluster) for
//! several instances that must share state. Every operation touches exactly one key, so all of
//! them work unchanged on Redis Cluster.

mod memory;
mod redis;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// Why a store operation failed. None of these carry keys or values: keys can embed codes
/// or token hashes, and the message ends up in logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operation did not finish within the store's configured timeout.
    #[error("store operation timed out after {0:?}")]
    Timeout(Duration),
    /// The backend could not be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store URL or options are not usable.
    #[error("invalid store configuration: {0}")]
    Config(String),
}

/// Key-value operations with time-to-live that the grants need.
///
/// Keys are logical names (`code:…`, `rtf:…`); each implementation prepends its configured
/// prefix. A `ttl` is always at least one millisecond; a value is never returned after it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `value` under `key` for `ttl`, replacing any earlier value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Stores `value` under `key` for `ttl` only if the key holds nothing; returns whether it
    /// stored. Of concurrent callers for one key, at most one gets `true`.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Returns the value under `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Atomically returns and deletes the value under `key`: of concurrent callers exactly one
    /// gets the value. This is what makes authorization codes single-use.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Atomically replaces the value under `key` with `new` (living `ttl`) only if it currently
    /// equals `expected`; returns whether it swapped. Refresh-token rotation is built on this.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Atomically deletes `key` only if it currently holds `expected`; returns whether it
    /// deleted. Of concurrent callers that read the same value, exactly one gets `true`: an
    /// authorization code is checked first and taken only with what the check read.
    async fn take_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError>;

    /// Deletes `key`; returns whether something was there.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Adds one to the counter under `key` and returns the new count. A counter that did not
    /// exist starts at 1 and expires `ttl` after that first increment (a fixed window).
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// The counts under `keys` (0 where there is none), in one round trip where the
    /// backend allows. The keys must share a Redis Cluster hash slot: name them with one
    /// hash tag (`x:{tag}:a`, `x:{tag}:b`). Default: one [`Store::get`] each.
    async fn counts(&self, keys: &[&str]) -> Result<Vec<u64>, StoreError> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            counts.push(parse_count(self.get(key).await?.as_deref()));
        }
        Ok(counts)
    }

    /// Takes one back from the live counter under `key` (a refund of [`Store::incr`]): never
    /// below zero, never creating a counter, never moving its expiry.
    async fn decr(&self, key: &str) -> Result<(), StoreError>;

    /// Checks that the backend answers; `/readyz` reports this.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Sends `event` to every process subscribed to this store's events (see
    /// [`Store::subscribe_events`]), this one included. Best effort: an event can be lost,
    /// so an event only ever speeds up what the stored state already says. Default: nothing
    /// to send to (no other process shares the store).
    async fn publish_event(&self, _event: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Stores `value` under `key` for `ttl` (as [`Store::put`]), then publishes `event` (as
    /// [`Store::publish_event`]): one round trip where the backend allows. Only the store
    /// can fail the call; `Ok(false)` says the event could not be sent.
    async fn put_and_publish(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        event: &str,
    ) -> Result<bool, StoreError> {
        self.put(key, value, ttl).await?;
        Ok(self.publish_event(event).await.is_ok())
    }

    /// Subscribes to the events processes publish on this store: the receiver yields each
    /// one and closes when the subscription is lost (subscribe again to resume; events sent
    /// in between are missed). `None`: no other process can share this store.
    async fn subscribe_events(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<String>>, StoreError> {
        Ok(None)
    }

    /// The backend's eviction policy (Redis `maxmemory-policy`), when it has one and tells
    /// it. Codes, refresh families and revocations are state, not cache: a policy other than
    /// `noeviction` can silently drop them. Default: `None` (nothing is ever evicted).
    async fn eviction_policy(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

/// A counter's value as stored (0 for none or for what is not a count).
pub(crate) fn parse_count(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Where the store lives, parsed from the `store.url` setting.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory://`: the embedded store, private to this process.
    Memory,
    /// `redis://…` or `rediss://…` (TLS): one Redis server.
    Redis(String),
    /// `redis+cluster://h1:p1,h2:p2` (or `rediss+cluster://…`): Redis Cluster seed nodes,
    /// each given as a full `redis://` / `rediss://` URL.
    Cluster(Vec<String>),
}

impl StoreUrl {
    /// Parses a store URL; the error names what is wrong but never echoes a password.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url == "memory://" || url == "memory" {
            return Ok(Self::Memory);
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| StoreError::Config("expected a URL like redis://host:port".into()))?;
        let (node_scheme, cluster) = match scheme {
            "redis" | "rediss" => (scheme, false),
            "redis+cluster" => ("redis", true),
            "rediss+cluster" => ("rediss", true),
            _ => {
                return Err(StoreError::Config(format!(
                    "unsupported scheme `{scheme}` (use memory://, redis://, rediss://, redis+cluster:// or rediss+cluster://)"
                )))
            }
        };
        if rest.is_empty() {
            return Err(StoreError::Config("the URL names no host".into()));
        }
        if !cluster {
            return Ok(Self::Redis(url.to_string()));
        }
        // `user:pass@h1:p1,h2:p2/db`: credentials and path apply to every node.
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let (hosts, path) = match hosts.split_once('/') {
            Some((hosts, path)) => (hosts, format!("/{path}")),
            None => (hosts, String::new()),
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("{node_scheme}://{auth}{h}{path}"))
            .collect();
        if nodes.is_empty() {
            return Err(StoreError::Config("the cluster URL names no node".into()));
        }
        Ok(Self::Cluster(nodes))
    }
}

/// Never prints credentials that a URL may carry.
impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory://"),
            Self::Redis(u) => write!(f, "{}", redact_url(u)),
            Self::Cluster(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(|n| redact_url(n)).collect();
                write!(f, "cluster[{}]", nodes.join(","))
            }
        }
    }
}

fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_string(),
    }
}

/// Builds the store a URL names. `timeout` bounds every operation (and each connection
/// attempt); `key_prefix` is prepended to every key.
pub fn open(
    url: &StoreUrl,
    key_prefix: &str,
    timeout: Duration,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    Ok(match url {
        StoreUrl::Memory => std::sync::Arc::new(MemoryStore::new(key_prefix)),
        StoreUrl::Redis(_) | StoreUrl::Cluster(_) => {
            std::sync::Arc::new(RedisStore::new(url, key_prefix, timeout)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(StoreUrl::parse("memory://").ok(), Some(StoreUrl::Memory));
        assert_eq!(
            StoreUrl::parse("redis://127.0.0.1:6379/0").ok(),
            Some(StoreUrl::Redis("redis://127.0.0.1:6379/0".into()))
        );
        assert_eq!(
            StoreUrl::parse("rediss://cache.internal:6380").ok(),
            Some(StoreUrl::Redis("rediss://cache.internal:6380".into()))
        );
        assert_eq!(
            StoreUrl::parse("rediss+cluster://u:p@a:7000,b:7001/0").ok(),
            Some(StoreUrl::Cluster(vec![
                "rediss://u:p@a:7000/0".into(),
                "rediss://u:p@b:7001/0".into()
            ]))
        );
    }

    #[test]
    fn rejects_bad_urls_without_echoing_secrets() {
        for bad in [
            "",
            "http://x",
            "redis://",
            "redis+cluster://,",
            "localhost:6379",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
        let url = StoreUrl::parse("redis://user:hunter2@h:1").expect("valid url");
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
