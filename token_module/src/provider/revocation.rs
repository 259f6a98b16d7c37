//! Revoking what was issued: an access token goes on the denylist (an opaque one is also
//! deleted), a refresh-token family is tombstoned atomically with respect to rotation.

use std::time::Duration;

use super::{log_id, OAuthProvider};
use crate::error::OAuthError;
use crate::events::Event;
use crate::records::{store_key, IssuedTokens, RefreshFamily};

impl OAuthProvider {
    /// Revokes what a grant issued: the access token (denylisted until it expires, and
    /// deleted when opaque) and the whole refresh-token family.
    pub(crate) async fn revoke_issued(&self, issued: &IssuedTokens) -> Result<(), OAuthError> {
        self.deny_access_token(issued).await?;
        if let Some(family_id) = &issued.family_id {
            self.revoke_family(family_id).await?;
        }
        Ok(())
    }
    /// Denylists an access token until it expires (an opaque one is also deleted) and, in
    /// the same round trip, tells the other instances sharing the store, so that none of
    /// them reuses what it cached about the token. That news is best effort: one that is lost
    /// only leaves an instance relying on its reuse window (`denylist_cache`), as before
    /// events existed.
    pub(crate) async fn deny_access_token(&self, issued: &IssuedTokens) -> Result<(), OAuthError> {
        self.deny(issued, true).await
    }

    /// Denylists an access token its refresh-token family can no longer remember (see
    /// [`RefreshFamily::rotate_access`]), so that revoking the family later still covers it.
    /// Nothing was revoked, so nothing is announced: its client already holds a newer token,
    /// and the other instances see the denial within their reuse window.
    pub(crate) async fn retire_access_token(
        &self,
        issued: &IssuedTokens,
    ) -> Result<(), OAuthError> {
        self.deny(issued, false).await
    }

    async fn deny(&self, issued: &IssuedTokens, announce: bool) -> Result<(), OAuthError> {
        let remaining = issued.access_exp.saturating_sub(self.now());
        if remaining > 0 && !issued.access_jti.is_empty() {
            let key = store_key::denied_jti(&issued.access_jti);
            let ttl = Duration::from_secs(remaining);
            if announce {
                let event = Event::Revoked(&issued.access_jti).encode();
                if !self.store.put_and_publish(&key, b"1", ttl, &event).await? {
                    tracing::warn!("could not tell the other instances of a revocation; they see it within their reuse window");
                }
            } else {
                self.store.put(&key, b"1", ttl).await?;
            }
        }
        if let Some(key) = &issued.access_key {
            self.store.delete(key).await?;
        }
        // Only now: a validation racing this one re-reads the denylist after it was written.
        self.validator.forget_revoked(&issued.access_jti);
        Ok(())
    }

    /// Applies an event another instance (or this one) published through the store.
    pub fn apply_event(&self, event: &str) {
        match Event::parse(event) {
            Some(Event::Revoked(jti)) => self.validator.forget_revoked(jti),
            None => tracing::debug!("unknown store event ignored"),
        }
    }

    /// Events may have been missed (the subscription was lost, or is just starting): every
    /// cached "not revoked" answer is asked again.
    pub fn events_may_be_lost(&self) {
        self.validator.forget_not_revoked_answers();
    }
    /// A family's store key and record: under the digest of its id, or, for a family
    /// started before keys were digests, under the id itself (read while such families
    /// live, at most `refresh_token_ttl`). With no record, the key a new one goes under.
    pub(crate) async fn family_record(
        &self,
        family_id: &str,
    ) -> Result<(String, Option<Vec<u8>>), OAuthError> {
        let key = store_key::family(family_id);
        if let Some(raw) = self.store.get(&key).await? {
            return Ok((key, Some(raw)));
        }
        let legacy = store_key::legacy_family(family_id);
        match self.store.get(&legacy).await? {
            Some(raw) => Ok((legacy, Some(raw))),
            None => Ok((key, None)),
        }
    }

    /// Marks a family revoked (writing a tombstone if it does not exist yet) and revokes its
    /// latest access token, atomically with respect to a rotation: the tombstone replaces
    /// exactly the record whose latest access token was just denied (compare-and-swap). A
    /// refresh that rotates in between makes the swap fail, and the next round denies the
    /// access token that refresh issued; a refresh that comes after finds the tombstone, and
    /// one whose own swap loses denies its token itself. So whichever wins, no access token of
    /// the family outlives the revocation.
    pub(crate) async fn revoke_family(&self, family_id: &str) -> Result<(), OAuthError> {
        // Each lost round means a refresh rotated the family; a family rotates only with its
        // one current token, so contention ends quickly.
        const ROUNDS: usize = 16;
        let ttl = self.config.refresh_token_ttl;
        for _ in 0..ROUNDS {
            let tombstone = || {
                serde_json::to_vec(&RefreshFamily::tombstone(self.now() + ttl.as_secs()))
                    .map_err(|_| OAuthError::ServerError)
            };
            let (key, raw) = self.family_record(family_id).await?;
            let Some(raw) = raw else {
                if self.store.put_if_absent(&key, &tombstone()?, ttl).await? {
                    return Ok(());
                }
                continue;
            };
            let Ok(mut family) = serde_json::from_slice::<RefreshFamily>(&raw) else {
                // Unreadable: nothing in it can be denied, but it must not be used again.
                if self
                    .store
                    .compare_and_swap(&key, &raw, &tombstone()?, ttl)
                    .await?
                {
                    return Ok(());
                }
                continue;
            };
            for issued in family.access_tokens() {
                self.deny_access_token(issued).await?;
            }
            if family.revoked {
                return Ok(());
            }
            family.revoked = true;
            let value = serde_json::to_vec(&family).map_err(|_| OAuthError::ServerError)?;
            if self.store.compare_and_swap(&key, &raw, &value, ttl).await? {
                tracing::info!(family = %log_id(family_id), "refresh token family revoked");
                return Ok(());
            }
        }
        tracing::warn!(family = %log_id(family_id), "refresh token family could not be revoked: it kept changing");
        Err(OAuthError::TemporarilyUnavailable)
    }
}
