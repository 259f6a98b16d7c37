//! The token endpoint (RFC 6749 3.2 and 4–6): every grant, from a parsed request to a
//! response value.

use std::net::IpAddr;

use serde::Serialize;

use super::client_auth::AuthPurpose;
use super::issuance::Issued;
use super::oidc::IdTokenInput;
use super::OAuthProvider;
use crate::config::{Client, Grant};
use crate::error::OAuthError;
use crate::form::Params;
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
        // RFC 8707: a token for one of the routes' audiences only. Checked before the client
        // authenticates, as a malformed request would be.
        if let Some(resource) = params.get("resource") {
            if !self.config.resources.iter().any(|r| r == resource) {
                return Err(OAuthError::InvalidTarget(
                    "the resource is not an audience of this gateway's routes".into(),
                ));
            }
        }
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
}

/// A successful token response (RFC 6749 5.1, OpenID Connect Core 3.1.3.3), its members in
/// the order the seeds show them.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'a str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

fn token_response(client: &Client, issued: Issued, id_token: Option<String>) -> Response {
    let body = TokenResponse {
        access_token: &issued.access_token,
        token_type: &client.token_type,
        expires_in: issued
            .expires_in
            .unwrap_or(client.access_token_ttl.as_secs()),
        scope: issued.scope.join(" "),
        refresh_token: issued.refresh_token.as_deref(),
        id_token: id_token.as_deref(),
    };
    tracing::debug!(client_id = %client.client_id, jti = %issued.record.access_jti, "token issued");
    Response::json(200, &body)
}
