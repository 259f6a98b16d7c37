//! Phantom tokens: the client holds an opaque (or any) access token, and the upstream of a
//! route with `auth.upstream_token: jwt` receives instead a short-lived JWT for that route's
//! audience, signed in-process by the active key — nothing readable reaches the client, and
//! the upstream checks a signature against the JWKS instead of calling introspection.

use std::sync::Arc;
use std::time::Duration;

use super::OAuthProvider;
use crate::cache::ExpiringCache;
use crate::clock::SharedClock;
use crate::crypto;
use crate::error::OAuthError;
use crate::validate::VerifiedToken;

/// One upstream JWT of an access token: for `audience`, minted to live `ttl` seconds,
/// expiring at `exp`.
#[derive(Clone)]
struct Minted {
    audience: String,
    ttl: u64,
    jwt: Arc<str>,
    exp: u64,
}

/// Upstream JWTs by the `jti` of the access token they stand for (looked up without
/// allocating; a token has one per audience and lifetime its routes ask for).
pub(crate) struct UpstreamTokens {
    entries: ExpiringCache<String, Arc<[Minted]>>,
}

impl UpstreamTokens {
    pub(crate) fn new(max_entries: usize, clock: SharedClock) -> Self {
        Self {
            entries: ExpiringCache::new(max_entries, clock),
        }
    }
}

/// A cached upstream JWT is used until this long before it expires (at most half its life),
/// so an upstream never gets one about to lapse.
const RENEW_BEFORE: u64 = 10;

impl OAuthProvider {
    /// The upstream JWT standing for `token` at `audience`: `iss` this server, `aud` the
    /// audience, `sub` the user (or the client), `client_id`, `scope`, living `ttl` but never
    /// past `token` itself. Cached per token and audience until shortly before it expires.
    pub fn upstream_token(
        &self,
        token: &VerifiedToken,
        audience: &str,
        ttl: Duration,
    ) -> Result<Arc<str>, OAuthError> {
        let now = self.now();
        let renew_before = RENEW_BEFORE.min(ttl.as_secs() / 2);
        let cache = &self.upstream_tokens;
        let fresh = |m: &Minted| {
            m.audience == audience && m.ttl == ttl.as_secs() && m.exp > now + renew_before
        };
        let held = cache.entries.get(&token.jti);
        if let Some(minted) = held.as_ref().and_then(|all| all.iter().find(|m| fresh(m))) {
            return Ok(Arc::clone(&minted.jwt));
        }
        let exp = (now + ttl.as_secs()).min(token.exp);
        let mut claims = serde_json::json!({
            "iss": self.config.issuer,
            "aud": audience,
            "sub": token.subject.as_ref().map_or(token.client_id.as_str(), |s| s.user_id.as_str()),
            "client_id": token.client_id,
            "scope": token.scope.join(" "),
            "iat": now,
            "exp": exp,
            "jti": crypto::id(),
            // Marks it as the gateway's upstream token: never accepted back as an access token.
            "tollgate_upstream": true,
        });
        if let (Some(user_type), Some(map)) = (
            token.subject.as_ref().and_then(|s| s.user_type.as_ref()),
            claims.as_object_mut(),
        ) {
            map.insert("user_type".into(), user_type.clone().into());
        }
        let jwt: Arc<str> = self
            .config
            .keys
            .active()
            .sign_rfc9068(&claims)
            .map_err(|e| {
                tracing::error!(error = %e, "signing an upstream token failed");
                OAuthError::ServerError
            })?
            .into();
        if exp > now + renew_before {
            // A token's list is replaced whole; two requests minting for one token at once
            // may each keep only their own, which costs one more signing later.
            let mut all: Vec<Minted> = held
                .iter()
                .flat_map(|all| all.iter())
                .filter(|m| m.exp > now + renew_before)
                .cloned()
                .collect();
            all.push(Minted {
                audience: audience.to_string(),
                ttl: ttl.as_secs(),
                jwt: Arc::clone(&jwt),
                exp,
            });
            let until = all.iter().map(|m| m.exp).max().unwrap_or(exp);
            cache
                .entries
                .insert_until(token.jti.clone(), all.into(), until);
        }
        Ok(jwt)
    }
}
