//! Issuing tokens: the scope a request gets, access tokens in the client's format and profile,
//! and refresh-token families. The grants call these; none re-implements them.

use serde::Serialize;

use super::OAuthProvider;
use crate::config::{Client, Grant, TokenFormat, TokenProfile};
use crate::crypto;
use crate::error::OAuthError;
use crate::records::{store_key, IssuedTokens, OpaqueAccessToken, RefreshFamily, Subject};

/// An access token issued whose refresh-token family is not started yet (see
/// [`OAuthProvider::begin_issue`]).
pub(crate) struct PendingIssue(Issued);

impl PendingIssue {
    /// What was issued so far, to record before the family starts.
    pub(crate) fn record(&self) -> &crate::records::IssuedTokens {
        &self.0.record
    }
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
    /// Seconds the access token has left, when not the client's full lifetime (a retried
    /// refresh hands out the token its first answer issued).
    pub expires_in: Option<u64>,
}

/// The claims of a JWT access token in the client's profile, serialized as they stand.
#[derive(Serialize)]
#[serde(untagged)]
enum AccessClaims<'a> {
    /// RFC 9068 2.2: `sub` is the user, or the client itself when no user is involved.
    Rfc9068 {
        iss: &'a str,
        exp: u64,
        aud: &'a str,
        sub: &'a str,
        client_id: &'a str,
        iat: u64,
        jti: &'a str,
        scope: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_type: Option<&'a str>,
    },
    /// The light-oauth2 shape, in the seed's order: `user_id` and `sub` only with a user,
    /// the scope as an array.
    LightOAuth2 {
        iss: &'a str,
        aud: &'a str,
        exp: u64,
        jti: &'a str,
        iat: u64,
        nbf: u64,
        version: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_type: Option<&'a str>,
        client_id: &'a str,
        scope: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a str>,
    },
}

fn access_claims<'a>(
    client: &'a Client,
    audience: &'a str,
    scope: &'a [String],
    subject: Option<&'a Subject>,
    jti: &'a str,
    iat: u64,
    exp: u64,
) -> AccessClaims<'a> {
    let user_type = subject.and_then(|s| s.user_type.as_deref());
    match client.token_profile {
        TokenProfile::Rfc9068 => AccessClaims::Rfc9068 {
            iss: &client.issuer,
            exp,
            aud: audience,
            sub: subject.map_or(client.client_id.as_str(), |s| s.user_id.as_str()),
            client_id: &client.client_id,
            iat,
            jti,
            scope: scope.join(" "),
            user_type,
        },
        TokenProfile::LightOAuth2 => AccessClaims::LightOAuth2 {
            iss: &client.issuer,
            aud: audience,
            exp,
            jti,
            iat,
            nbf: iat,
            version: "1.0",
            user_id: subject.map(|s| s.user_id.as_str()),
            user_type,
            client_id: &client.client_id,
            scope,
            sub: subject.map(|s| s.user_id.as_str()),
        },
    }
}

/// The scope for a request: the requested scopes if the client may have all of them
/// (and, with `ceiling`, all were granted before), else the defaults.
pub(crate) fn resolve_scope(
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

impl OAuthProvider {
    /// Issues an access token in the client's format (a signed JWT, or an opaque token kept in
    /// the store) and returns it with what revoking it later needs. `resource` (RFC 8707,
    /// checked by the token endpoint to be a route audience) makes it that audience's only.
    pub(crate) async fn issue_access_token(
        &self,
        client: &Client,
        scope: &[String],
        subject: Option<&Subject>,
        resource: Option<&str>,
    ) -> Result<(String, IssuedTokens), OAuthError> {
        let iat = self.now();
        let exp = iat + client.access_token_ttl.as_secs();
        let jti = crypto::id();
        match client.token_format {
            TokenFormat::Jwt => {
                let audience = resource.unwrap_or(&client.audience);
                let claims = access_claims(client, audience, scope, subject, &jti, iat, exp);
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
                let token = crypto::opaque_token();
                let key = store_key::opaque_access(&crypto::digest_hex(&token));
                let record = OpaqueAccessToken {
                    jti: jti.clone(),
                    client_id: client.client_id.clone(),
                    scope: scope.to_vec(),
                    subject: subject.cloned(),
                    iat,
                    exp,
                    resource: resource.map(str::to_string),
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
        let key = crypto::family_key();
        let token = crypto::refresh_token(family_id, &key);
        let digest = crypto::digest_hex(&token);
        let ttl = self.config.refresh_token_ttl;
        let family = RefreshFamily {
            client_id: client.client_id.clone(),
            scope: scope.to_vec(),
            subject: subject.cloned(),
            auth_time,
            current: digest.clone(),
            expires_at: self.now() + ttl.as_secs(),
            latest: latest.clone().listed(),
            earlier: Vec::new(),
            revoked: false,
            retry: None,
            key: Some(key),
        };
        let value = serde_json::to_vec(&family).map_err(|_| OAuthError::ServerError)?;
        if !self
            .store
            .put_if_absent(&store_key::family(family_id), &value, ttl)
            .await?
        {
            return Err(OAuthError::InvalidGrant(
                "the authorization grant was revoked".into(),
            ));
        }
        Ok(token)
    }

    /// An access token for a grant that may start a refresh-token family; the family is
    /// started by [`Self::finish_issue`], so a grant can record what it issued in between.
    pub(super) async fn begin_issue(
        &self,
        client: &Client,
        scope: Vec<String>,
        subject: Option<Subject>,
        auth_time: Option<u64>,
        resource: Option<&str>,
    ) -> Result<PendingIssue, OAuthError> {
        let (access_token, mut record) = self
            .issue_access_token(client, &scope, subject.as_ref(), resource)
            .await?;
        record.family_id = client.allows(Grant::RefreshToken).then(crypto::family_id);
        Ok(PendingIssue(Issued {
            access_token,
            refresh_token: None,
            scope,
            record,
            subject,
            auth_time,
            nonce: None,
            expires_in: None,
        }))
    }

    /// Starts the refresh-token family a [`PendingIssue`] names, if any.
    pub(super) async fn finish_issue(
        &self,
        client: &Client,
        pending: PendingIssue,
    ) -> Result<Issued, OAuthError> {
        let mut issued = pending.0;
        if let Some(family_id) = issued.record.family_id.clone() {
            let refresh_token = self
                .start_family(
                    &family_id,
                    client,
                    &issued.scope,
                    issued.subject.as_ref(),
                    issued.auth_time,
                    &issued.record,
                )
                .await?;
            issued.refresh_token = Some(refresh_token);
        }
        Ok(issued)
    }

    /// An access token plus, when the client may refresh, a new refresh-token family.
    pub(super) async fn issue_with_refresh(
        &self,
        client: &Client,
        scope: Vec<String>,
        subject: Option<Subject>,
        auth_time: Option<u64>,
        resource: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let pending = self
            .begin_issue(client, scope, subject, auth_time, resource)
            .await?;
        self.finish_issue(client, pending).await
    }
}
