//! The request path's caches: bounded, sharded (`quick_cache`), each entry with its own expiry
//! read against the injected [`Clock`](crate::clock::Clock). When full, the cache evicts by
//! its policy (S3-FIFO: an entry seen once goes first) one entry at a time — never all at once,
//! so a burst of new keys cannot send every cached answer back to the work it saved. An entry
//! past its time answers nothing and is dropped when read, or evicted like any other.

use std::hash::Hash;
use std::time::Duration;

use crate::clock::{deadline, SharedClock};

/// An entry and the instant (milliseconds since the epoch, by the clock) it stops counting.
#[derive(Clone)]
struct Timed<V> {
    value: V,
    until: u64,
}

/// A bounded map whose entries each expire at their own time.
pub(crate) struct ExpiringCache<K, V> {
    entries: quick_cache::sync::Cache<K, Timed<V>>,
    clock: SharedClock,
}

impl<K, V> ExpiringCache<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// At most `max_entries` entries (at least one).
    pub(crate) fn new(max_entries: usize, clock: SharedClock) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(max_entries.max(1)),
            clock,
        }
    }

    /// The entry's value while it lives.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entry = self.entries.get(key)?;
        if entry.until > self.clock.now_millis() {
            Some(entry.value)
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Whether the key has a live entry.
    pub(crate) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Keeps `value` for `ttl` from now (nothing for a zero `ttl`).
    pub(crate) fn insert_for(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let until = deadline(self.clock.now_millis(), ttl);
        self.entries.insert(key, Timed { value, until });
    }

    /// Keeps `value` until `until_secs` (seconds since the epoch); nothing if that has passed.
    pub(crate) fn insert_until(&self, key: K, value: V, until_secs: u64) {
        let now = self.clock.now_millis();
        let ttl = Duration::from_millis(until_secs.saturating_mul(1000).saturating_sub(now));
        self.insert_for(key, value, ttl);
    }

    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key);
    }

    /// Forgets every entry (what they answered may no longer hold).
    pub(crate) fn clear(&self) {
        self.entries.clear();
    }

    /// The entries held, live or not yet dropped (for tests).
    #[cfg(test)]
    pub(crate) fn held(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn cache(max: usize) -> (Arc<ManualClock>, ExpiringCache<String, u32>) {
        let clock = Arc::new(ManualClock::new(1_000));
        (Arc::clone(&clock), ExpiringCache::new(max, clock))
    }

    #[test]
    fn an_entry_lives_exactly_its_time() {
        let (clock, c) = cache(10);
        c.insert_for("a".into(), 1, Duration::from_millis(1_500));
        c.insert_until("b".into(), 2, 1_003);
        assert_eq!((c.get("a"), c.get("b")), (Some(1), Some(2)));
        clock.advance_by(Duration::from_millis(1_499));
        assert_eq!(c.get("a"), Some(1));
        clock.advance_by(Duration::from_millis(1));
        assert_eq!(c.get("a"), None, "expired at its deadline");
        assert_eq!(c.get("b"), Some(2));
        clock.advance(2);
        assert!(!c.contains("b"));
    }

    #[test]
    fn nothing_is_kept_for_no_time_or_a_past_deadline() {
        let (_, c) = cache(10);
        c.insert_for("a".into(), 1, Duration::ZERO);
        c.insert_until("b".into(), 2, 999);
        c.insert_until("c".into(), 3, 1_000);
        assert_eq!(c.held(), 0);
    }

    #[test]
    fn a_full_cache_evicts_some_entries_never_all() {
        // Room for twice the hot set: a sharded cache's room is approximate.
        let (_, c) = cache(200);
        for i in 0..100u32 {
            c.insert_for(format!("hot{i}"), i, Duration::from_secs(60));
        }
        // The resident entries are read often; then a flood of keys seen once.
        for _ in 0..3 {
            for i in 0..100u32 {
                assert_eq!(c.get(&format!("hot{i}")), Some(i));
            }
        }
        for i in 0..10_000u32 {
            c.insert_for(format!("flood{i}"), i, Duration::from_secs(60));
        }
        assert!(c.held() <= 200, "bounded: {}", c.held());
        let kept = (0..100u32)
            .filter(|i| c.get(&format!("hot{i}")).is_some())
            .count();
        assert!(
            kept >= 50,
            "a flood of one-off keys kept {kept} of 100 hot entries"
        );
    }

    #[test]
    fn remove_and_clear_forget() {
        let (_, c) = cache(10);
        c.insert_for("a".into(), 1, Duration::from_secs(5));
        c.insert_for("b".into(), 2, Duration::from_secs(5));
        c.remove("a");
        assert_eq!((c.get("a"), c.get("b")), (None, Some(2)));
        c.clear();
        assert_eq!(c.get("b"), None);
    }
}
