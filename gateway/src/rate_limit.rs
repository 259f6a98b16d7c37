//! Request rate limits of routes and of the OAuth endpoints: at most `quota` requests per
//! key in each fixed `window`. Every instance counts locally with a count-min estimator of
//! the `pingora-limits` crate (bounded memory whatever the number of keys; it may over-count
//! when very many keys share it, never under-count); a `shared` limit also counts in the
//! store, in windows aligned on the wall clock, so every gateway of a fleet spends one budget.
//!
//! Over the limit the answer is 429 with `Retry-After` and the `RateLimit-Policy` /
//! `RateLimit` fields of the IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "pets";q=100;w=1` and `RateLimit: "pets";r=0;t=1`.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pingora_limits::estimator::Estimator;
use token_module::{Store, VerifiedToken};

use crate::error::GatewayError;

/// What requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateKey {
    /// The client address (see [`crate::client_address`]).
    Address,
    /// The OAuth client: the validated token's `client_id` on a protected route, the
    /// `client_id` the request names at the OAuth endpoints. Requests without one are
    /// counted by address.
    Client,
    /// The token's user (`sub`), else its client; by address without a token.
    Subject,
}

/// The value a request is counted under.
#[derive(Debug, Clone, Copy, Hash)]
pub enum KeyValue<'a> {
    Address(Option<IpAddr>),
    Client(&'a str),
    Subject(&'a str),
}

impl<'a> KeyValue<'a> {
    /// The value of `key` for a request from `address`, with `token` when one was validated
    /// and `client_id` when the request names a client.
    pub fn of(
        key: RateKey,
        address: Option<IpAddr>,
        token: Option<&'a VerifiedToken>,
        client_id: Option<&'a str>,
    ) -> Self {
        let client = token.map(|t| t.client_id.as_str()).or(client_id);
        // An IPv6 client holds a whole /64: counting single addresses would give it 2^64
        // budgets.
        let address = address.map(|ip| match ip {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
            v4 => v4,
        });
        match key {
            RateKey::Address => Self::Address(address),
            RateKey::Client => client.map_or(Self::Address(address), Self::Client),
            RateKey::Subject => match token.and_then(|t| t.subject.as_ref()) {
                Some(subject) => Self::Subject(&subject.user_id),
                None => client.map_or(Self::Address(address), Self::Client),
            },
        }
    }

    /// The key in the shared store.
    fn store_key(&self, policy: &str, window_index: u64) -> String {
        let value = match self {
            Self::Address(Some(ip)) => format!("a:{ip}"),
            Self::Address(None) => "a:-".to_string(),
            Self::Client(c) => format!("c:{c}"),
            Self::Subject(s) => format!("s:{s}"),
        };
        format!("ratelimit:{policy}:{window_index}:{value}")
    }
}

/// A validated rate limit, with its local counters.
pub struct RateLimit {
    /// The policy name: the route's name, or `oauth`.
    pub policy: String,
    pub quota: u64,
    pub window: Duration,
    pub key: RateKey,
    /// Count in the store too (one budget for the fleet).
    pub shared: bool,
    local: LocalWindows,
    /// `RateLimit-Policy`, made once.
    policy_field: String,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.policy_field)?;
        write!(f, " key={:?} shared={}", self.key, self.shared)
    }
}

/// Counters per key, estimated, in fixed windows counted from `start`; two estimators take
/// turns (the one of the window before is cleared when a new window begins).
struct LocalWindows {
    start: Instant,
    window_ms: u64,
    /// The index of the latest window seen.
    current: AtomicU64,
    counts: [Estimator; 2],
}

/// Estimator shape: 4 rows of 8192 counters (2 × 256 KiB per limit).
const ROWS: usize = 4;
const SLOTS: usize = 8192;

impl LocalWindows {
    fn new(window: Duration) -> Self {
        Self {
            start: Instant::now(),
            window_ms: window.as_millis().max(1) as u64,
            current: AtomicU64::new(0),
            counts: [Estimator::new(ROWS, SLOTS), Estimator::new(ROWS, SLOTS)],
        }
    }

    /// Counts one request under `key`: the count in this window so far and the time left
    /// in it.
    fn hit(&self, key: impl Hash) -> (u64, Duration) {
        let now = self.start.elapsed().as_millis() as u64;
        let index = now / self.window_ms;
        let seen = self.current.load(Ordering::Acquire);
        if index > seen
            && self
                .current
                .compare_exchange(seen, index, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // Its estimator last counted window `index - 2` (or earlier): start afresh. A
            // request counted there by another thread in the meantime is lost, which only
            // errs towards letting a request through at a window's edge.
            self.counts[(index % 2) as usize].reset();
        }
        let count = self.counts[(index % 2) as usize].incr(key, 1);
        let left = self.window_ms - now % self.window_ms;
        (count.max(0) as u64, Duration::from_millis(left))
    }
}

impl RateLimit {
    pub fn new(policy: String, quota: u64, window: Duration, key: RateKey, shared: bool) -> Self {
        let escaped = policy.replace('\\', "\\\\").replace('"', "\\\"");
        let policy_field = format!("\"{escaped}\";q={quota};w={}", window.as_secs());
        Self {
            policy,
            quota,
            window,
            key,
            shared,
            local: LocalWindows::new(window),
            policy_field,
        }
    }

    /// Counts a request under `value`; `Err(TooManyRequests)` past the quota. A shared limit
    /// asks the store unless the local count alone is over; when the store cannot answer,
    /// the local count decides (a store outage must not take every route down with it).
    pub async fn check(&self, value: KeyValue<'_>, store: &dyn Store) -> Result<(), GatewayError> {
        let (mut count, mut left) = self.local.hit(value);
        if self.shared && count <= self.quota {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            let window_ms = self.window.as_millis() as u64;
            let key = value.store_key(&self.policy, now / window_ms);
            match store.incr(&key, self.window).await {
                Ok(shared) => {
                    count = shared;
                    left = Duration::from_millis(window_ms - now % window_ms);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "shared rate limit unavailable; counting locally")
                }
            }
        }
        if count <= self.quota {
            return Ok(());
        }
        // Whole seconds, rounded up: a client that waits this long is in a new window.
        let retry = left.as_millis().div_ceil(1000).max(1) as u64;
        let policy = &self.policy_field;
        let name = &policy[..policy.find(';').unwrap_or(policy.len())];
        Err(GatewayError::TooManyRequests {
            headers: vec![
                ("retry-after", retry.to_string()),
                ("ratelimit-policy", policy.clone()),
                ("ratelimit", format!("{name};r=0;t={retry}")),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_within_a_window() {
        let windows = LocalWindows::new(Duration::from_secs(3600));
        for n in 1..=5 {
            assert_eq!(windows.hit("a").0, n);
        }
        assert_eq!(windows.hit("b").0, 1);
        let (_, left) = windows.hit("a");
        assert!(left <= Duration::from_secs(3600));
    }

    #[test]
    fn a_new_window_starts_from_zero() {
        let windows = LocalWindows::new(Duration::from_millis(1));
        windows.hit("a");
        windows.hit("a");
        // Two windows on, the estimator of the current one was cleared.
        std::thread::sleep(Duration::from_millis(3));
        assert_eq!(windows.hit("a").0, 1);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("address");
        let (ka, kb) = (
            KeyValue::of(RateKey::Address, Some(a), None, None),
            KeyValue::of(RateKey::Address, Some(b), None, None),
        );
        assert_eq!(ka.store_key("p", 1), kb.store_key("p", 1));
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        let kc = KeyValue::of(RateKey::Address, Some(other), None, None);
        assert_ne!(ka.store_key("p", 1), kc.store_key("p", 1));
    }

    #[test]
    fn keys_fall_back_to_the_address() {
        let ip: IpAddr = "192.0.2.1".parse().expect("address");
        let no_client = KeyValue::of(RateKey::Client, Some(ip), None, None);
        assert!(matches!(no_client, KeyValue::Address(Some(a)) if a == ip));
        let named = KeyValue::of(RateKey::Subject, Some(ip), None, Some("spa"));
        assert!(matches!(named, KeyValue::Client("spa")));
    }

    #[test]
    fn policy_names_are_quoted() {
        let limit = RateLimit::new(
            "a\"b".into(),
            5,
            Duration::from_secs(2),
            RateKey::Address,
            false,
        );
        assert_eq!(limit.policy_field, r#""a\"b";q=5;w=2"#);
    }
}
