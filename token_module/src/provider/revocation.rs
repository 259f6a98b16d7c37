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
            let (key, raw) = self.family_record(family_id).await?;
            let step = decide_revocation(raw.as_deref(), self.now() + ttl.as_secs());
            for issued in &step.deny {
                self.deny_access_token(issued).await?;
            }
            let Some(value) = step.write else {
                return Ok(());
            };
            let value = serde_json::to_vec(&value).map_err(|_| OAuthError::ServerError)?;
            let written = match &raw {
                None => self.store.put_if_absent(&key, &value, ttl).await?,
                Some(raw) => self.store.compare_and_swap(&key, raw, &value, ttl).await?,
            };
            if written {
                tracing::info!(family = %log_id(family_id), "refresh token family revoked");
                return Ok(());
            }
        }
        tracing::warn!(family = %log_id(family_id), "refresh token family could not be revoked: it kept changing");
        Err(OAuthError::TemporarilyUnavailable)
    }
}

/// One round of revoking a family: the access tokens to deny first, then the record to write
/// in place of the one read (`None`: nothing left to write, it was already revoked).
#[derive(Debug, PartialEq)]
pub(crate) struct RevocationStep {
    pub deny: Vec<IssuedTokens>,
    pub write: Option<RefreshFamily>,
}

/// What revoking a family does with its record as read (`raw`; `None`: no record). A record
/// that does not parse holds nothing to deny but must not be used again; one already revoked
/// still has its tokens denied (a revocation may have stopped halfway).
pub(crate) fn decide_revocation(raw: Option<&[u8]>, tombstone_until: u64) -> RevocationStep {
    let family = raw.map(serde_json::from_slice::<RefreshFamily>);
    match family {
        None | Some(Err(_)) => RevocationStep {
            deny: vec![],
            write: Some(RefreshFamily::tombstone(tombstone_until)),
        },
        Some(Ok(family)) => RevocationStep {
            deny: family.access_tokens().cloned().collect(),
            write: (!family.revoked).then_some(RefreshFamily {
                revoked: true,
                ..family
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(jti: &str) -> IssuedTokens {
        IssuedTokens {
            access_jti: jti.into(),
            access_exp: 10,
            ..IssuedTokens::default()
        }
    }

    fn family(revoked: bool) -> RefreshFamily {
        RefreshFamily {
            client_id: "app".into(),
            latest: issued("latest"),
            earlier: vec![issued("earlier")],
            revoked,
            ..RefreshFamily::tombstone(99)
        }
    }

    fn jtis(step: &RevocationStep) -> Vec<&str> {
        step.deny.iter().map(|i| i.access_jti.as_str()).collect()
    }

    #[test]
    fn revoking_denies_every_token_then_marks_the_record() {
        let live = serde_json::to_vec(&family(false)).expect("json");
        let step = decide_revocation(Some(&live), 500);
        assert_eq!(jtis(&step), ["latest", "earlier"]);
        let written = step.write.expect("marked");
        assert!(written.revoked);
        assert_eq!(
            (written.client_id.as_str(), written.expires_at),
            ("app", 99),
            "kept as it was"
        );
    }

    #[test]
    fn a_revoked_family_is_denied_again_and_left_as_it_is() {
        let revoked = serde_json::to_vec(&family(true)).expect("json");
        let step = decide_revocation(Some(&revoked), 500);
        assert_eq!(jtis(&step), ["latest", "earlier"]);
        assert_eq!(step.write, None);
    }

    #[test]
    fn no_record_or_an_unreadable_one_becomes_a_tombstone() {
        for raw in [None, Some(&b"not json"[..]), Some(&b"{}"[..])] {
            let step = decide_revocation(raw, 500);
            assert!(step.deny.is_empty(), "{raw:?}");
            let written = step.write.expect("tombstone");
            assert!(written.revoked && written.current.is_empty());
            assert_eq!(written.expires_at, 500);
        }
    }
}
