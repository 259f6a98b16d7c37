//! The brute-force limits every secret check counts against: counters per (account,
//! address), per address and per account, counted before the secret is verified and given
//! back when it was right; the per-pair turn a burst queues for; the reused "within budget"
//! answers of remembered secrets. [`within_limit`] and [`budget_left`] are the policy, pure.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::OAuthProvider;
use crate::cache::ExpiringCache;
use crate::clock::SharedClock;
use crate::crypto;
use crate::error::OAuthError;
use crate::records::store_key;

/// The brute-force counters an authentication attempt counts against (`kind` is `client` or
/// `user`). The policy: an address that fails `max_failures` times for one account, or for
/// any accounts, is refused (429) for the window; the account itself is never locked, since
/// anyone could then lock anyone out from an address of their own. Past
/// `account_max_failures` failures from all addresses together, every attempt on the account
/// is slowed down instead (a growing, bounded delay), so a correct credential from an address
/// under its own budget still succeeds.
///
/// An attempt is counted *before* its secret is checked, by one atomic increment that also
/// says whether it is within the budget, and given back when it succeeds (or was refused
/// unchecked): a counter holds the failures of its window plus the attempts being checked
/// right now, so a burst of concurrent guesses gets at most `max_failures` of them checked,
/// wherever in the fleet they land. Keys name accounts by a digest: an attacker's string
/// never becomes a store key.
pub(crate) struct FailureCounters {
    /// Per (account, address): refused past `max_failures`.
    pair: String,
    /// Per address, whatever the account: refused past `max_failures`.
    address: Option<String>,
    /// Per account, every address: slowed down past `account_max_failures`.
    account: String,
    /// What every counter key of this address starts with.
    address_prefix: String,
}

impl FailureCounters {
    pub(crate) fn new(kind: &str, id: &str, client_ip: Option<IpAddr>) -> Self {
        let who = &crypto::digest_hex(&format!("{kind}\0{id}"))[..32];
        let ip = client_ip.map_or_else(|| "local".to_string(), counted_address);
        Self {
            pair: store_key::failures_from(kind, who, &ip),
            address: client_ip.map(|_| store_key::failures_at(&ip)),
            account: store_key::failures(kind, who),
            address_prefix: store_key::failures_prefix(&ip),
        }
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        [&self.pair, &self.account].into_iter().chain(&self.address)
    }
}

/// The address failures count against: an IPv4 address, or the /64 of an IPv6 one (a
/// client holds a whole /64, and would otherwise get 2^64 budgets).
fn counted_address(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The slow-down of an attempt on an account with `count` recent failures: none up to
/// `threshold`, then 100 ms doubling with each further failure, at most `max`.
pub(crate) fn failure_delay(count: u64, threshold: u64, max: Duration) -> Duration {
    if count < threshold {
        return Duration::ZERO;
    }
    let doublings = (count - threshold).min(16);
    (Duration::from_millis(100) * (1u32 << doublings)).min(max)
}

/// Attempts on one (account, address) pair run one at a time in this process: of a burst of
/// concurrent requests with a right credential not yet remembered, the first checks it and
/// the others find it remembered, instead of all of them counting against the budget at once.
/// Striped by a keyed hash, so an attacker cannot choose whom they queue behind.
pub(crate) struct AttemptLocks {
    hasher: std::collections::hash_map::RandomState,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl AttemptLocks {
    const STRIPES: usize = 256;

    pub(crate) fn new() -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    async fn lock(&self, who: &FailureCounters) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::BuildHasher;
        let stripe = self.hasher.hash_one(&who.pair) as usize % self.stripes.len();
        self.stripes[stripe].lock().await
    }
}

/// The store's recent "within budget" answers for remembered secrets, by address and then
/// (account, address) counter, each reused for `oauth.denylist_cache_ms` at most, so a
/// remembered secret costs no store round trip per request. An attempt counted in this
/// process forgets every answer for its address at once; attempts counted by other instances
/// are seen within that time. An answer exists only after a request from that address
/// presented the right secret within the budget, so a guesser at any other address never
/// finds one.
pub(crate) struct BudgetAnswers {
    /// By address prefix: the pairs answered, each with when its answer lapses (ms).
    by_address: ExpiringCache<String, Arc<[(String, u64)]>>,
    clock: SharedClock,
}

impl BudgetAnswers {
    /// Answers kept for this many accounts per address at most (the latest ones).
    const PAIRS_PER_ADDRESS: usize = 16;

    pub(crate) fn new(max_entries: usize, clock: SharedClock) -> Self {
        Self {
            by_address: ExpiringCache::new(max_entries, Arc::clone(&clock)),
            clock,
        }
    }

    fn fresh(&self, who: &FailureCounters) -> bool {
        let now = self.clock.now_millis();
        self.by_address
            .get(&who.address_prefix)
            .is_some_and(|pairs| {
                pairs
                    .iter()
                    .any(|(p, until)| *p == who.pair && *until > now)
            })
    }

    fn remember(&self, who: &FailureCounters, ttl: Duration) {
        let now = self.clock.now_millis();
        let until = crate::clock::deadline(now, ttl);
        let mut pairs: Vec<(String, u64)> = self
            .by_address
            .get(&who.address_prefix)
            .map(|pairs| {
                pairs
                    .iter()
                    .filter(|(p, until)| *p != who.pair && *until > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if pairs.len() >= Self::PAIRS_PER_ADDRESS {
            pairs.remove(0);
        }
        pairs.push((who.pair.clone(), until));
        self.by_address
            .insert_for(who.address_prefix.clone(), pairs.into(), ttl);
    }

    fn forget_address(&self, who: &FailureCounters) {
        self.by_address.remove(&who.address_prefix);
    }
}

impl OAuthProvider {
    fn too_many_attempts(&self) -> OAuthError {
        OAuthError::TooManyAttempts {
            retry_after_secs: self.config.failure_window.as_secs(),
        }
    }

    /// Refuses (429) when `who`'s address has no budget left, without counting: for a
    /// credential already known to be right (remembered), which must not pass where any
    /// guess is refused, or the answer would tell a guesser past the limit it guessed right.
    /// Both counters in one round trip (they share the address's hash slot).
    async fn within_budget(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        let reuse = self.config.denylist_cache;
        if !reuse.is_zero() && self.budget_answers.fresh(who) {
            return Ok(());
        }
        let keys: Vec<&str> = std::iter::once(who.pair.as_str())
            .chain(who.address.as_deref())
            .collect();
        let counts = self.store.counts(&keys).await?;
        if !budget_left(&counts, self.config.max_failures) {
            return Err(self.too_many_attempts());
        }
        if !reuse.is_zero() {
            self.budget_answers.remember(who, reuse);
        }
        Ok(())
    }

    /// Counts an attempt before its secret is checked: past the address's budget it is
    /// refused (429) and given back; otherwise it stays counted until [`Self::succeeded`]
    /// gives it back. Waits first when the account had many failures from everywhere (see
    /// [`FailureCounters`]).
    async fn count_attempt(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        // From now on this address's remembered secrets ask the store again.
        self.budget_answers.forget_address(who);
        let window = self.config.failure_window;
        let address = async {
            match &who.address {
                Some(key) => self.store.incr(key, window).await.map(Some),
                None => Ok(None),
            }
        };
        let (pair, address) = tokio::join!(self.store.incr(&who.pair, window), address);
        let (pair, address) = (pair?, address?);
        if !within_limit(pair, address, self.config.max_failures) {
            let address = async {
                match &who.address {
                    Some(key) => self.store.decr(key).await,
                    None => Ok(()),
                }
            };
            let (pair, address) = tokio::join!(self.store.decr(&who.pair), address);
            pair?;
            address?;
            return Err(self.too_many_attempts());
        }
        let account = self.store.incr(&who.account, window).await?;
        let delay = failure_delay(
            account.saturating_sub(1),
            self.config.account_max_failures,
            self.config.max_failure_delay,
        );
        if !delay.is_zero() {
            self.throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// Gives back a counted attempt that succeeded.
    async fn succeeded(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        let results = futures_util::future::join_all(who.all().map(|k| self.store.decr(k))).await;
        for result in results {
            result?;
        }
        Ok(())
    }

    /// Checks a secret under the brute-force counters: `remembered` answers without argon2
    /// for a secret verified recently (still refused past the budget), `check` runs the
    /// verification of an attempt that was counted first.
    pub(super) async fn counted_check(
        &self,
        who: &FailureCounters,
        remembered: impl Fn() -> bool,
        check: impl std::future::Future<Output = bool>,
    ) -> Result<bool, OAuthError> {
        if remembered() {
            self.within_budget(who).await?;
            return Ok(true);
        }
        let _turn = self.attempts.lock(who).await;
        // While this attempt waited its turn, another may have verified the same secret.
        if remembered() {
            self.within_budget(who).await?;
            return Ok(true);
        }
        self.count_attempt(who).await?;
        let ok = check.await;
        if ok {
            self.succeeded(who).await?;
        }
        Ok(ok)
    }
}

/// Whether an attempt counted as the `pair`-th for its (account, address) and the
/// `address`-th for its address (within the window, attempts in flight included) may be
/// checked: at most `max` of either are.
fn within_limit(pair: u64, address: Option<u64>, max: u64) -> bool {
    pair <= max && address.is_none_or(|n| n <= max)
}

/// Whether counters read at `counts` leave room for one more attempt under `max`: what a
/// remembered (right) secret needs, so it is refused exactly where a guess would be.
fn budget_left(counts: &[u64], max: u64) -> bool {
    counts.iter().all(|n| *n < max)
}

#[cfg(test)]
mod tests;
