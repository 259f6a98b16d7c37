//! RFC 6749 4.4: the client acts for itself.

use crate::config::Client;
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::{resolve_scope, Issued};
use crate::provider::OAuthProvider;

impl OAuthProvider {
    /// RFC 6749 4.4: a token for the client itself; no refresh token.
    pub(in crate::provider) async fn client_credentials(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let scope = resolve_scope(client, params.get("scope"), None)?;
        let (access_token, record) = self
            .issue_access_token(client, &scope, None, params.get("resource"))
            .await?;
        Ok(Issued {
            access_token,
            refresh_token: None,
            scope,
            record,
            subject: None,
            auth_time: None,
            nonce: None,
            expires_in: None,
        })
    }
}
