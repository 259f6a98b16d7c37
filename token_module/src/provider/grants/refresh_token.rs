//! RFC 6749 6 with rotation: each refresh token works once; presenting a retired one revokes
//! its whole family (RFC 6819 5.2.2.3).

use std::time::Duration;

use crate::config::Client;
use crate::crypto::{self, ct_eq};
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::Issued;
use crate::provider::{log_id, OAuthProvider};
use crate::records::{store_key, RefreshFamily};

impl OAuthProvider {
    /// RFC 6749 6 with rotation: each refresh token works once; presenting a retired one
    /// revokes its whole family (RFC 6819 5.2.2.3).
    pub(in crate::provider) async fn refresh_token(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let token = params.require("refresh_token")?;
        let digest = crypto::digest_hex(token);
        let invalid =
            || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
        let family_id = crypto::family_of(token).ok_or_else(invalid)?.to_string();
        let family_key = store_key::family(&family_id);
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
        let remaining = Duration::from_secs(family.expires_at.saturating_sub(self.now()));
        if remaining.is_zero() {
            return Err(invalid());
        }

        let new_token = crypto::refresh_token(&family_id);
        let new_digest = crypto::digest_hex(&new_token);
        let (access_token, mut issued) = self
            .issue_access_token(client, &scope, family.subject.as_ref())
            .await?;
        issued.family_id = Some(family_id.clone());
        let mut rotated = family.clone();
        rotated.current = new_digest.clone();
        for superseded in rotated.rotate_access(issued.clone(), self.now()) {
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
