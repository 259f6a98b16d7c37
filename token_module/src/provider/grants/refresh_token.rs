//! RFC 6749 6 with rotation: each refresh token works once; presenting a retired one revokes
//! its whole family (RFC 6819 5.2.2.3) — unless the client allows a retry grace and the
//! retired token is presented again within it, as a client whose answer was lost does: the
//! retry gets the first answer again, so nothing is issued twice.

use std::time::Duration;

use crate::config::Client;
use crate::crypto::{self, ct_eq};
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::Issued;
use crate::provider::{log_id, OAuthProvider};
use crate::records::{RefreshFamily, RetryAnswer, RetryTokens};

impl OAuthProvider {
    /// Rotates the family of the presented refresh token. The new record (new current token,
    /// new latest access token and, with a retry grace, the sealed answer for a retry) replaces
    /// the one read in one compare-and-swap: of two uses of one token exactly one rotates.
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
        let (family_key, raw) = self.family_record(&family_id).await?;
        let raw = raw.ok_or_else(invalid)?;
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
            if let Some(first) = self.retried_refresh(client, params, &family, token, &digest)? {
                return Ok(first);
            }
            // A token the family never handed out (its id with anything after it) is a
            // guess, not a reuse: it must not sign the family's holder out.
            if !family.handed_out(token) {
                return Err(invalid());
            }
            tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "retired refresh token reused; revoking the family");
            self.revoke_family(&family_id).await?;
            return Err(invalid());
        }
        let scope = self.resolve_scope(client, params.get("scope"), Some(&family.scope))?;
        let remaining = Duration::from_secs(family.expires_at.saturating_sub(self.now()));
        if remaining.is_zero() {
            return Err(invalid());
        }

        // A family started before tokens were tagged gets its key now.
        let key = family.key.clone().unwrap_or_else(crypto::family_key);
        let new_token = crypto::refresh_token(&family_id, &key);
        let new_digest = crypto::digest_hex(&new_token);
        let (access_token, mut issued) = self
            .issue_access_token(
                client,
                &scope,
                family.subject.as_ref(),
                params.get("resource"),
            )
            .await?;
        issued.family_id = Some(family_id.clone());
        let mut rotated = family.clone();
        rotated.current = new_digest.clone();
        rotated.key = Some(key);
        rotated.retry = if client.refresh_retry_grace.is_zero() {
            None
        } else {
            let tokens = RetryTokens {
                access_token: access_token.clone(),
                refresh_token: new_token.clone(),
                scope: scope.clone(),
                resource: params.get("resource").map(str::to_string),
            };
            Some(RetryAnswer::seal(token, self.now(), &tokens).ok_or(OAuthError::ServerError)?)
        };
        for superseded in rotated.rotate_access(issued.clone(), self.now()) {
            self.retire_access_token(&superseded).await?;
        }
        let new_value = serde_json::to_vec(&rotated).map_err(|_| OAuthError::ServerError)?;
        if !self
            .store
            .compare_and_swap(&family_key, &raw, &new_value, remaining)
            .await?
        {
            // Another request rotated (or revoked) the family between our read and swap: this
            // token was used twice. What this request issued is never handed out.
            self.deny_access_token(&issued).await?;
            // Two sends of one request (a client retrying at once) race like this too: the
            // loser gets the winner's answer when the grace allows it.
            let now_family = self
                .store
                .get(&family_key)
                .await?
                .and_then(|raw| serde_json::from_slice::<RefreshFamily>(&raw).ok());
            if let Some(now_family) = now_family.filter(|f| !f.revoked) {
                if let Some(first) =
                    self.retried_refresh(client, params, &now_family, token, &digest)?
                {
                    return Ok(first);
                }
            }
            tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "refresh token used concurrently; revoking the family");
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
            expires_in: None,
        })
    }

    /// The first answer again, when `token` (digest `digest`) is the refresh token the family's
    /// last rotation retired, the client allows retries and the grace has not passed. The
    /// scope is checked first: a retry may not ask for more than the family holds, nor for
    /// other than what the first answer got. `None`: this is a reuse.
    fn retried_refresh(
        &self,
        client: &Client,
        params: &Params,
        family: &RefreshFamily,
        token: &str,
        digest: &str,
    ) -> Result<Option<Issued>, OAuthError> {
        let Some(retry) = &family.retry else {
            return Ok(None);
        };
        if client.refresh_retry_grace.is_zero()
            || !ct_eq(retry.digest.as_bytes(), digest.as_bytes())
            || retry.at + client.refresh_retry_grace.as_secs() < self.now()
        {
            return Ok(None);
        }
        let Some(first) = retry.open(token) else {
            return Ok(None);
        };
        let scope = self.resolve_scope(client, params.get("scope"), Some(&family.scope))?;
        if scope != first.scope {
            return Err(OAuthError::InvalidScope(
                "a retried refresh must ask for the scope its first use asked for".into(),
            ));
        }
        if params.get("resource") != first.resource.as_deref() {
            return Err(OAuthError::InvalidTarget(
                "a retried refresh must name the resource its first use named".into(),
            ));
        }
        tracing::info!(client_id = %client.client_id, "refresh token retried within its grace; the first answer is sent again");
        Ok(Some(Issued {
            access_token: first.access_token,
            refresh_token: Some(first.refresh_token),
            scope,
            record: family.latest.clone(),
            subject: family.subject.clone(),
            auth_time: family.auth_time,
            nonce: None,
            expires_in: Some(family.latest.access_exp.saturating_sub(self.now())),
        }))
    }
}
