//! Client secrets and user passwords: argon2id hashes, and a cache of verified pairs so that a
//! strong hash does not cap throughput.
//!
//! The cache never holds a secret. It holds an HMAC-SHA256 tag of (identity, configured hash,
//! presented secret) under a key drawn at start and never stored, so nothing on disk or in the
//! store can be replayed, and the tags alone cannot be brute-forced offline (a dump of the whole
//! process memory holds the key too, and with it would allow guesses at HMAC speed). Only
//! successful verifications are cached: every failure pays the full argon2 cost, which is what
//! throttles guessing.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::cache::ExpiringCache;
use crate::clock::SharedClock;

/// A validated argon2 PHC hash string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    phc: Arc<str>,
    /// SHA-256 of the PHC string, computed once: what a remembered verification is bound to.
    digest: [u8; 32],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// Why a secret could not be hashed or a hash not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("not a PHC hash string: {0}")]
    NotPhc(String),
    #[error("`{0}` hashes are not supported; use argon2id (`tollgate hash-secret`)")]
    UnsupportedAlgorithm(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
    #[error("no system randomness")]
    NoRandomness,
}

impl PasswordHash {
    /// Accepts argon2id, argon2i and argon2d PHC strings.
    pub fn parse(phc: &str) -> Result<Self, SecretError> {
        let parsed =
            argon2::PasswordHash::new(phc).map_err(|e| SecretError::NotPhc(e.to_string()))?;
        match parsed.algorithm.as_str() {
            "argon2id" | "argon2i" | "argon2d" => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, phc.as_bytes()).as_ref(),
                );
                Ok(Self {
                    phc: phc.into(),
                    digest,
                })
            }
            other => Err(SecretError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    /// A short digest of the hash, to tell whether a configured secret changed without
    /// showing the hash.
    pub fn fingerprint(&self) -> String {
        hex::encode(self.digest)[..16].to_string()
    }

    /// Verifies `secret` against the hash (slow by design: run it off the event loop).
    pub fn verify_blocking(&self, secret: &[u8]) -> bool {
        argon2::PasswordHash::new(&self.phc)
            .is_ok_and(|parsed| Argon2::default().verify_password(secret, &parsed).is_ok())
    }
}

/// Hashes a secret with argon2id and a random salt, for the config (`tollgate hash-secret`).
pub fn hash_secret(secret: &[u8]) -> Result<String, SecretError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hashing(e.to_string()))
}

/// Verifies secrets against hashes, remembering successes for a while.
pub struct SecretVerifier {
    key: hmac::Key,
    /// Tags of (identity, hash, secret) verified recently.
    verified: Arc<ExpiringCache<[u8; 32], ()>>,
    ttl: Duration,
    /// Verified against when the identity is unknown, so unknown and known identities cost
    /// the same time.
    dummy: PasswordHash,
    /// Bounds the argon2 verifications running at once. Each one holds 19 MiB and a core for
    /// tens of milliseconds, so unbounded they let a burst of logins (or of guesses) exhaust
    /// memory; bounded, the burst queues.
    hashing: Arc<tokio::sync::Semaphore>,
    /// Argon2 verifications run so far (real and dummy), for metrics.
    pub verifications: Arc<std::sync::atomic::AtomicU64>,
}

impl SecretVerifier {
    /// `ttl`: how long a verified pair is remembered, by `clock`; `max_entries` bounds memory.
    pub fn new(ttl: Duration, max_entries: usize, clock: SharedClock) -> Result<Self, SecretError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| SecretError::NoRandomness)?;
        let mut dummy_secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut dummy_secret)
            .map_err(|_| SecretError::NoRandomness)?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            verified: Arc::new(ExpiringCache::new(max_entries, clock)),
            ttl,
            dummy: PasswordHash::parse(&hash_secret(&dummy_secret)?)?,
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            verifications: Arc::default(),
        })
    }

    /// The same verifier for a new configuration (a reload), remembering what it verified:
    /// a remembered secret is bound to the hash it was verified against, so one whose hash
    /// is unchanged still passes without argon2 (a reload, or a loop of them, forces no
    /// argon2 run) and one whose hash was rotated is checked against the new hash.
    pub fn reconfigured(&self) -> Self {
        Self {
            key: self.key.clone(),
            verified: Arc::clone(&self.verified),
            ttl: self.ttl,
            dummy: self.dummy.clone(),
            hashing: Arc::clone(&self.hashing),
            verifications: Arc::clone(&self.verifications),
        }
    }

    /// The tag of (hash, identity, secret): the hash by its digest (fixed length), the identity
    /// with its length before it, then the secret, so no two triples give the same input.
    fn tag(&self, identity: &str, hash: &PasswordHash, secret: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&hash.digest);
        ctx.update(&(identity.len() as u64).to_be_bytes());
        ctx.update(identity.as_bytes());
        ctx.update(secret);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(ctx.sign().as_ref());
        tag
    }

    /// One argon2 verification, off the event loop, counted.
    async fn argon2(&self, hash: &PasswordHash, secret: &[u8]) -> bool {
        let (hash, secret) = (hash.clone(), secret.to_vec());
        let verifications = Arc::clone(&self.verifications);
        tokio::task::spawn_blocking(move || {
            verifications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            hash.verify_blocking(&secret)
        })
        .await
        .unwrap_or(false)
    }

    /// Whether `secret` was verified against `hash` for `identity` recently (no argon2 work).
    pub fn remembers(&self, identity: &str, hash: &PasswordHash, secret: &[u8]) -> bool {
        self.verified.contains(&self.tag(identity, hash, secret))
    }

    /// Whether `secret` matches `hash` (the hash registered for `identity`). With `hash`
    /// `None` (unknown identity) a dummy hash is verified and `false` returned.
    pub async fn verify(&self, identity: &str, hash: Option<&PasswordHash>, secret: &[u8]) -> bool {
        if hash.is_some_and(|h| self.remembers(identity, h, secret)) {
            return true;
        }
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let Some(hash) = hash else {
            self.argon2(&self.dummy, secret).await;
            return false;
        };
        // While this request queued, another with the same secret may have verified it.
        if self.remembers(identity, hash, secret) {
            return true;
        }
        let tag = self.tag(identity, hash, secret);
        let ok = self.argon2(hash, secret).await;
        if ok {
            self.verified.insert_for(tag, (), self.ttl);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn clock() -> SharedClock {
        Arc::new(ManualClock::new(1_000))
    }

    /// A remembered secret is remembered for its time, by the clock, and then verified again.
    #[tokio::test]
    async fn a_remembered_secret_is_forgotten_when_its_time_is_up() {
        let hash = PasswordHash::parse(&hash_secret(b"s3cret").expect("hash")).expect("parse");
        let clock = Arc::new(ManualClock::new(1_000));
        let v = SecretVerifier::new(Duration::from_secs(300), 10, clock.clone()).expect("verifier");
        assert!(v.verify("client", Some(&hash), b"s3cret").await);
        clock.advance(299);
        assert!(v.remembers("client", &hash, b"s3cret"));
        clock.advance(1);
        assert!(!v.remembers("client", &hash, b"s3cret"));
        let before = v.verifications.load(std::sync::atomic::Ordering::Relaxed);
        assert!(v.verify("client", Some(&hash), b"s3cret").await);
        assert_eq!(
            v.verifications.load(std::sync::atomic::Ordering::Relaxed),
            before + 1,
            "verified with argon2 again"
        );
    }

    #[tokio::test]
    async fn verifies_and_caches_only_successes() {
        let hash = PasswordHash::parse(&hash_secret(b"s3cret").expect("hash")).expect("parse");
        let v = SecretVerifier::new(Duration::from_secs(60), 10, clock()).expect("verifier");
        assert!(v.verify("client", Some(&hash), b"s3cret").await);
        assert!(v.verify("client", Some(&hash), b"s3cret").await, "cached");
        assert!(!v.verify("client", Some(&hash), b"wrong").await);
        assert!(
            !v.verify("other", None, b"s3cret").await,
            "unknown identity"
        );
        assert_eq!(v.verified.held(), 1);
    }

    #[tokio::test]
    async fn a_remembered_secret_is_bound_to_its_identity_and_hash() {
        let hash = PasswordHash::parse(&hash_secret(b"s3cret").expect("hash")).expect("parse");
        let rotated = PasswordHash::parse(&hash_secret(b"s3cret").expect("hash")).expect("parse");
        let v = SecretVerifier::new(Duration::from_secs(60), 10, clock()).expect("verifier");
        assert!(v.verify("client", Some(&hash), b"s3cret").await);
        assert!(v.remembers("client", &hash, b"s3cret"));
        assert!(!v.remembers("client", &rotated, b"s3cret"), "another hash");
        assert!(
            !v.remembers("clien", &hash, b"ts3cret"),
            "the same bytes split elsewhere"
        );
        assert!(!v.remembers("client", &hash, b"s3cre"));
    }

    #[test]
    fn rejects_non_argon2_hashes() {
        assert!(PasswordHash::parse("plaintext").is_err());
        assert!(PasswordHash::parse("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
        assert!(
            format!(
                "{:?}",
                PasswordHash::parse(&hash_secret(b"x").expect("hash")).expect("parse")
            ) == "PasswordHash(..)"
        );
    }
}
