//! Sign-in sessions and consent: a user who signed in on the sign-in page holds a cookie
//! bound to a record in the store (so the fleet shares it and it can be ended), what a user
//! allowed a client is remembered there too, and RP-initiated logout ends the session.

use std::time::Duration;

use super::authorize::{cookie_value, PageRequest};
use super::OAuthProvider;
use crate::config::{Consent, User};
use crate::crypto;
use crate::error::{OAuthError, PageError};
use crate::form::Params;
use crate::records::{store_key, ConsentRecord, SessionRecord};
use crate::response::{append_query, Response};

/// The cookie that carries a sign-in session's secret.
pub const SESSION_COOKIE: &str = "tollgate_session";

/// How long an allowed consent is remembered.
const CONSENT_TTL: Duration = Duration::from_secs(365 * 86_400);

/// A user signed in by a session.
pub(crate) struct SignedIn<'a> {
    pub user: &'a User,
    /// When the user signed in (the id_token's `auth_time`).
    pub auth_time: u64,
}

/// A logout request as the gateway read it.
pub struct LogoutRequest<'a> {
    /// `GET` (parameters in the query) or `POST` (in the body).
    pub method: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub cookie: Option<&'a str>,
    /// The request came over TLS (the cleared cookie is then `Secure`).
    pub secure: bool,
}

impl OAuthProvider {
    /// The session the request's cookie names, if it is alive and its user still exists.
    pub(crate) async fn session(
        &self,
        cookie: Option<&str>,
    ) -> Result<Option<SignedIn<'_>>, OAuthError> {
        let Some(secret) = cookie_value(cookie, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if self.config.session_ttl.is_zero() {
            return Ok(None);
        }
        let key = store_key::session(&crypto::digest_hex(secret));
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let Ok(record) = serde_json::from_slice::<SessionRecord>(&raw) else {
            return Ok(None);
        };
        Ok(self
            .config
            .users
            .get(&record.username)
            .map(|user| SignedIn {
                user,
                auth_time: record.auth_time,
            }))
    }

    /// Starts a session for `user`; the `Set-Cookie` value that carries it (none when
    /// sessions are off). `HttpOnly` (no script reads it), `SameSite=Lax` (a client's link
    /// to the authorization endpoint carries it, a cross-site form does not).
    pub(crate) async fn start_session(
        &self,
        user: &User,
        auth_time: u64,
        secure: bool,
    ) -> Result<Option<String>, OAuthError> {
        let ttl = self.config.session_ttl;
        if ttl.is_zero() {
            return Ok(None);
        }
        let secret = crypto::authorization_code();
        let record = SessionRecord {
            username: user.username.clone(),
            auth_time,
        };
        let value = serde_json::to_vec(&record).map_err(|_| OAuthError::ServerError)?;
        self.store
            .put(
                &store_key::session(&crypto::digest_hex(&secret)),
                &value,
                ttl,
            )
            .await?;
        let secure = if secure { "; Secure" } else { "" };
        Ok(Some(format!(
            "{SESSION_COOKIE}={secret}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            ttl.as_secs()
        )))
    }

    fn consent_key(&self, user: &User, client_id: &str) -> String {
        let who = format!("{}\0{client_id}", user.user_id);
        store_key::consent(&crypto::digest_hex(&who))
    }

    /// Whether `user` must be asked to allow the request's client what it asks for: never
    /// for a first-party client (unless `prompt=consent`), always for `required`, and for
    /// `once` unless every scope asked was allowed before.
    pub(crate) async fn needs_consent(
        &self,
        page: &PageRequest<'_>,
        user: &User,
        prompted: bool,
    ) -> Result<bool, OAuthError> {
        let client = page.checked.client;
        match client.consent {
            _ if prompted => Ok(true),
            Consent::Never => Ok(false),
            Consent::Required => Ok(true),
            Consent::Once => {
                let allowed = self
                    .store
                    .get(&self.consent_key(user, &client.client_id))
                    .await?
                    .and_then(|raw| serde_json::from_slice::<ConsentRecord>(&raw).ok())
                    .map_or_else(Vec::new, |r| r.scopes);
                Ok(!page.checked.scope.iter().all(|s| allowed.contains(s)))
            }
        }
    }

    /// Remembers that `user` allowed the request's client its scopes (`consent: once`),
    /// added to what was allowed before.
    pub(crate) async fn remember_consent(
        &self,
        page: &PageRequest<'_>,
        user: &User,
    ) -> Result<(), OAuthError> {
        let client = page.checked.client;
        if client.consent != Consent::Once {
            return Ok(());
        }
        let key = self.consent_key(user, &client.client_id);
        let mut scopes = self
            .store
            .get(&key)
            .await?
            .and_then(|raw| serde_json::from_slice::<ConsentRecord>(&raw).ok())
            .map_or_else(Vec::new, |r| r.scopes);
        for s in &page.checked.scope {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let value =
            serde_json::to_vec(&ConsentRecord { scopes }).map_err(|_| OAuthError::ServerError)?;
        self.store.put(&key, &value, CONSENT_TTL).await?;
        Ok(())
    }

    /// OpenID Connect RP-Initiated Logout 1.0: ends the session the cookie names and sends
    /// the user back to `post_logout_redirect_uri` when it is registered, exactly, for the
    /// client that `client_id` or `id_token_hint` names (an unregistered one is never
    /// followed: no open redirect); otherwise a page says the user is signed out.
    pub async fn logout(&self, req: LogoutRequest<'_>) -> Response {
        let params = match req.method {
            "GET" | "HEAD" => Params::parse(req.query.unwrap_or("").as_bytes()),
            "POST" if crate::form::is_form(req.content_type) => Params::parse(req.body),
            "POST" => {
                return PageError::bad_request("The logout request must be a form.");
            }
            _ => return OAuthError::MethodNotAllowed { allow: "GET, POST" }.into_response(),
        };
        let params = match params {
            Ok(p) => p,
            Err(e) => return PageError::bad_request(&e.description()),
        };
        // The client is named by `client_id`, or by the id_token's audience. The hint is
        // not verified: it only picks whose registered URIs apply, and a forged one picks a
        // client whose registered URI then must match exactly.
        let client_id = params
            .get("client_id")
            .map(str::to_string)
            .or_else(|| params.get("id_token_hint").and_then(id_token_audience));
        let redirect = match params.get("post_logout_redirect_uri") {
            Some(uri) => {
                let registered = client_id
                    .as_deref()
                    .and_then(|id| self.config.clients.get(id))
                    .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
                if !registered {
                    return PageError::bad_request(
                        "The post_logout_redirect_uri is not registered for this client.",
                    );
                }
                Some(uri)
            }
            None => None,
        };
        if let Some(secret) = cookie_value(req.cookie, SESSION_COOKIE).filter(|s| !s.is_empty()) {
            let key = store_key::session(&crypto::digest_hex(secret));
            if let Err(e) = self.store.delete(&key).await {
                return OAuthError::from(e).into_response();
            }
        }
        let secure = if req.secure { "; Secure" } else { "" };
        let cleared =
            format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}");
        let mut resp = match redirect {
            Some(uri) => {
                let pairs: Vec<(&str, &str)> = params
                    .get("state")
                    .map(|s| ("state", s))
                    .into_iter()
                    .collect();
                Response::redirect(if pairs.is_empty() {
                    uri.to_string()
                } else {
                    append_query(uri, &pairs)
                })
            }
            None => Response::html(
                200,
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
                 <title>Signed out</title></head><body><h1>You are signed out</h1>\
                 <p>You can close this window.</p></body></html>"
                    .into(),
            ),
        };
        resp.headers.push(("set-cookie", cleared));
        resp
    }
}

/// The client an id_token was issued to (`azp`, else a single `aud`), read without checking
/// the signature (see [`OAuthProvider::logout`]).
fn id_token_audience(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["azp"]
        .as_str()
        .or_else(|| claims["aud"].as_str())
        .map(str::to_string)
}
