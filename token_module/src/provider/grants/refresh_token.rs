//! RFC 6749 6 with rotation: each refresh token works once; presenting a retired one revokes
//! its whole family (RFC 6819 5.2.2.3) — unless the client allows a retry grace and the
//! retired token is presented again within it, as a client whose answer was lost does: the
//! retry gets the first answer again, so nothing is issued twice.
//!
//! [`decide`] is the whole policy, a pure function of the family as read, the request, the
//! client and the time; [`OAuthProvider::refresh_token`] reads, decides, and writes the
//! rotation with one compare-and-swap, deciding again on the record that beat it.

use std::time::Duration;

use crate::config::Client;
use crate::crypto::{self, ct_eq};
use crate::error::OAuthError;
use crate::form::Params;
use crate::provider::issuance::{resolve_scope, Issued};
use crate::provider::{log_id, OAuthProvider};
use crate::records::{RefreshFamily, RetryAnswer, RetryTokens};

/// A refresh request, as the decision sees it.
pub(crate) struct Presented<'a> {
    pub token: &'a str,
    /// The token's digest, as families record theirs.
    pub digest: &'a str,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

/// What to do with a presented refresh token. (No `Debug`: a replay holds tokens.)
pub(crate) enum Decision {
    /// The family's current token: rotate to a new one granting `scope`; the record lives
    /// `remaining` more.
    Rotate {
        scope: Vec<String>,
        remaining: Duration,
    },
    /// The token the family's last rotation retired, again within the client's grace and
    /// asking for what it asked first: the first answer again.
    Replay(Box<Issued>),
    /// The retired token within its grace, but asking for another scope or resource: refused,
    /// the family untouched (a retry must be the same request).
    RetryMismatch(OAuthError),
    /// A retired token the family handed out, outside any grace: someone holds a copy, so the
    /// family is revoked (RFC 6819 5.2.2.3).
    Reuse,
    /// Refused, the family untouched: unknown, revoked or expired, another client's, or a
    /// token the family never handed out (a guess must not sign its holder out).
    Refuse(OAuthError),
}

/// The refusal every unusable refresh token gets, whatever the reason.
pub(crate) fn invalid() -> OAuthError {
    OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into())
}

/// The decision for `presented` by `client` at `now`, given its family as read (`None`: no
/// record, or one that does not parse).
pub(crate) fn decide(
    family: Option<&RefreshFamily>,
    presented: &Presented<'_>,
    client: &Client,
    now: u64,
) -> Decision {
    let Some(family) = family.filter(|f| !f.revoked) else {
        return Decision::Refuse(invalid());
    };
    if family.client_id != client.client_id {
        return Decision::Refuse(OAuthError::InvalidGrant(
            "the refresh token was issued to another client".into(),
        ));
    }
    if !ct_eq(family.current.as_bytes(), presented.digest.as_bytes()) {
        return match retry(family, presented, client, now) {
            Some(Ok(first)) => Decision::Replay(Box::new(first)),
            Some(Err(mismatch)) => Decision::RetryMismatch(mismatch),
            None if family.handed_out(presented.token) => Decision::Reuse,
            None => Decision::Refuse(invalid()),
        };
    }
    let scope = match resolve_scope(client, presented.scope, Some(&family.scope)) {
        Ok(scope) => scope,
        Err(e) => return Decision::Refuse(e),
    };
    let remaining = Duration::from_secs(family.expires_at.saturating_sub(now));
    if remaining.is_zero() {
        return Decision::Refuse(invalid());
    }
    Decision::Rotate { scope, remaining }
}

/// The first answer again, when the presented token is the one the family's last rotation
/// retired, the client allows retries and the grace has not passed; an error when such a
/// retry asks for another scope or resource than its first use. `None`: not a retry.
fn retry(
    family: &RefreshFamily,
    presented: &Presented<'_>,
    client: &Client,
    now: u64,
) -> Option<Result<Issued, OAuthError>> {
    let retry = family.retry.as_ref()?;
    if client.refresh_retry_grace.is_zero()
        || !ct_eq(retry.digest.as_bytes(), presented.digest.as_bytes())
        || retry.at + client.refresh_retry_grace.as_secs() < now
    {
        return None;
    }
    let first = retry.open(presented.token)?;
    let scope = match resolve_scope(client, presented.scope, Some(&family.scope)) {
        Ok(scope) => scope,
        Err(e) => return Some(Err(e)),
    };
    if scope != first.scope {
        return Some(Err(OAuthError::InvalidScope(
            "a retried refresh must ask for the scope its first use asked for".into(),
        )));
    }
    if presented.resource != first.resource.as_deref() {
        return Some(Err(OAuthError::InvalidTarget(
            "a retried refresh must name the resource its first use named".into(),
        )));
    }
    Some(Ok(Issued {
        access_token: first.access_token,
        refresh_token: Some(first.refresh_token),
        scope,
        record: family.latest.clone(),
        subject: family.subject.clone(),
        auth_time: family.auth_time,
        nonce: None,
        expires_in: Some(family.latest.access_exp.saturating_sub(now)),
    }))
}

impl OAuthProvider {
    /// Rotates the family of the presented refresh token, as [`decide`] says.
    pub(in crate::provider) async fn refresh_token(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let token = params.require("refresh_token")?;
        let digest = crypto::digest_hex(token);
        let presented = Presented {
            token,
            digest: &digest,
            scope: params.get("scope"),
            resource: params.get("resource"),
        };
        let family_id = crypto::family_of(token).ok_or_else(invalid)?.to_string();
        let (family_key, raw) = self.family_record(&family_id).await?;
        let family = raw
            .as_deref()
            .and_then(|raw| serde_json::from_slice::<RefreshFamily>(raw).ok());
        match decide(family.as_ref(), &presented, client, self.now()) {
            Decision::Rotate { scope, remaining } => {
                let (Some(family), Some(raw)) = (family, raw) else {
                    return Err(OAuthError::ServerError);
                };
                let read = FamilyAsRead {
                    id: family_id,
                    key: family_key,
                    raw,
                    family,
                };
                self.rotate(client, &presented, read, scope, remaining)
                    .await
            }
            Decision::Replay(first) => {
                tracing::info!(client_id = %client.client_id, "refresh token retried within its grace; the first answer is sent again");
                Ok(*first)
            }
            Decision::RetryMismatch(e) | Decision::Refuse(e) => Err(e),
            Decision::Reuse => {
                tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "retired refresh token reused; revoking the family");
                self.revoke_family(&family_id).await?;
                Err(invalid())
            }
        }
    }

    /// Writes a rotation: the new record (new current token, new latest access token and,
    /// with a retry grace, the sealed answer for a retry) replaces the one read in one
    /// compare-and-swap, so of two uses of one token exactly one rotates. The loser decides
    /// again on the record that won: a retry within the grace gets the winner's answer, any
    /// other use is a reuse.
    async fn rotate(
        &self,
        client: &Client,
        presented: &Presented<'_>,
        read: FamilyAsRead,
        scope: Vec<String>,
        remaining: Duration,
    ) -> Result<Issued, OAuthError> {
        let FamilyAsRead {
            id: family_id,
            key: family_key,
            raw,
            family,
        } = read;
        // A family started before tokens were tagged gets its key now.
        let key = family.key.clone().unwrap_or_else(crypto::family_key);
        let new_token = crypto::refresh_token(&family_id, &key);
        let (access_token, mut issued) = self
            .issue_access_token(client, &scope, family.subject.as_ref(), presented.resource)
            .await?;
        issued.family_id = Some(family_id.clone());
        let mut rotated = family.clone();
        rotated.current = crypto::digest_hex(&new_token);
        rotated.key = Some(key);
        rotated.retry = if client.refresh_retry_grace.is_zero() {
            None
        } else {
            let tokens = RetryTokens {
                access_token: access_token.clone(),
                refresh_token: new_token.clone(),
                scope: scope.clone(),
                resource: presented.resource.map(str::to_string),
            };
            Some(
                RetryAnswer::seal(presented.token, self.now(), &tokens)
                    .ok_or(OAuthError::ServerError)?,
            )
        };
        for superseded in rotated.rotate_access(issued.clone(), self.now()) {
            self.retire_access_token(&superseded).await?;
        }
        let new_value = serde_json::to_vec(&rotated).map_err(|_| OAuthError::ServerError)?;
        if self
            .store
            .compare_and_swap(&family_key, &raw, &new_value, remaining)
            .await?
        {
            return Ok(Issued {
                access_token,
                refresh_token: Some(new_token),
                scope,
                record: issued,
                subject: family.subject,
                auth_time: family.auth_time,
                nonce: None,
                expires_in: None,
            });
        }
        // Another request rotated (or revoked) the family between our read and swap: this
        // token was used twice. What this request issued is never handed out.
        self.deny_access_token(&issued).await?;
        let now_family = self
            .store
            .get(&family_key)
            .await?
            .and_then(|raw| serde_json::from_slice::<RefreshFamily>(&raw).ok());
        match decide(now_family.as_ref(), presented, client, self.now()) {
            Decision::Replay(first) => {
                tracing::info!(client_id = %client.client_id, "refresh token sent twice at once; the second gets the first answer");
                Ok(*first)
            }
            Decision::RetryMismatch(e) => Err(e),
            _ => {
                tracing::warn!(client_id = %client.client_id, family = %log_id(&family_id), "refresh token used concurrently; revoking the family");
                self.revoke_family(&family_id).await?;
                Err(invalid())
            }
        }
    }
}

/// A family record as read, with what its compare-and-swap needs.
struct FamilyAsRead {
    id: String,
    key: String,
    raw: Vec<u8>,
    family: RefreshFamily,
}

#[cfg(test)]
mod tests;
