//! The one clock of the house: wall-clock time since the Unix epoch, in whole seconds (as
//! tokens count it) and in milliseconds (for caches, store TTLs and rate windows). Everything
//! that asks what time it is — the provider, the memory store, token validation, the secret
//! and budget caches, the gateway's rate limits — reads it through [`Clock`], so tests move a
//! [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn now(&self) -> u64 {
        self.now_millis() / 1000
    }
}

/// A shared clock, as the services hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `now` seconds since the epoch.
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now * 1000))
    }

    /// Moves the clock `seconds` forward.
    pub fn advance(&self, seconds: u64) {
        self.0.fetch_add(seconds * 1000, Ordering::Relaxed);
    }

    /// Moves the clock forward by `by` (millisecond resolution).
    pub fn advance_by(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The instant `ttl` after `now_millis`, saturating.
pub fn deadline(now_millis: u64, ttl: Duration) -> u64 {
    now_millis.saturating_add(ttl.as_millis().min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!((clock.now(), clock.now_millis()), (1_000, 1_000_000));
        clock.advance_by(Duration::from_millis(1_500));
        assert_eq!((clock.now(), clock.now_millis()), (1_001, 1_001_500));
        clock.advance(2);
        assert_eq!(clock.now(), 1_003);
    }

    #[test]
    fn system_clock_agrees_with_itself() {
        let clock = SystemClock;
        let (s, ms) = (clock.now(), clock.now_millis());
        assert!(ms / 1000 >= s && ms / 1000 - s <= 1);
    }

    #[test]
    fn deadlines_saturate() {
        assert_eq!(deadline(5, Duration::from_millis(7)), 12);
        assert_eq!(deadline(u64::MAX - 1, Duration::from_secs(10)), u64::MAX);
    }
}
