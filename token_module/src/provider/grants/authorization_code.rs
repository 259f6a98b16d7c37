//! RFC 6749 4.1.3 with PKCE (RFC 7636): a code is redeemed once, by the client it was issued
//! to, with the redirect URI and verifier it was bound to; a request that fails those checks
//! leaves the code to its client (it is checked, then taken only as it was read); a replay
//! that proves possession revokes what the code produced.

use crate::config::Client;
use crate::crypto::{self, ct_eq};
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::Issued;
use crate::provider::OAuthProvider;
use crate::records::{store_key, CodeRecord, RedeemedCode};

impl OAuthProvider {
    /// RFC 6749 4.1.3 with RFC 7636: redeems a code, once.
    pub(in crate::provider) async fn authorization_code(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let code = params.require("code")?;
        let digest = crypto::digest_hex(code);
        let invalid = || {
            OAuthError::InvalidGrant(
                "the authorization code is invalid, expired or already used".into(),
            )
        };
        let key = store_key::code(&digest);
        let Some(raw) = self.store.get(&key).await? else {
            self.revoke_replayed_code(client, &digest, params.get("code_verifier"))
                .await?;
            return Err(invalid());
        };
        let record: CodeRecord = serde_json::from_slice(&raw).map_err(|_| invalid())?;
        // Checked before it is taken: a wrong client, redirect URI or verifier leaves the
        // code to its own client.
        check_redemption(
            &record,
            client,
            params.get("redirect_uri"),
            params.get("code_verifier"),
        )?;
        // Taken only as it was checked: of concurrent redemptions exactly one gets it.
        if !self.store.take_if(&key, &raw).await? {
            return Err(invalid());
        }

        // Record what this code produces before producing the refresh token, so a replay
        // racing with this redemption can revoke it.
        let pending = self
            .begin_issue(
                client,
                record.scope,
                Some(record.subject),
                Some(record.auth_time),
                params.get("resource"),
            )
            .await?;
        let redeemed = RedeemedCode {
            client_id: client.client_id.clone(),
            issued: pending.record().clone(),
            code_challenge: record.code_challenge,
            code_challenge_method: record.code_challenge_method,
        };
        let keep = self.config.refresh_token_ttl.max(client.access_token_ttl);
        let value = serde_json::to_vec(&redeemed).map_err(|_| OAuthError::ServerError)?;
        self.store
            .put(&store_key::redeemed_code(&digest), &value, keep)
            .await?;
        let mut issued = self.finish_issue(client, pending).await?;
        issued.nonce = record.nonce;
        Ok(issued)
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
        let key = store_key::redeemed_code(digest);
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(());
        };
        let Ok(redeemed) = serde_json::from_slice::<RedeemedCode>(&raw) else {
            return Ok(());
        };
        match decide_replay(&redeemed, client, verifier) {
            Replay::Revoke => {}
            Replay::AnotherClient => return Ok(()),
            Replay::Unproven => {
                tracing::warn!(client_id = %client.client_id, "authorization code replayed without proof of possession; nothing revoked");
                return Ok(());
            }
        }
        tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its tokens");
        self.revoke_issued(&redeemed.issued).await?;
        self.store.delete(&key).await?;
        Ok(())
    }
}

/// Whether `client` may redeem the code `record` describes, with the request's
/// `redirect_uri` and `verifier` (RFC 6749 4.1.3, RFC 7636 4.6). An error leaves the code to
/// its own client.
pub(crate) fn check_redemption(
    record: &CodeRecord,
    client: &Client,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if record.client_id != client.client_id {
        return Err(OAuthError::InvalidGrant(
            "the authorization code was issued to another client".into(),
        ));
    }
    match redirect_uri {
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
        verifier,
    )
}

/// What a used code presented again does.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Its holder came back: revoke what it produced (RFC 6749 4.1.2).
    Revoke,
    /// Another client presented it: nothing revoked.
    AnotherClient,
    /// Its client, without the proof only the holder has: nothing revoked.
    Unproven,
}

/// A replay may revoke only when it proves it comes from the code's holder (RFC 9700
/// 2.1.1): the PKCE verifier when the code had a challenge, else the client's authentication,
/// which a public client does not have.
pub(crate) fn decide_replay(
    redeemed: &RedeemedCode,
    client: &Client,
    verifier: Option<&str>,
) -> Replay {
    if redeemed.client_id != client.client_id {
        return Replay::AnotherClient;
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
    if proven {
        Replay::Revoke
    } else {
        Replay::Unproven
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
            if !crate::provider::authorize::is_pkce_value(verifier) {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier must be 43 to 128 unreserved characters".into(),
                ));
            }
            let computed = match method {
                Some("plain") => verifier.to_string(),
                _ => crypto::pkce_s256(verifier),
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

#[cfg(test)]
mod tests;
