//! The embedded store: a TTL-honouring map private to this process, for the single-instance
//! quickstart. Each operation holds one lock for its whole read-modify-write, which is what
//! makes `take`, `compare_and_swap` and `incr` atomic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Store, StoreError};
use crate::clock::{deadline, SharedClock, SystemClock};

/// Expired entries are dropped lazily on access, and all of them every this many writes.
const SWEEP_EVERY_WRITES: u64 = 4096;

struct Entry {
    value: Vec<u8>,
    /// Milliseconds since the epoch, by the store's clock.
    expires_at: u64,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at > now
    }
}

/// In-memory [`Store`].
pub struct MemoryStore {
    prefix: String,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    writes: Arc<AtomicU64>,
    clock: SharedClock,
}

impl MemoryStore {
    /// An empty store whose keys all start with `prefix`, on the system clock.
    pub fn new(prefix: &str) -> Self {
        Self::with_clock(prefix, SystemClock::shared())
    }

    /// An empty store whose entries expire by `clock` (tests move it instead of sleeping).
    pub fn with_clock(prefix: &str, clock: SharedClock) -> Self {
        Self {
            prefix: prefix.to_string(),
            entries: Arc::default(),
            writes: Arc::default(),
            clock,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Another handle onto the same entries, with its own key prefix.
    pub fn with_prefix(&self, prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
            entries: Arc::clone(&self.entries),
            writes: Arc::clone(&self.writes),
            clock: Arc::clone(&self.clock),
        }
    }

    /// Runs `f` on the map under the lock, with expired entries swept now and then.
    fn with_entries<T>(&self, write: bool, f: impl FnOnce(&mut HashMap<String, Entry>) -> T) -> T {
        // A panic while holding the lock cannot leave an entry half-written (every mutation is
        // a single insert/remove), so a poisoned map is still consistent.
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if write
            && self
                .writes
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(SWEEP_EVERY_WRITES)
        {
            let now = self.now();
            map.retain(|_, e| e.live(now));
        }
        f(&mut map)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

fn live_value(map: &HashMap<String, Entry>, key: &str, now: u64) -> Option<Vec<u8>> {
    map.get(key)
        .filter(|e| e.live(now))
        .map(|e| e.value.clone())
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        let expires_at = deadline(self.now(), ttl);
        self.with_entries(true, |m| {
            m.insert(
                key,
                Entry {
                    value: value.to_vec(),
                    expires_at,
                },
            );
        });
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(true, |m| {
            if m.get(&key).is_some_and(|e| e.live(now)) {
                return false;
            }
            m.insert(
                key,
                Entry {
                    value: value.to_vec(),
                    expires_at: deadline(now, ttl),
                },
            );
            true
        }))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(false, |m| live_value(m, &key, now)))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(false, |m| {
            m.remove(&key).filter(|e| e.live(now)).map(|e| e.value)
        }))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(true, |m| {
            if live_value(m, &key, now).as_deref() != Some(expected) {
                return false;
            }
            m.insert(
                key,
                Entry {
                    value: new.to_vec(),
                    expires_at: deadline(now, ttl),
                },
            );
            true
        }))
    }

    async fn take_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(false, |m| {
            if live_value(m, &key, now).as_deref() != Some(expected) {
                return false;
            }
            m.remove(&key);
            true
        }))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(false, |m| m.remove(&key).is_some_and(|e| e.live(now))))
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let key = self.key(key);
        let now = self.now();
        Ok(self.with_entries(true, |m| {
            let current = live_value(m, &key, now)
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
            let (count, expires_at) = match (current, m.get(&key)) {
                (Some(n), Some(e)) => (n + 1, e.expires_at),
                _ => (1, deadline(now, ttl)),
            };
            m.insert(
                key,
                Entry {
                    value: count.to_string().into_bytes(),
                    expires_at,
                },
            );
            count
        }))
    }

    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        let now = self.now();
        self.with_entries(false, |m| {
            let Some(entry) = m.get_mut(&key).filter(|e| e.live(now)) else {
                return;
            };
            let count = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(count) = count {
                entry.value = count.saturating_sub(1).to_string().into_bytes();
            }
        });
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
