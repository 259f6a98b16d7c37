//! The light-oauth2 custom grant: a trusted client names the user it acts for.

use crate::config::Client;
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::{resolve_scope, Issued};
use crate::provider::OAuthProvider;
use crate::records::Subject;

impl OAuthProvider {
    /// The light-oauth2 custom grant: a trusted client names the user it acts for.
    pub(in crate::provider) async fn client_authenticated_user(
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
        let scope = resolve_scope(client, params.get("scope"), None)?;
        let (access_token, record) = self
            .issue_access_token(client, &scope, Some(&subject), params.get("resource"))
            .await?;
        Ok(Issued {
            access_token,
            refresh_token: None,
            scope,
            record,
            subject: Some(subject),
            auth_time: None,
            nonce: None,
            expires_in: None,
        })
    }
}
