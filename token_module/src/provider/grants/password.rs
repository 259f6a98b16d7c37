//! RFC 6749 4.3: the resource owner's username and password.

use std::net::IpAddr;

use crate::config::Client;
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::{resolve_scope, Issued};
use crate::provider::OAuthProvider;
use crate::records::Subject;

impl OAuthProvider {
    /// RFC 6749 4.3: the resource owner's username and password.
    pub(in crate::provider) async fn password(
        &self,
        client: &Client,
        params: &Params,
        client_ip: Option<IpAddr>,
    ) -> Result<Issued, OAuthError> {
        let username = params.require("username")?;
        let password = params.require("password")?;
        let scope = resolve_scope(client, params.get("scope"), None)?;
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
            .issue_with_refresh(
                client,
                scope,
                Some(subject),
                Some(self.now()),
                params.get("resource"),
            )
            .await?;
        issued.nonce = params.get("nonce").map(str::to_string);
        Ok(issued)
    }
}
