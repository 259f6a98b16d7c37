//! Phantom tokens: the client holds an opaque (or any) access token, and the upstream of a
//! route with `auth.upstream_token: jwt` receives instead a short-lived JWT for that route's
//! audience, signed in-process by the active key — nothing readable reaches the client, and
//! the upstream checks a signature against the JWKS instead of calling introspection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::OAuthProvider;
use crate::crypto;
use crate::error::OAuthError;
use crate::validate::VerifiedToken;

/// (access token `jti`, audience, lifetime in seconds).
type TokenAndAudience = (String, String, u64);

/// Upstream JWTs by access token and audience, each with its expiry.
pub(crate) struct UpstreamTokens {
    entries: Mutex<HashMap<TokenAndAudience, (Arc<str>, u64)>>,
    max_entries: usize,
}

impl UpstreamTokens {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max_entries,
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
        let key = (token.jti.clone(), audience.to_string(), ttl.as_secs());
        let cache = &self.upstream_tokens;
        {
            let map = cache.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((jwt, exp)) = map.get(&key) {
                if *exp > now + renew_before {
                    return Ok(Arc::clone(jwt));
                }
            }
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
            let mut map = cache.entries.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= cache.max_entries {
                map.retain(|_, (_, e)| *e > now);
                if map.len() >= cache.max_entries {
                    map.clear();
                }
            }
            map.insert(key, (Arc::clone(&jwt), exp));
        }
        Ok(jwt)
    }
}
