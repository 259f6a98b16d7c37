//! The validator's two caches: verified tokens by a keyed hash of the token, and recent
//! "not revoked" answers by `jti`. Both are bounded and expire entry by entry.

use std::hash::Hasher;
use std::sync::Arc;

use siphasher::sip128::{Hasher128, SipHasher13};

use super::VerifiedToken;
use crate::cache::ExpiringCache;
use crate::clock::SharedClock;
use crate::crypto;

/// Recent "not revoked" answers from the store, by `jti`, each kept for the configured
/// `denylist_cache` at most (and never past the token's expiry). Revocations made through
/// this instance remove their entry at once; those made elsewhere are seen within that time.
pub(crate) struct NotRevokedCache {
    entries: ExpiringCache<String, ()>,
    ttl: std::time::Duration,
}

impl NotRevokedCache {
    pub(crate) fn new(ttl: std::time::Duration, max_entries: usize, clock: SharedClock) -> Self {
        Self {
            entries: ExpiringCache::new(max_entries, clock),
            ttl,
        }
    }

    pub(super) fn contains(&self, jti: &str) -> bool {
        !self.ttl.is_zero() && self.entries.contains(jti)
    }

    pub(super) fn insert(&self, jti: &str, exp: u64, now_secs: u64) {
        let left = std::time::Duration::from_secs(exp.saturating_sub(now_secs));
        self.entries
            .insert_for(jti.to_string(), (), self.ttl.min(left));
    }

    pub(crate) fn remove(&self, jti: &str) {
        self.entries.remove(jti);
    }

    /// Forgets every answer (revocations may have been missed).
    pub(super) fn clear(&self) {
        self.entries.clear();
    }
}

/// Verified tokens (JWTs and opaque records), by [`TokenCache::key`], each kept until it
/// expires (plus the leeway a JWT is accepted within).
pub(crate) struct TokenCache {
    entries: ExpiringCache<u128, Arc<VerifiedToken>>,
    /// The SipHash key, drawn from the system's CSPRNG when the cache is made.
    hash_key: [u64; 2],
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize, clock: SharedClock) -> Self {
        Self {
            entries: ExpiringCache::new(max_entries, clock),
            hash_key: crypto::random_u64s(),
        }
    }

    /// A token's entry: the token's SipHash-1-3-128 under this cache's secret key. Tokens
    /// are secrets, so the cache keeps neither them nor anything a leak of it could turn back
    /// into them; a keyed hash does that like a SHA-256 did, at a thirteenth of its cost on a
    /// JWT (the SHA-256 was a fifth of a protected request), and no one without the key can
    /// make a token meet another's entry. Two distinct tokens share one with probability
    /// 2^-128. One 128-bit pass costs half of two 64-bit ones.
    pub(super) fn key(&self, token: &str) -> u128 {
        let mut hasher = SipHasher13::new_with_keys(self.hash_key[0], self.hash_key[1]);
        hasher.write(token.as_bytes());
        hasher.finish128().as_u128()
    }

    /// The entry, while its token has not expired at `now` (seconds).
    pub(super) fn get(&self, key: u128, now: u64) -> Option<Arc<VerifiedToken>> {
        self.entries.get(&key).filter(|t| t.exp > now)
    }

    /// Keeps a verified token until `until` (seconds; its expiry, plus any leeway).
    pub(super) fn insert(&self, key: u128, verified: Arc<VerifiedToken>, until: u64) {
        self.entries.insert_until(key, verified, until);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.entries.remove(&self.key(token));
    }
}
