//! Client authentication (RFC 6749 2.3) and user authentication, with the brute-force
//! counters both count against.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::OAuthProvider;
use crate::cache::ExpiringCache;
use crate::clock::SharedClock;
use crate::config::{Client, Grant, User};
use crate::crypto;
use crate::error::OAuthError;
use crate::form::{basic_credentials, Params};
use crate::records::store_key;

/// What a client presented to authenticate.
pub(crate) struct PresentedClient {
    pub id: String,
    pub secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// Which endpoint a client authenticates to: it decides whether a client without a secret
/// may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthPurpose {
    Grant(Grant),
    Revocation,
    Introspection,
}

/// An authenticated client and the secret it presented (verified), if any.
pub(crate) struct AuthenticatedClient<'a> {
    pub client: &'a Client,
    pub secret: Option<String>,
}

/// The longest `client_id` or `username` taken: a longer one is refused (`invalid_request`)
/// before any counter, store key or log line sees it.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 256;

/// Refuses an identifier longer than [`MAX_IDENTIFIER_BYTES`].
pub(crate) fn check_identifier(what: &str, value: &str) -> Result<(), OAuthError> {
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(OAuthError::InvalidRequest(format!(
            "{what} is longer than {MAX_IDENTIFIER_BYTES} bytes"
        )));
    }
    Ok(())
}

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
    async fn counted_check(
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

    /// Authenticates the client of a token request (RFC 6749 2.3): HTTP Basic, or
    /// `client_id`/`client_secret` in the body, never both; no secret only for a public
    /// client or one allowed the password grant without one. A secret counts against the
    /// brute-force budget; no secret is not a guess and counts nothing.
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
        purpose: AuthPurpose,
        client_ip: Option<IpAddr>,
    ) -> Result<AuthenticatedClient<'_>, OAuthError> {
        let presented = presented_client(authorization, params)?;
        let client = self.config.clients.get(&presented.id);
        let ok = match (&presented.secret, client) {
            (Some(secret), client) => {
                let hash = client.and_then(|c| c.secret_hash.as_ref());
                let who = FailureCounters::new("client", &presented.id, client_ip);
                let remembered = || {
                    hash.is_some_and(|h| {
                        self.verifier.remembers(&presented.id, h, secret.as_bytes())
                    })
                };
                let check = self.verifier.verify(&presented.id, hash, secret.as_bytes());
                self.counted_check(&who, remembered, check).await?
            }
            (None, Some(c)) => passes_without_secret(c, purpose),
            (None, None) => false,
        };
        match client {
            Some(client) if ok => Ok(AuthenticatedClient {
                client,
                secret: presented.secret,
            }),
            _ => {
                // A configured id is the operator's; an unknown one is the caller's string.
                match client {
                    Some(c) => {
                        tracing::info!(client_id = %c.client_id, "client authentication failed")
                    }
                    None => tracing::info!("client authentication failed: unknown client"),
                }
                Err(OAuthError::InvalidClient {
                    basic: presented.basic,
                })
            }
        }
    }

    /// Authenticates a user by username and password, counting attempts per username and
    /// address. Unknown users cost the same time as known ones and get the same error.
    pub(crate) async fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<&User>, OAuthError> {
        check_identifier("username", username)?;
        let user = self.config.users.get(username);
        let who = FailureCounters::new("user", username, client_ip);
        let remembered = || {
            user.is_some_and(|u| {
                self.verifier
                    .remembers(username, &u.password_hash, password.as_bytes())
            })
        };
        let check = self.verifier.verify(
            username,
            user.map(|u| &u.password_hash),
            password.as_bytes(),
        );
        let ok = self.counted_check(&who, remembered, check).await?;
        Ok(if ok { user } else { None })
    }
}

/// Whether a client that presented no secret passes for `purpose`: a public client for the
/// grants a browser app uses and to revoke its own tokens, a client allowed the password
/// grant without a secret for that grant; never for introspection.
fn passes_without_secret(client: &Client, purpose: AuthPurpose) -> bool {
    match purpose {
        AuthPurpose::Grant(grant) => {
            (client.public && matches!(grant, Grant::AuthorizationCode | Grant::RefreshToken))
                || (client.password_grant_without_secret && grant == Grant::Password)
        }
        AuthPurpose::Revocation => client.public,
        AuthPurpose::Introspection => false,
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

/// Reads the client's credentials from the header and the body.
fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    let basic = authorization.and_then(basic_credentials).transpose()?;
    let presented = match basic {
        Some(creds) => {
            if params.contains("client_secret") {
                return Err(OAuthError::InvalidRequest(
                    "the client authenticated with both HTTP Basic and client_secret".into(),
                ));
            }
            if params.get("client_id").is_some_and(|id| id != creds.id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id does not match the Basic credentials".into(),
                ));
            }
            PresentedClient {
                id: creds.id,
                secret: Some(creds.secret),
                basic: true,
            }
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(OAuthError::InvalidClient { basic: false });
            };
            PresentedClient {
                id: id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
                basic: false,
            }
        }
    };
    check_identifier("client_id", &presented.id)?;
    Ok(presented)
}

#[cfg(test)]
mod tests;
