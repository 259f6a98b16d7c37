//! Validating the access tokens this server issued: JWTs by signature against the configured
//! keys only, opaque tokens by store lookup, both against the revocation denylist. Verified
//! and opaque tokens are cached (keyed by a keyed hash of the token, never outliving
//! themselves) so a token seen again costs no signature check and no lookup.

use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, Validation};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::config::{OAuthConfig, TokenFormat, TokenProfile};
use crate::crypto;
use crate::records::{store_key, OpaqueAccessToken, Subject};
use crate::store::{Store, StoreError};

mod caches;
use caches::{NotRevokedCache, TokenCache};

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub jti: String,
    pub client_id: String,
    pub scope: Vec<String>,
    pub subject: Option<Subject>,
    pub iat: u64,
    pub exp: u64,
    pub nbf: Option<u64>,
    /// `iss` / `aud` (JWTs only).
    pub iss: Option<String>,
    pub aud: Option<String>,
    pub format: TokenFormat,
    /// The route audience a `resource` token request bound the token to (RFC 8707): only
    /// routes with that `audience` accept it. `None`: an ordinary token of its client.
    pub resource: Option<String>,
}

impl VerifiedToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

/// A token that passed, and whether its signature check was saved by the cache.
#[derive(Debug, Clone)]
pub struct Validated {
    pub token: Arc<VerifiedToken>,
    pub cached: bool,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Invalid, expired, revoked, or not ours: RFC 6750 `invalid_token`. The reason is for
    /// logs and `error_description`, and reveals nothing secret.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The store could not be asked (an opaque token, or the denylist when failing closed).
    #[error("the token store is unavailable")]
    StoreUnavailable,
}

/// The claims an access token must carry, typed: a string `exp` does not parse.
#[derive(Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    exp: u64,
    iat: u64,
    #[serde(default)]
    nbf: Option<u64>,
    jti: String,
    client_id: String,
    scope: ScopeClaim,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
    /// Set in the JWTs the gateway sends upstream in place of a client's token (phantom
    /// tokens, see `provider::upstream_token`): they are for the upstream, never accepted
    /// back here as an access token.
    #[serde(default)]
    tollgate_upstream: bool,
}

/// `scope`: an array (light-oauth2) or one space-separated string (RFC 9068 2.2.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    List(Vec<String>),
    Text(String),
}

impl ScopeClaim {
    fn into_scopes(self) -> Vec<String> {
        match self {
            ScopeClaim::List(scopes) => scopes,
            ScopeClaim::Text(text) => text.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// RFC 9068 section 4: `at+jwt`, or its full media type.
fn is_at_jwt(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// Validates access tokens against the configuration and the store, with its own caches: the
/// verified JWTs and the recent "not revoked" answers.
pub(crate) struct Validator {
    token_cache: Arc<TokenCache>,
    not_revoked: Arc<NotRevokedCache>,
    /// What a verification depends on, to tell whether a new configuration may keep the
    /// caches.
    inputs: VerificationInputs,
    clock: SharedClock,
}

/// Everything of a configuration that decides whether a token verifies and what it says:
/// the keys (by kid, algorithm and public key), the leeway, the resources and each client's
/// issuer, audience, format and profile. Two configurations with equal inputs verify every
/// token alike, so a reload between them keeps what was verified.
#[derive(Debug, PartialEq)]
struct VerificationInputs {
    keys: Vec<(
        String,
        crate::keys::SigningAlgorithm,
        serde_json::Map<String, serde_json::Value>,
    )>,
    leeway: std::time::Duration,
    resources: Vec<String>,
    clients: Vec<(String, String, String, TokenFormat, TokenProfile)>,
    token_cache_entries: usize,
    denylist_cache: std::time::Duration,
}

impl VerificationInputs {
    fn of(config: &OAuthConfig) -> Self {
        let mut clients: Vec<_> = config
            .clients
            .values()
            .map(|c| {
                (
                    c.client_id.clone(),
                    c.issuer.clone(),
                    c.audience.clone(),
                    c.token_format,
                    c.token_profile,
                )
            })
            .collect();
        clients.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            keys: config
                .keys
                .iter()
                .map(|k| (k.kid.clone(), k.algorithm, k.public_jwk.clone()))
                .collect(),
            leeway: config.leeway,
            resources: config.resources.clone(),
            clients,
            token_cache_entries: config.token_cache_entries,
            denylist_cache: config.denylist_cache,
        }
    }
}

impl Validator {
    pub(crate) fn new(config: &OAuthConfig, clock: SharedClock) -> Self {
        Self {
            token_cache: Arc::new(TokenCache::new(
                config.token_cache_entries,
                Arc::clone(&clock),
            )),
            not_revoked: Arc::new(NotRevokedCache::new(
                config.denylist_cache,
                config.token_cache_entries,
                Arc::clone(&clock),
            )),
            inputs: VerificationInputs::of(config),
            clock,
        }
    }

    /// The validator for a new configuration: the same caches when nothing a verification
    /// depends on changed (so a reload, or a loop of them, sends no token back to signature
    /// checks), fresh ones otherwise (a removed key's tokens stop validating at once).
    pub(crate) fn reconfigured(&self, config: &OAuthConfig) -> Self {
        let inputs = VerificationInputs::of(config);
        if inputs == self.inputs {
            Self {
                token_cache: Arc::clone(&self.token_cache),
                not_revoked: Arc::clone(&self.not_revoked),
                inputs,
                clock: Arc::clone(&self.clock),
            }
        } else {
            Self::new(config, Arc::clone(&self.clock))
        }
    }

    /// A JWT was revoked through this instance: its verification is not reused.
    pub(crate) fn forget_verified(&self, token: &str) {
        self.token_cache.remove(token);
    }

    /// A token was revoked: its "not revoked" answer is not reused. Its verified-token entry
    /// (keyed by the token, which a revocation event does not carry) is then dropped on its
    /// next use, when the denylist says it was revoked — no scan of the cache per revocation.
    pub(crate) fn forget_revoked(&self, jti: &str) {
        if !jti.is_empty() {
            self.not_revoked.remove(jti);
        }
    }

    /// Revocations made elsewhere may have been missed: every "not revoked" answer is asked
    /// again.
    pub(crate) fn forget_not_revoked_answers(&self) {
        self.not_revoked.clear();
    }

    /// Validates an access token at time `now`. `fail_open` decides what a store outage means for a JWT's
    /// denylist check: accept (true) or [`Rejection::StoreUnavailable`] (false). `fresh`
    /// asks the store about revocation even when a recent answer is cached (introspection
    /// does: it is the authoritative answer).
    pub(crate) async fn validate(
        &self,
        config: &OAuthConfig,
        store: &dyn Store,
        token: &str,
        now: u64,
        fail_open: bool,
        fresh: bool,
    ) -> Result<Validated, Rejection> {
        let (verified, cached) = if token.split('.').count() == 3 {
            self.verify_jwt(config, token, now)?
        } else {
            self.lookup_opaque(store, token, now).await?
        };
        let validated = Validated {
            token: verified,
            cached,
        };
        if !fresh && self.not_revoked.contains(&validated.token.jti) {
            return Ok(validated);
        }
        match store
            .get(&store_key::denied_jti(&validated.token.jti))
            .await
        {
            Ok(None) => {
                self.not_revoked
                    .insert(&validated.token.jti, validated.token.exp, now);
                Ok(validated)
            }
            Ok(Some(_)) => {
                self.token_cache.remove(token);
                Err(Rejection::Invalid("the token was revoked"))
            }
            Err(e) if fail_open && validated.token.format == TokenFormat::Jwt => {
                tracing::warn!(error = %e, "denylist unavailable; accepting a validly signed token (fail-open)");
                Ok(validated)
            }
            Err(e) => {
                tracing::warn!(error = %e, "denylist unavailable; refusing the token");
                Err(Rejection::StoreUnavailable)
            }
        }
    }

    /// An opaque token's record, from the verified-token cache when it was looked up
    /// before. A cached record is as safe as a cached JWT: revoking an opaque token also
    /// denylists its `jti`, which [`Self::validate`] checks either way.
    async fn lookup_opaque(
        &self,
        store: &dyn Store,
        token: &str,
        now: u64,
    ) -> Result<(Arc<VerifiedToken>, bool), Rejection> {
        let key = self.token_cache.key(token);
        if let Some(hit) = self.token_cache.get(key, now) {
            return Ok((hit, true));
        }
        let digest = crypto::digest_hex(token);
        let verified = fetch_opaque(store, &digest, now).await?;
        self.token_cache
            .insert(key, Arc::clone(&verified), verified.exp);
        Ok((verified, false))
    }

    /// Signature, algorithm, `kid`, time and claims of a JWT access token.
    pub(crate) fn verify_jwt(
        &self,
        config: &OAuthConfig,
        token: &str,
        now: u64,
    ) -> Result<(Arc<VerifiedToken>, bool), Rejection> {
        let leeway = config.leeway.as_secs();
        let key = self.token_cache.key(token);
        if let Some(hit) = self.token_cache.get(key, now.saturating_sub(leeway)) {
            if hit.nbf.is_none_or(|nbf| nbf <= now + leeway) {
                return Ok((hit, true));
            }
        }
        let verified = Arc::new(verify_jwt_uncached(config, token, now)?);
        self.token_cache.insert(
            key,
            Arc::clone(&verified),
            verified.exp.saturating_add(leeway),
        );
        Ok((verified, false))
    }
}

/// The full check of a JWT access token, with no cache: `kid` among the configured keys, the
/// key's pinned algorithm, signature, `exp`/`nbf` with leeway, typed claims, and the
/// `iss`/`aud` configured for the token's client.
pub(crate) fn verify_jwt_uncached(
    config: &OAuthConfig,
    token: &str,
    now: u64,
) -> Result<VerifiedToken, Rejection> {
    let leeway = config.leeway.as_secs();
    let header = decode_header(token).map_err(|_| Rejection::Invalid("the token is malformed"))?;
    // An id_token (typ JWT) is not an access token.
    let typed_at_jwt = match header.typ.as_deref() {
        None => false,
        Some(typ) if is_at_jwt(typ) => true,
        Some(_) => return Err(Rejection::Invalid("the token is not an access token")),
    };
    // The kid is only ever looked up among the configured keys.
    let kid = header
        .kid
        .as_deref()
        .ok_or(Rejection::Invalid("the token names no key"))?;
    let key = config
        .keys
        .get(kid)
        .ok_or(Rejection::Invalid("the token's key is unknown"))?;
    if header.alg != key.algorithm.jsonwebtoken() {
        return Err(Rejection::Invalid(
            "the token's algorithm does not match its key",
        ));
    }
    let mut validation = Validation::new(key.algorithm.jsonwebtoken());
    // Time is checked below against the provider's clock (exp stays required and typed).
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false; // checked below against the issuing client
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = decode::<AccessClaims>(token, &key.decoding_key, &validation)
        .map_err(|_| Rejection::Invalid("the token is invalid"))?
        .claims;
    if claims.exp.saturating_add(leeway) <= now {
        return Err(Rejection::Invalid("the token expired"));
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(Rejection::Invalid("the token is not valid yet"));
    }
    if claims.tollgate_upstream {
        return Err(Rejection::Invalid(
            "an upstream token is not an access token of this gateway",
        ));
    }
    let client = config
        .clients
        .get(&claims.client_id)
        .ok_or(Rejection::Invalid("the token's client is unknown"))?;
    // `aud` is the client's audience, or a route audience the token was requested for.
    let resource = (claims.aud != client.audience).then(|| claims.aud.clone());
    if client.token_format != TokenFormat::Jwt
        || claims.iss != client.issuer
        || resource
            .as_ref()
            .is_some_and(|r| !config.resources.contains(r))
    {
        return Err(Rejection::Invalid(
            "the token's issuer or audience is wrong",
        ));
    }
    let user_id = match client.token_profile {
        // RFC 8725 3.11 explicit typing: an RFC 9068 client's tokens say what they are.
        TokenProfile::Rfc9068 if !typed_at_jwt => {
            return Err(Rejection::Invalid("the token is not typed `at+jwt`"));
        }
        // `sub` is the client itself when no user is involved (the configuration refuses
        // a user id equal to a client id, so this cannot hide a user).
        TokenProfile::Rfc9068 => claims
            .sub
            .filter(|sub| *sub != claims.client_id)
            .or(claims.user_id),
        TokenProfile::LightOAuth2 => claims.user_id,
    };
    Ok(VerifiedToken {
        jti: claims.jti,
        client_id: claims.client_id,
        scope: claims.scope.into_scopes(),
        subject: user_id.map(|user_id| Subject {
            user_id,
            user_type: claims.user_type,
            username: None,
        }),
        iat: claims.iat,
        exp: claims.exp,
        nbf: claims.nbf,
        iss: Some(claims.iss),
        aud: Some(claims.aud),
        format: TokenFormat::Jwt,
        resource,
    })
}

/// An opaque token's record from the store, by the hex digest of the token.
async fn fetch_opaque(
    store: &dyn Store,
    digest: &str,
    now: u64,
) -> Result<Arc<VerifiedToken>, Rejection> {
    let raw = store
        .get(&store_key::opaque_access(digest))
        .await
        .map_err(|e: StoreError| {
            tracing::warn!(error = %e, "cannot look up an opaque token");
            Rejection::StoreUnavailable
        })?;
    let record: OpaqueAccessToken =
        raw.and_then(|r| serde_json::from_slice(&r).ok())
            .ok_or(Rejection::Invalid(
                "the token is invalid, expired or revoked",
            ))?;
    if record.exp <= now {
        return Err(Rejection::Invalid("the token expired"));
    }
    Ok(Arc::new(VerifiedToken {
        jti: record.jti,
        client_id: record.client_id,
        scope: record.scope,
        subject: record.subject,
        iat: record.iat,
        exp: record.exp,
        nbf: None,
        iss: None,
        aud: record.resource.clone(),
        format: TokenFormat::Opaque,
        resource: record.resource,
    }))
}

#[cfg(test)]
mod tests;
