//! Client authentication (RFC 6749 2.3) and user authentication; every secret checked
//! counts against the brute-force limits of `brute_force.rs`.

use std::net::IpAddr;

use super::brute_force::FailureCounters;
use super::OAuthProvider;
use crate::config::{Client, Grant, User};
use crate::error::OAuthError;
use crate::form::{basic_credentials, Params};

/// What a client presented to authenticate.
pub(crate) struct PresentedClient {
    pub id: String,
    pub secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header.
    pub basic: bool,
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

/// The longest `client_id` or `username` taken: a longer one is refused (`invalid_request`)
/// before any counter, store key or log line sees it.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 256;

/// Refuses an identifier longer than [`MAX_IDENTIFIER_BYTES`].
pub(crate) fn check_identifier(what: &str, value: &str) -> Result<(), OAuthError> {
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(OAuthError::InvalidRequest(format!(
            "{what} is longer than {MAX_IDENTIFIER_BYTES} bytes"
        )));
    }
    Ok(())
}

impl OAuthProvider {
    /// Authenticates the client of a token request (RFC 6749 2.3): HTTP Basic, or
    /// `client_id`/`client_secret` in the body, never both; no secret only for a public
    /// client or one allowed the password grant without one. A secret counts against the
    /// brute-force budget; no secret is not a guess and counts nothing.
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
        purpose: AuthPurpose,
        client_ip: Option<IpAddr>,
    ) -> Result<AuthenticatedClient<'_>, OAuthError> {
        let presented = presented_client(authorization, params)?;
        let client = self.config.clients.get(&presented.id);
        let ok = match (&presented.secret, client) {
            (Some(secret), client) => {
                let hash = client.and_then(|c| c.secret_hash.as_ref());
                let who = FailureCounters::new("client", &presented.id, client_ip);
                let remembered = || {
                    hash.is_some_and(|h| {
                        self.verifier.remembers(&presented.id, h, secret.as_bytes())
                    })
                };
                let check = self.verifier.verify(&presented.id, hash, secret.as_bytes());
                self.counted_check(&who, remembered, check).await?
            }
            (None, Some(c)) => passes_without_secret(c, purpose),
            (None, None) => false,
        };
        match client {
            Some(client) if ok => Ok(AuthenticatedClient {
                client,
                secret: presented.secret,
            }),
            _ => {
                // A configured id is the operator's; an unknown one is the caller's string.
                match client {
                    Some(c) => {
                        tracing::info!(client_id = %c.client_id, "client authentication failed")
                    }
                    None => tracing::info!("client authentication failed: unknown client"),
                }
                Err(OAuthError::InvalidClient {
                    basic: presented.basic,
                })
            }
        }
    }

    /// Authenticates a user by username and password, counting attempts per username and
    /// address. Unknown users cost the same time as known ones and get the same error.
    pub(crate) async fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<&User>, OAuthError> {
        check_identifier("username", username)?;
        let user = self.config.users.get(username);
        let who = FailureCounters::new("user", username, client_ip);
        let remembered = || {
            user.is_some_and(|u| {
                self.verifier
                    .remembers(username, &u.password_hash, password.as_bytes())
            })
        };
        let check = self.verifier.verify(
            username,
            user.map(|u| &u.password_hash),
            password.as_bytes(),
        );
        let ok = self.counted_check(&who, remembered, check).await?;
        Ok(if ok { user } else { None })
    }
}

/// Whether a client that presented no secret passes for `purpose`: a public client for the
/// grants a browser app uses and to revoke its own tokens, a client allowed the password
/// grant without a secret for that grant; never for introspection.
fn passes_without_secret(client: &Client, purpose: AuthPurpose) -> bool {
    match purpose {
        AuthPurpose::Grant(grant) => {
            (client.public && matches!(grant, Grant::AuthorizationCode | Grant::RefreshToken))
                || (client.password_grant_without_secret && grant == Grant::Password)
        }
        AuthPurpose::Revocation => client.public,
        AuthPurpose::Introspection => false,
    }
}

/// Reads the client's credentials from the header and the body.
fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    let basic = authorization.and_then(basic_credentials).transpose()?;
    let presented = match basic {
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
            PresentedClient {
                id: creds.id,
                secret: Some(creds.secret),
                basic: true,
            }
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(OAuthError::InvalidClient { basic: false });
            };
            PresentedClient {
                id: id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
                basic: false,
            }
        }
    };
    check_identifier("client_id", &presented.id)?;
    Ok(presented)
}

#[cfg(test)]
mod tests;
