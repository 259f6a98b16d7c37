//! The authorization server: configuration, store and secret verification, plus what every
//! endpoint shares (client authentication, brute-force counters, scopes, token issuance).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::clock::now;

use crate::config::{Client, Grant, OAuthConfig, TokenFormat, TokenProfile, User};
use crate::error::OAuthError;
use crate::form::{basic_credentials, Params};
use crate::random;
use crate::records::{keys, IssuedTokens, OpaqueAccessToken, RefreshFamily, Subject};
use crate::secrets::SecretVerifier;
use crate::store::Store;
use crate::validate::{Rejection, Validated, VerifiedToken};

/// What a client presented to authenticate.
pub(crate) struct PresentedClient {
    pub id: String,
    pub secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// A grant's result before it becomes a response.
pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scope: Vec<String>,
    pub record: IssuedTokens,
    /// The user, for user grants (an id_token needs one).
    pub subject: Option<Subject>,
    pub auth_time: Option<u64>,
    /// From the authorization request or the password grant's `nonce`; never on refresh.
    pub nonce: Option<String>,
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

/// The brute-force counters an authentication attempt counts against (`kind` is `client` or
/// `user`). The policy: an address that fails `max_failures` times for one account, or for
/// any accounts, is refused (429) for the window; the account itself is never locked, since
/// anyone could then lock anyone out from an address of their own. Past
/// `account_max_failures` failures from all addresses together, every attempt on the account
/// is slowed down instead (a growing, bounded delay), so a correct credential from an address
/// under its own budget still succeeds.
pub(crate) struct FailureCounters {
    /// Per (account, address): refused past `max_failures`.
    pair: String,
    /// Per address, whatever the account: refused past `max_failures`.
    address: Option<String>,
    /// Per account, every address: slowed down past `account_max_failures`.
    account: String,
}

impl FailureCounters {
    fn new(kind: &str, id: &str, client_ip: Option<IpAddr>) -> Self {
        let ip = client_ip.map_or_else(|| "local".to_string(), |ip| ip.to_string());
        Self {
            pair: keys::failures_from(kind, id, &ip),
            address: client_ip.map(|_| keys::failures("ip", &ip)),
            account: keys::failures(kind, id),
        }
    }
}

/// The claims of a JWT access token in the client's profile.
fn access_claims(
    client: &Client,
    scope: &[String],
    subject: Option<&Subject>,
    jti: &str,
    iat: u64,
    exp: u64,
) -> serde_json::Value {
    let mut claims = match client.token_profile {
        // RFC 9068 2.2: `sub` is the user, or the client itself when no user is involved.
        TokenProfile::Rfc9068 => serde_json::json!({
            "iss": client.issuer,
            "exp": exp,
            "aud": client.audience,
            "sub": subject.map_or(client.client_id.as_str(), |s| s.user_id.as_str()),
            "client_id": client.client_id,
            "iat": iat,
            "jti": jti,
            "scope": scope.join(" "),
        }),
        TokenProfile::LightOAuth2 => {
            let mut claims = serde_json::json!({
                "iss": client.issuer,
                "aud": client.audience,
                "exp": exp,
                "jti": jti,
                "iat": iat,
                "nbf": iat,
                "version": "1.0",
                "client_id": client.client_id,
                "scope": scope,
            });
            if let (Some(s), Some(map)) = (subject, claims.as_object_mut()) {
                map.insert("user_id".into(), s.user_id.clone().into());
                map.insert("sub".into(), s.user_id.clone().into());
            }
            claims
        }
    };
    if let (Some(user_type), Some(map)) = (
        subject.and_then(|s| s.user_type.as_ref()),
        claims.as_object_mut(),
    ) {
        map.insert("user_type".into(), user_type.clone().into());
    }
    claims
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

/// The OAuth 2.0 authorization server Tollgate embeds.
pub struct OAuthProvider {
    pub(crate) config: OAuthConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) verifier: SecretVerifier,
    pub(crate) validator: crate::validate::Validator,
    /// Attempts slowed down because their account had many failures.
    pub(crate) throttled: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for OAuthProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthProvider")
            .field("clients", &self.config.clients.len())
            .finish_non_exhaustive()
    }
}

/// A family's name for logs: a digest, since the family id begins every refresh token.
pub(crate) fn log_id(family_id: &str) -> String {
    random::digest_hex(family_id)[..12].to_string()
}

impl OAuthProvider {
    /// Verified secrets are remembered for five minutes, at most 100,000 of them.
    pub fn new(
        config: OAuthConfig,
        store: Arc<dyn Store>,
    ) -> Result<Self, crate::secrets::SecretError> {
        let verifier = SecretVerifier::new(Duration::from_secs(300), 100_000)?;
        let validator = crate::validate::Validator::new(&config);
        Ok(Self {
            config,
            store,
            verifier,
            validator,
            throttled: Arc::default(),
        })
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
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
            .validate(&self.config, self.store.as_ref(), token, fail_open, fresh)
            .await
    }

    /// Signature, algorithm, `kid`, time and claims of a JWT access token; the flag says
    /// whether the verified-token cache answered.
    pub(crate) fn verify_jwt(&self, token: &str) -> Result<(Arc<VerifiedToken>, bool), Rejection> {
        self.validator.verify_jwt(&self.config, token)
    }

    /// The full check of a JWT access token with no cache (for benches).
    pub fn verify_jwt_uncached(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        crate::validate::verify_jwt_uncached(&self.config, token)
    }

    /// The count of authentication attempts slowed down by the per-account failure count.
    pub fn throttled_attempts(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.throttled)
    }

    /// The count of argon2 verifications run (known and unknown identities alike).
    pub fn hash_verifications(&self) -> Arc<std::sync::atomic::AtomicU64> {
        Arc::clone(&self.verifier.verifications)
    }

    async fn failures(&self, key: &str) -> Result<u64, OAuthError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0))
    }

    /// Fails with 429 when this address has used up its budget (for this account or in
    /// all), and waits first when the account has had many failures from everywhere (see
    /// [`FailureCounters`]).
    pub(crate) async fn check_failures(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        for key in std::iter::once(&who.pair).chain(&who.address) {
            if self.failures(key).await? >= self.config.max_failures {
                return Err(OAuthError::TooManyAttempts {
                    retry_after_secs: self.config.failure_window.as_secs(),
                });
            }
        }
        let delay = failure_delay(
            self.failures(&who.account).await?,
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

    /// Counts a failure against each of `who`'s counters.
    pub(crate) async fn record_failure(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        for key in [&who.pair, &who.account].into_iter().chain(&who.address) {
            self.store.incr(key, self.config.failure_window).await?;
        }
        Ok(())
    }

    /// Authenticates the client of a token request (RFC 6749 2.3): HTTP Basic, or
    /// `client_id`/`client_secret` in the body, never both; no secret only for a public
    /// client or one allowed the password grant without one.
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
        purpose: AuthPurpose,
        client_ip: Option<IpAddr>,
    ) -> Result<AuthenticatedClient<'_>, OAuthError> {
        let presented = presented_client(authorization, params)?;
        let client = self.config.clients.get(&presented.id);
        // A secret verified minutes ago is no guess: it passes without a store round trip.
        if let (Some(c), Some(secret)) = (client, &presented.secret) {
            if let Some(hash) = &c.secret_hash {
                if self
                    .verifier
                    .remembers(&presented.id, hash, secret.as_bytes())
                {
                    return Ok(AuthenticatedClient {
                        client: c,
                        secret: presented.secret,
                    });
                }
            }
        }
        let who = FailureCounters::new("client", &presented.id, client_ip);
        self.check_failures(&who).await?;
        let ok = match (&presented.secret, client) {
            (Some(secret), client) => {
                let hash = client.and_then(|c| c.secret_hash.as_ref());
                self.verifier
                    .verify(&presented.id, hash, secret.as_bytes())
                    .await
            }
            (None, Some(c)) => match purpose {
                AuthPurpose::Grant(grant) => {
                    (c.public && matches!(grant, Grant::AuthorizationCode | Grant::RefreshToken))
                        || (c.password_grant_without_secret && grant == Grant::Password)
                }
                AuthPurpose::Revocation => c.public,
                AuthPurpose::Introspection => false,
            },
            (None, None) => false,
        };
        match client {
            Some(client) if ok => Ok(AuthenticatedClient {
                client,
                secret: presented.secret,
            }),
            _ => {
                self.record_failure(&who).await?;
                tracing::info!(client_id = %presented.id, "client authentication failed");
                Err(OAuthError::InvalidClient {
                    basic: presented.basic,
                })
            }
        }
    }

    /// Authenticates a user by username and password, counting failures per username and
    /// address. Unknown users cost the same time as known ones and get the same error.
    pub(crate) async fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<&User>, OAuthError> {
        let user = self.config.users.get(username);
        if let Some(u) = user {
            if self
                .verifier
                .remembers(username, &u.password_hash, password.as_bytes())
            {
                return Ok(user);
            }
        }
        let who = FailureCounters::new("user", username, client_ip);
        self.check_failures(&who).await?;
        let ok = self
            .verifier
            .verify(
                username,
                user.map(|u| &u.password_hash),
                password.as_bytes(),
            )
            .await;
        if ok {
            Ok(user)
        } else {
            self.record_failure(&who).await?;
            Ok(None)
        }
    }

    /// The scope for a request: the requested scopes if the client may have all of them
    /// (and, with `ceiling`, all were granted before), else the defaults.
    pub(crate) fn resolve_scope(
        &self,
        client: &Client,
        requested: Option<&str>,
        ceiling: Option<&[String]>,
    ) -> Result<Vec<String>, OAuthError> {
        let allowed = ceiling.unwrap_or(&client.scopes);
        let Some(requested) = requested else {
            let scope = ceiling.map_or_else(|| client.default_scopes.clone(), <[String]>::to_vec);
            if scope.is_empty() {
                return Err(OAuthError::InvalidScope(
                    "no scope was requested and the client has no default".into(),
                ));
            }
            return Ok(scope);
        };
        let mut scope: Vec<String> = Vec::new();
        for s in requested.split(' ').filter(|s| !s.is_empty()) {
            if !allowed.iter().any(|a| a == s) {
                let why = if ceiling.is_some() {
                    "was not granted originally"
                } else {
                    "is not allowed for this client"
                };
                return Err(OAuthError::InvalidScope(format!("the scope `{s}` {why}")));
            }
            if !scope.iter().any(|x| x == s) {
                scope.push(s.to_string());
            }
        }
        if scope.is_empty() {
            return Err(OAuthError::InvalidScope(
                "the scope parameter names no scope".into(),
            ));
        }
        Ok(scope)
    }

    /// Issues an access token in the client's format (a signed JWT, or an opaque token kept in
    /// the store) and returns it with what revoking it later needs.
    pub(crate) async fn issue_access_token(
        &self,
        client: &Client,
        scope: &[String],
        subject: Option<&Subject>,
    ) -> Result<(String, IssuedTokens), OAuthError> {
        let iat = now();
        let exp = iat + client.access_token_ttl.as_secs();
        let jti = random::id();
        match client.token_format {
            TokenFormat::Jwt => {
                let claims = access_claims(client, scope, subject, &jti, iat, exp);
                let key = self.config.keys.active();
                let signed = match client.token_profile {
                    TokenProfile::Rfc9068 => key.sign_rfc9068(&claims),
                    TokenProfile::LightOAuth2 => key.sign_jwt(&claims),
                };
                let token = signed.map_err(|e| {
                    tracing::error!(error = %e, "signing an access token failed");
                    OAuthError::ServerError
                })?;
                Ok((
                    token,
                    IssuedTokens {
                        access_jti: jti,
                        access_exp: exp,
                        access_key: None,
                        family_id: None,
                    },
                ))
            }
            TokenFormat::Opaque => {
                let token = random::opaque_token();
                let key = keys::opaque_access(&random::digest_hex(&token));
                let record = OpaqueAccessToken {
                    jti: jti.clone(),
                    client_id: client.client_id.clone(),
                    scope: scope.to_vec(),
                    subject: subject.cloned(),
                    iat,
                    exp,
                };
                let value = serde_json::to_vec(&record).map_err(|_| OAuthError::ServerError)?;
                self.store
                    .put(&key, &value, client.access_token_ttl)
                    .await?;
                Ok((
                    token,
                    IssuedTokens {
                        access_jti: jti,
                        access_exp: exp,
                        access_key: Some(key),
                        family_id: None,
                    },
                ))
            }
        }
    }

    /// Starts a refresh-token family for a fresh grant; returns the refresh token. Fails with
    /// `invalid_grant` if the family was revoked before it was even written (a concurrent
    /// code replay).
    pub(crate) async fn start_family(
        &self,
        family_id: &str,
        client: &Client,
        scope: &[String],
        subject: Option<&Subject>,
        auth_time: Option<u64>,
        latest: &IssuedTokens,
    ) -> Result<String, OAuthError> {
        let token = random::refresh_token(family_id);
        let digest = random::digest_hex(&token);
        let ttl = self.config.refresh_token_ttl;
        let family = RefreshFamily {
            client_id: client.client_id.clone(),
            scope: scope.to_vec(),
            subject: subject.cloned(),
            auth_time,
            current: digest.clone(),
            expires_at: now() + ttl.as_secs(),
            latest: latest.clone(),
            earlier: Vec::new(),
            revoked: false,
        };
        let value = serde_json::to_vec(&family).map_err(|_| OAuthError::ServerError)?;
        if !self
            .store
            .put_if_absent(&keys::family(family_id), &value, ttl)
            .await?
        {
            return Err(OAuthError::InvalidGrant(
                "the authorization grant was revoked".into(),
            ));
        }
        Ok(token)
    }

    /// Revokes what a grant issued: the access token (denylisted until it expires, and
    /// deleted when opaque) and the whole refresh-token family.
    pub(crate) async fn revoke_issued(&self, issued: &IssuedTokens) -> Result<(), OAuthError> {
        self.deny_access_token(issued).await?;
        if let Some(family_id) = &issued.family_id {
            self.revoke_family(family_id).await?;
        }
        Ok(())
    }

    pub(crate) async fn deny_access_token(&self, issued: &IssuedTokens) -> Result<(), OAuthError> {
        self.validator.forget_not_revoked(&issued.access_jti);
        let remaining = issued.access_exp.saturating_sub(now());
        if remaining > 0 && !issued.access_jti.is_empty() {
            self.store
                .put(
                    &keys::denied_jti(&issued.access_jti),
                    b"1",
                    Duration::from_secs(remaining),
                )
                .await?;
        }
        if let Some(key) = &issued.access_key {
            self.store.delete(key).await?;
        }
        Ok(())
    }

    /// Marks a family revoked (writing a tombstone if it does not exist yet) and revokes its
    /// latest access token, atomically with respect to a rotation: the tombstone replaces
    /// exactly the record whose latest access token was just denied (compare-and-swap). A
    /// refresh that rotates in between makes the swap fail, and the next round denies the
    /// access token that refresh issued; a refresh that comes after finds the tombstone, and
    /// one whose own swap loses denies its token itself. So whichever wins, no access token of
    /// the family outlives the revocation.
    pub(crate) async fn revoke_family(&self, family_id: &str) -> Result<(), OAuthError> {
        // Each lost round means a refresh rotated the family; a family rotates only with its
        // one current token, so contention ends quickly.
        const ROUNDS: usize = 16;
        let key = keys::family(family_id);
        let ttl = self.config.refresh_token_ttl;
        for _ in 0..ROUNDS {
            let tombstone = || {
                serde_json::to_vec(&RefreshFamily::tombstone(now() + ttl.as_secs()))
                    .map_err(|_| OAuthError::ServerError)
            };
            let Some(raw) = self.store.get(&key).await? else {
                if self.store.put_if_absent(&key, &tombstone()?, ttl).await? {
                    return Ok(());
                }
                continue;
            };
            let Ok(mut family) = serde_json::from_slice::<RefreshFamily>(&raw) else {
                // Unreadable: nothing in it can be denied, but it must not be used again.
                if self
                    .store
                    .compare_and_swap(&key, &raw, &tombstone()?, ttl)
                    .await?
                {
                    return Ok(());
                }
                continue;
            };
            for issued in family.access_tokens() {
                self.deny_access_token(issued).await?;
            }
            if family.revoked {
                return Ok(());
            }
            family.revoked = true;
            let value = serde_json::to_vec(&family).map_err(|_| OAuthError::ServerError)?;
            if self.store.compare_and_swap(&key, &raw, &value, ttl).await? {
                tracing::info!(family = %log_id(family_id), "refresh token family revoked");
                return Ok(());
            }
        }
        tracing::warn!(family = %log_id(family_id), "refresh token family could not be revoked: it kept changing");
        Err(OAuthError::TemporarilyUnavailable)
    }
}

/// Reads the client's credentials from the header and the body.
fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    let basic = authorization.and_then(basic_credentials).transpose()?;
    match basic {
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
            Ok(PresentedClient {
                id: creds.id,
                secret: Some(creds.secret),
                basic: true,
            })
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(OAuthError::InvalidClient { basic: false });
            };
            Ok(PresentedClient {
                id: id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
                basic: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_slow_down_grows_and_is_bounded() {
        let max = Duration::from_secs(5);
        let ms = |count| failure_delay(count, 100, max).as_millis();
        assert_eq!([ms(0), ms(99)], [0, 0]);
        assert_eq!([ms(100), ms(101), ms(102), ms(105)], [100, 200, 400, 3200]);
        assert_eq!([ms(106), ms(1000), ms(u64::MAX)], [5000, 5000, 5000]);
    }
}
