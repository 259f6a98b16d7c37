//! The OAuth 2.0 authorization server Tollgate embeds: [`OAuthProvider`] owns the
//! configuration, the store, the secret verifier and the token validator, and its behaviour is
//! split by concern into the files of this module:
//!
//! | file | behaviour |
//! | --- | --- |
//! | `token_endpoint.rs` | the token endpoint: parse, authenticate the client, dispatch to a grant, answer |
//! | `grants/*.rs` | one grant per file, read top to bottom |
//! | `client_auth.rs` | client and user authentication |
//! | `brute_force.rs` | the brute-force counters and limits every secret check counts against |
//! | `issuance.rs` | scope resolution, access tokens, refresh-token families |
//! | `revocation.rs` | denying access tokens, revoking families (atomic with rotation) |
//! | `lifecycle.rs` | the revocation (RFC 7009) and introspection (RFC 7662) endpoints |
//! | `authorize.rs` | the authorization endpoint: its checks, the sign-in and consent steps |
//! | `session.rs` | sign-in sessions, remembered consent, RP-initiated logout |
//! | `oidc.rs` | id_tokens, discovery, JWKS, userinfo |

mod authorize;
mod brute_force;
mod client_auth;
mod grants;
mod issuance;
mod lifecycle;
mod oidc;
mod revocation;
mod session;
mod token_endpoint;
mod upstream_token;

use std::sync::Arc;
use std::time::Duration;

pub use authorize::AuthorizeRequest;
pub use session::{LogoutRequest, SESSION_COOKIE};
pub use token_endpoint::{TokenOutcome, TokenRequest};

use crate::clock::{Clock, SystemClock};
use crate::config::OAuthConfig;
use crate::crypto;
use crate::secrets::SecretVerifier;
use crate::store::Store;
use crate::validate::{Rejection, Validated, VerifiedToken};

/// The OAuth 2.0 authorization server Tollgate embeds.
pub struct OAuthProvider {
    config: OAuthConfig,
    store: Arc<dyn Store>,
    verifier: SecretVerifier,
    validator: crate::validate::Validator,
    upstream_tokens: upstream_token::UpstreamTokens,
    /// Attempts slowed down because their account had many failures.
    throttled: Arc<std::sync::atomic::AtomicU64>,
    /// One attempt at a time per (account, address) in this process.
    attempts: Arc<brute_force::AttemptLocks>,
    /// Recent "within budget" answers for remembered secrets.
    budget_answers: Arc<brute_force::BudgetAnswers>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OAuthProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProvider")
            .field("clients", &self.config.clients.len())
            .finish_non_exhaustive()
    }
}

/// A family's name for logs: a digest, since the family id begins every refresh token.
fn log_id(family_id: &str) -> String {
    crypto::digest_hex(family_id)[..12].to_string()
}

impl OAuthProvider {
    /// Verified secrets are remembered for five minutes, at most 100,000 of them.
    pub fn new(
        config: OAuthConfig,
        store: Arc<dyn Store>,
    ) -> Result<Self, crate::secrets::SecretError> {
        Self::with_clock(config, store, Arc::new(SystemClock))
    }

    /// As [`Self::new`], reading the time from `clock` (tests move it instead of sleeping).
    pub fn with_clock(
        config: OAuthConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::secrets::SecretError> {
        let verifier = SecretVerifier::new(Duration::from_secs(300), 100_000, Arc::clone(&clock))?;
        let budget_answers = Arc::new(brute_force::BudgetAnswers::new(
            config.token_cache_entries,
            Arc::clone(&clock),
        ));
        Ok(Self {
            validator: crate::validate::Validator::new(&config, Arc::clone(&clock)),
            upstream_tokens: upstream_token::UpstreamTokens::new(
                config.token_cache_entries,
                Arc::clone(&clock),
            ),
            config,
            store,
            verifier,
            throttled: Arc::default(),
            attempts: Arc::new(brute_force::AttemptLocks::new()),
            budget_answers,
            clock,
        })
    }

    /// A provider for a new configuration (a reload) that shares this one's store, clock and
    /// metric counters. It keeps every cache whose inputs did not change: secrets verified
    /// against a hash that is still configured (a rotated secret is checked against its new
    /// hash), verified tokens while the keys and clients that verified them stay (a removed
    /// key's tokens stop validating at once).
    pub fn reconfigured(&self, config: OAuthConfig) -> Self {
        Self {
            validator: self.validator.reconfigured(&config),
            upstream_tokens: upstream_token::UpstreamTokens::new(
                config.token_cache_entries,
                Arc::clone(&self.clock),
            ),
            config,
            store: Arc::clone(&self.store),
            verifier: self.verifier.reconfigured(),
            throttled: Arc::clone(&self.throttled),
            attempts: Arc::clone(&self.attempts),
            budget_answers: Arc::clone(&self.budget_answers),
            clock: Arc::clone(&self.clock),
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Whether `client_id` lets pages of `origin` (as browsers send it) call the token,
    /// revoke and userinfo endpoints.
    pub fn client_allows_origin(&self, client_id: &str, origin: &str) -> bool {
        self.config
            .clients
            .get(client_id)
            .is_some_and(|c| c.allowed_origins.iter().any(|o| o == origin))
    }

    /// The current time, in seconds since the Unix epoch.
    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Validates an access token. `fail_open` decides what a store outage means for a JWT's
    /// denylist check: accept (true) or [`Rejection::StoreUnavailable`] (false).
    pub async fn validate_access_token(
        &self,
        token: &str,
        fail_open: bool,
    ) -> Result<Validated, Rejection> {
        self.validate(token, fail_open, false).await
    }

    /// As [`Self::validate_access_token`]; `fresh` asks the store about revocation even
    /// when a recent answer is cached (introspection does: it is the authoritative answer).
    pub(crate) async fn validate(
        &self,
        token: &str,
        fail_open: bool,
        fresh: bool,
    ) -> Result<Validated, Rejection> {
        self.validator
            .validate(
                &self.config,
                self.store.as_ref(),
                token,
                self.now(),
                fail_open,
                fresh,
            )
            .await
    }

    /// Signature, algorithm, `kid`, time and claims of a JWT access token; the flag says
    /// whether the verified-token cache answered.
    pub(crate) fn verify_jwt(&self, token: &str) -> Result<(Arc<VerifiedToken>, bool), Rejection> {
        self.validator.verify_jwt(&self.config, token, self.now())
    }

    /// The full check of a JWT access token with no cache (for benches).
    pub fn verify_jwt_uncached(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        crate::validate::verify_jwt_uncached(&self.config, token, self.now())
    }

    /// The count of authentication attempts slowed down by the per-account failure count.
    pub fn throttled_attempts(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.throttled)
    }

    /// The count of argon2 verifications run (known and unknown identities alike).
    pub fn hash_verifications(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.verifier.verifications)
    }
}

#[cfg(test)]
mod tests;
