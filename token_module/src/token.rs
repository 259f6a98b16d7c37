//! The token endpoint (RFC 6749 3.2 and 4–6): every grant, from a parsed request to a
//! response value.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{Client, Grant};
use crate::error::OAuthError;
use crate::form::Params;
use crate::oidc::IdTokenInput;
use crate::provider::{log_id, now, AuthPurpose, Issued, OAuthProvider};
use crate::random::{self, ct_eq};
use crate::records::{keys, CodeRecord, RedeemedCode, RefreshFamily, Subject};
use crate::response::Response;

/// Parameters that carry credentials and so must never come in a URL (RFC 6749 2.3.1, 3.2).
const CREDENTIAL_PARAMS: [&str; 6] = [
    "client_secret",
    "password",
    "code",
    "refresh_token",
    "code_verifier",
    "assertion",
];

/// A token request as the gateway read it. The method and body size were checked already.
pub struct TokenRequest<'a> {
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// The raw query string, which must carry no credentials.
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub client_ip: Option<IpAddr>,
}

/// The endpoint's answer with what metrics need to know.
#[derive(Debug)]
pub struct TokenOutcome {
    pub response: Response,
    /// The `grant_type` asked for, when it was a known one.
    pub grant: Option<Grant>,
    /// The `error` code of a failure.
    pub error: Option<&'static str>,
}

impl OAuthProvider {
    /// Answers a token request.
    pub async fn token(&self, req: TokenRequest<'_>) -> TokenOutcome {
        let mut grant = None;
        let result = self.token_inner(&req, &mut grant).await;
        match result {
            Ok(response) => TokenOutcome {
                response,
                grant,
                error: None,
            },
            Err(e) => {
                let code = e.code();
                TokenOutcome {
                    response: e.into_response(),
                    grant,
                    error: Some(code),
                }
            }
        }
    }

    async fn token_inner(
        &self,
        req: &TokenRequest<'_>,
        grant_out: &mut Option<Grant>,
    ) -> Result<Response, OAuthError> {
        if let Some(query) = req.query {
            if form_urlencoded::parse(query.as_bytes())
                .any(|(k, _)| CREDENTIAL_PARAMS.contains(&k.as_ref()))
            {
                return Err(OAuthError::InvalidRequest(
                    "credentials must be sent in the body, not the URL".into(),
                ));
            }
        }
        let params = Params::from_form_body(req.content_type, req.body)?;
        let grant_type = params.require("grant_type")?;
        let grant = Grant::parse(grant_type).ok_or_else(|| {
            OAuthError::UnsupportedGrantType(format!(
                "the grant type `{grant_type}` is not supported"
            ))
        })?;
        *grant_out = Some(grant);
        let authenticated = self
            .authenticate_client(
                req.authorization,
                &params,
                AuthPurpose::Grant(grant),
                req.client_ip,
            )
            .await?;
        let client = authenticated.client;
        if !client.allows(grant) {
            return Err(OAuthError::UnauthorizedClient(format!(
                "the client may not use the `{grant_type}` grant"
            )));
        }
        let issued = match grant {
            Grant::ClientCredentials => self.client_credentials(client, &params).await?,
            Grant::Password => self.password(client, &params, req.client_ip).await?,
            Grant::AuthorizationCode => self.authorization_code(client, &params).await?,
            Grant::RefreshToken => self.refresh_token(client, &params).await?,
            Grant::ClientAuthenticatedUser => {
                self.client_authenticated_user(client, &params).await?
            }
        };
        let id_token = match (&issued.subject, issued.scope.iter().any(|s| s == "openid")) {
            (Some(subject), true) => Some(self.id_token(IdTokenInput {
                client,
                subject,
                scope: &issued.scope,
                access_token: &issued.access_token,
                nonce: issued.nonce.as_deref(),
                auth_time: issued.auth_time,
                client_secret: authenticated.secret.as_deref(),
            })?),
            _ => None,
        };
        Ok(token_response(client, issued, id_token))
    }

    /// RFC 6749 4.4: a token for the client itself; no refresh token.
    async fn client_credentials(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let scope = self.resolve_scope(client, params.get("scope"), None)?;
        let (access_token, record) = self.issue_access_token(client, &scope, None).await?;
        Ok(Issued {
            access_token,
            refresh_token: None,
            scope,
            record,
            subject: None,
            auth_time: None,
            nonce: None,
        })
    }

    /// The light-oauth2 custom grant: a trusted client names the user it acts for.
    async fn client_authenticated_user(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        if !client.trusted {
            return Err(OAuthError::UnauthorizedClient(
                "only trusted clients may use this grant".into(),
            ));
        }
        let subject = Subject {
            user_id: params.require("user_id")?.to_string(),
            user_type: params.get("user_type").map(str::to_string),
            username: None,
        };
        let scope = self.resolve_scope(client, params.get("scope"), None)?;
        let (access_token, record) = self
            .issue_access_token(client, &scope, Some(&subject))
            .await?;
        Ok(Issued {
            access_token,
            refresh_token: None,
            scope,
            record,
            subject: Some(subject),
            auth_time: None,
            nonce: None,
        })
    }

    /// RFC 6749 4.3: the resource owner's username and password.
    async fn password(
        &self,
        client: &Client,
        params: &Params,
        client_ip: Option<IpAddr>,
    ) -> Result<Issued, OAuthError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scope = self.resolve_scope(client, params.get("scope"), None)?;
        let Some(user) = self
            .authenticate_user(username, password, client_ip)
            .await?
        else {
            return Err(OAuthError::InvalidGrant(
                "the username or password is incorrect".into(),
            ));
        };
        let subject = Subject {
            user_id: user.user_id.clone(),
            user_type: user.user_type.clone(),
            username: Some(user.username.clone()),
        };
        let mut issued = self
            .issue_with_refresh(client, scope, Some(subject), Some(now()))
            .await?;
        issued.nonce = params.get("nonce").map(str::to_string);
        Ok(issued)
    }

    /// Access token plus, when the client may refresh, a new refresh-token family.
    async fn issue_with_refresh(
        &self,
        client: &Client,
        scope: Vec<String>,
        subject: Option<Subject>,
        auth_time: Option<u64>,
    ) -> Result<Issued, OAuthError> {
        let (access_token, mut record) = self
            .issue_access_token(client, &scope, subject.as_ref())
            .await?;
        let refresh_token = if client.allows(Grant::RefreshToken) {
            let family_id = random::family_id();
            record.family_id = Some(family_id.clone());
            Some(
                self.start_family(
                    &family_id,
                    client,
                    &scope,
                    subject.as_ref(),
                    auth_time,
                    &record,
                )
                .await?,
            )
        } else {
            None
        };
        Ok(Issued {
            access_token,
            refresh_token,
            scope,
            record,
            subject,
            auth_time,
            nonce: None,
        })
    }

    /// RFC 6749 4.1.3 with RFC 7636: redeems a code, once.
    async fn authorization_code(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let code = params.require("code")?;
        let digest = random::digest_hex(code);
        let invalid = || {
            OAuthError::InvalidGrant(
                "the authorization code is invalid, expired or already used".into(),
            )
        };
        let Some(raw) = self.store.take(&keys::code(&digest)).await? else {
            self.revoke_replayed_code(client, &digest, params.get("code_verifier"))
                .await?;
            return Err(invalid());
        };
        let record: CodeRecord = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        if record.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the authorization code was issued to another client".into(),
            ));
        }
        match params.get("redirect_uri") {
            Some(uri) if uri != record.redirect_uri => {
                return Err(OAuthError::InvalidGrant(
                    "redirect_uri does not match the authorization request".into(),
                ))
            }
            None if record.redirect_uri_given => {
                return Err(OAuthError::InvalidGrant(
                    "redirect_uri is required: the authorization request named one".into(),
                ))
            }
            _ => {}
        }
        verify_pkce(
            record.code_challenge.as_deref(),
            record.code_challenge_method.as_deref(),
            params.get("code_verifier"),
        )?;

        // Record what this code produces before producing it, so a replay racing with this
        // redemption can revoke it.
        let family_id = client
            .allows(crate::config::Grant::RefreshToken)
            .then(random::family_id);
        let (access_token, mut issued) = self
            .issue_access_token(client, &record.scope, Some(&record.subject))
            .await?;
        issued.family_id = family_id.clone();
        let redeemed = RedeemedCode {
            client_id: client.client_id.clone(),
            issued: issued.clone(),
            code_challenge: record.code_challenge.clone(),
            code_challenge_method: record.code_challenge_method.clone(),
        };
        let keep = self.config.refresh_token_ttl.max(client.access_token_ttl);
        let value = serde_json::to_vec(&redeemed).map_err(|_| OAuthError::ServerError)?;
        self.store
            .put(&keys::redeemed_code(&digest), &value, keep)
            .await?;
        let refresh_token = match &family_id {
            Some(id) => Some(
                self.start_family(
                    id,
                    client,
                    &record.scope,
                    Some(&record.subject),
                    Some(record.auth_time),
                    &issued,
                )
                .await?,
            ),
            None => None,
        };
        Ok(Issued {
            access_token,
            refresh_token,
            scope: record.scope,
            record: issued,
            subject: Some(record.subject),
            auth_time: Some(record.auth_time),
            nonce: record.nonce,
        })
    }

    /// A used code came back. RFC 6749 4.1.2 says to revoke what it produced, but only a
    /// replay that proves it comes from the code's holder may do that (RFC 9700 2.1.1):
    /// otherwise anyone who saw the code (browser history, a `Referer`, a log) could sign the
    /// user out. Proof is the PKCE verifier when the code had a challenge, else the client's
    /// authentication, which a public client does not have. A replay from another client or
    /// without proof is refused (by the caller) and revokes nothing.
    async fn revoke_replayed_code(
        &self,
        client: &Client,
        digest: &str,
        verifier: Option<&str>,
    ) -> Result<(), OAuthError> {
        let key = keys::redeemed_code(digest);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(());
        };
        let Ok(redeemed) = serde_json::from_slice::<RedeemedCode>(&raw) else {
            return Ok(());
        };
        if redeemed.client_id != client.client_id {
            return Ok(());
        }
        let proven = match &redeemed.code_challenge {
            Some(challenge) => verify_pkce(
                Some(challenge),
                redeemed.code_challenge_method.as_deref(),
                verifier,
            )
            .is_ok(),
            // Only a confidential client gets here authenticated.
            None => !client.public,
        };
        if !proven {
            tracing::warn!(client_id = %client.client_id, "authorization code replayed without proof of possession; nothing revoked");
            return Ok(());
        }
        tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its tokens");
        self.revoke_issued(&redeemed.issued).await?;
        self.store.delete(&key).await?;
        Ok(())
    }

    /// RFC 6749 6 with rotation: each refresh token works once; presenting a retired one
    /// revokes its whole family (RFC 6819 5.2.2.3).
    async fn refresh_token(&self, client: &Client, params: &Params) -> Result<Issued, OAuthError> {
        let token = params.require("refresh_token")?;
        let digest = random::digest_hex(token);
        let invalid =
            || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
        let family_id = random::family_of(token).ok_or_else(invalid)?.to_string();
        let family_key = keys::family(&family_id);
        let raw = self.store.get(&family_key).await?.ok_or_else(invalid)?;
        let family: RefreshFamily = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        if family.revoked {
            return Err(invalid());
        }
        if family.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        if !ct_eq(family.current.as_bytes(), digest.as_bytes()) {
            tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "retired refresh token reused; revoking the family");
            self.revoke_family(&family_id).await?;
            return Err(invalid());
        }
        let scope = self.resolve_scope(client, params.get("scope"), Some(&family.scope))?;
        let remaining = Duration::from_secs(family.expires_at.saturating_sub(now()));
        if remaining.is_zero() {
            return Err(invalid());
        }

        let new_token = random::refresh_token(&family_id);
        let new_digest = random::digest_hex(&new_token);
        let (access_token, mut issued) = self
            .issue_access_token(client, &scope, family.subject.as_ref())
            .await?;
        issued.family_id = Some(family_id.clone());
        let mut rotated = family.clone();
        rotated.current = new_digest.clone();
        for superseded in rotated.rotate_access(issued.clone(), now()) {
            self.deny_access_token(&superseded).await?;
        }
        let new_value = serde_json::to_vec(&rotated).map_err(|_| OAuthError::ServerError)?;
        if !self
            .store
            .compare_and_swap(&family_key, &raw, &new_value, remaining)
            .await?
        {
            // Another request rotated (or revoked) the family between our read and swap: this
            // token was used twice.
            tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "refresh token used concurrently; revoking the family");
            self.deny_access_token(&issued).await?;
            self.revoke_family(&family_id).await?;
            return Err(invalid());
        }
        Ok(Issued {
            access_token,
            refresh_token: Some(new_token),
            scope,
            record: issued,
            subject: family.subject,
            auth_time: family.auth_time,
            nonce: None,
        })
    }
}

/// RFC 7636 4.6: the verifier must transform to the challenge stored with the code.
fn verify_pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::InvalidGrant(
            "no code_challenge was sent for this code".into(),
        )),
        (Some(_), None) => Err(OAuthError::InvalidGrant(
            "code_verifier is required for this code".into(),
        )),
        (Some(challenge), Some(verifier)) => {
            if !crate::authorize::is_pkce_value(verifier) {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier must be 43 to 128 unreserved characters".into(),
                ));
            }
            let computed = match method {
                Some("plain") => verifier.to_string(),
                _ => random::pkce_s256(verifier),
            };
            if ct_eq(computed.as_bytes(), challenge.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::InvalidGrant(
                    "code_verifier does not match the code_challenge".into(),
                ))
            }
        }
    }
}

/// RFC 6749 5.1, shaped as the seeds show.
fn token_response(client: &Client, issued: Issued, id_token: Option<String>) -> Response {
    let mut body = serde_json::json!({
        "access_token": issued.access_token,
        "token_type": client.token_type,
        "expires_in": client.access_token_ttl.as_secs(),
        "scope": issued.scope.join(" "),
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(rt) = issued.refresh_token {
            map.insert("refresh_token".into(), rt.into());
        }
        if let Some(id_token) = id_token {
            map.insert("id_token".into(), id_token.into());
        }
    }
    tracing::debug!(client_id = %client.client_id, jti = %issued.record.access_jti, "token issued");
    Response::json(200, &body)
}
