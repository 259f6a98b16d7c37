//! What the grants keep in the store, as JSON. Keys are derived from digests of the codes and
//! tokens (see [`crate::crypto::digest_hex`]), so the store never holds a usable secret.

use serde::{Deserialize, Serialize};

/// Who a token speaks for, when it speaks for a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Subject {
    /// `user_id` and `sub` claims.
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// The login name, when the user signed in here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// `code:<digest>`: an authorization code awaiting redemption.
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named it (then the token request must repeat it).
    pub redirect_uri_given: bool,
    pub scope: Vec<String>,
    pub subject: Subject,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<String>,
    /// Unix time the user authenticated.
    pub auth_time: u64,
}

/// What a token response handed out, so it can be revoked later.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct IssuedTokens {
    /// `jti` of the access token, for the denylist.
    pub access_jti: String,
    /// Unix expiry of the access token.
    pub access_exp: u64,
    /// Store key of an opaque access token, to delete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// Refresh-token family, if a refresh token was issued (never set on the tokens a
    /// family record lists: they are that family's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
}

impl IssuedTokens {
    /// As a family record lists it: without the family id, which is the record's own.
    pub fn listed(self) -> Self {
        Self {
            family_id: None,
            ..self
        }
    }
}

/// `code_used:<digest>`: what a redeemed code produced, kept so that a replay of the code can
/// revoke it (RFC 6749 4.1.2).
#[derive(Debug, Serialize, Deserialize)]
pub struct RedeemedCode {
    pub client_id: String,
    pub issued: IssuedTokens,
    /// The code's PKCE challenge: a replay must prove it knows the verifier before it may
    /// revoke anything.
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<String>,
}

/// `rtf:<family id>`: a refresh-token family. A refresh token starts with its family id (see
/// [`crate::crypto::refresh_token`]); the record holds the digest of the one token of the
/// family still valid. Rotation swaps the whole record atomically (compare-and-swap), so
/// exactly one use of the current token wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshFamily {
    pub client_id: String,
    /// The scope originally granted; refreshes may narrow it, never widen it.
    pub scope: Vec<String>,
    #[serde(default)]
    pub subject: Option<Subject>,
    /// Unix time the user authenticated, carried into every refresh.
    #[serde(default)]
    pub auth_time: Option<u64>,
    /// Digest of the one refresh token of the family that is still valid.
    pub current: String,
    /// Unix time the family dies, whatever happens.
    pub expires_at: u64,
    /// The latest access token issued from the family.
    pub latest: IssuedTokens,
    /// Access tokens issued from the family before `latest` that may still be alive (at most
    /// [`MAX_EARLIER_ACCESS_TOKENS`]), so that revoking the family denies every one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<IssuedTokens>,
    /// Set when reuse was detected or the family was revoked.
    #[serde(default)]
    pub revoked: bool,
    /// The answer that retired the previous refresh token, for a client that retries that
    /// token within its `refresh_retry_grace_seconds` because the answer was lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryAnswer>,
    /// The key that tags the family's tokens (see [`crate::crypto::refresh_token`]); none in
    /// a family started before tokens were tagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A rotation's answer, kept for a retry of the refresh token it retired. It is sealed with a
/// key derived from that retired token (see [`crate::crypto::seal`]): the store never holds
/// a usable token, and only the holder of the retired token can read the answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RetryAnswer {
    /// Digest of the retired refresh token.
    pub digest: String,
    /// Unix time of the rotation: a retry is honoured for the client's grace as configured
    /// now (a reload that shortens the grace applies to answers already kept).
    pub at: u64,
    /// [`RetryTokens`], sealed.
    pub sealed: String,
}

/// What a retry is handed again: the tokens of the first answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: Vec<String>,
    /// The `resource` the first request named.
    #[serde(default)]
    pub resource: Option<String>,
}

impl RetryAnswer {
    /// Seals `tokens` for a retry of `retired` (the refresh token used at `at`).
    pub fn seal(retired: &str, at: u64, tokens: &RetryTokens) -> Option<Self> {
        let plain = serde_json::to_vec(tokens).ok()?;
        Some(Self {
            digest: crate::crypto::digest_hex(retired),
            at,
            sealed: crate::crypto::seal(retired, &plain)?,
        })
    }

    /// The tokens, if `retired` is the token this answer was sealed for.
    pub fn open(&self, retired: &str) -> Option<RetryTokens> {
        let plain = crate::crypto::open(retired, &self.sealed)?;
        serde_json::from_slice(&plain).ok()
    }
}

/// How many earlier access tokens a family remembers. A client that refreshes more often than
/// that within one access-token lifetime has its oldest ones denied at once.
pub const MAX_EARLIER_ACCESS_TOKENS: usize = 32;

impl RefreshFamily {
    /// Makes `issued` the latest access token; the one it replaces is remembered while it
    /// lives. Returns the tokens pushed out over [`MAX_EARLIER_ACCESS_TOKENS`]: the caller
    /// denies them.
    pub fn rotate_access(&mut self, issued: IssuedTokens, now: u64) -> Vec<IssuedTokens> {
        // A record written before family ids were left out still names its family in `latest`.
        let previous = std::mem::replace(&mut self.latest, issued.listed()).listed();
        self.earlier.retain(|t| t.access_exp > now);
        if previous.access_exp > now {
            self.earlier.push(previous);
        }
        let excess = self.earlier.len().saturating_sub(MAX_EARLIER_ACCESS_TOKENS);
        self.earlier.drain(..excess).collect()
    }

    /// Whether `token` is one the family handed out (current or retired): tagged by its key,
    /// or, for a family started before tags, its current or last retired token. Only such a
    /// token may revoke the family; one that merely carries the family id may not.
    pub fn handed_out(&self, token: &str) -> bool {
        let digest = crate::crypto::digest_hex(token);
        self.key
            .as_deref()
            .is_some_and(|key| crate::crypto::is_family_token(token, key))
            || (!self.current.is_empty()
                && crate::crypto::ct_eq(self.current.as_bytes(), digest.as_bytes()))
            || self
                .retry
                .as_ref()
                .is_some_and(|r| crate::crypto::ct_eq(r.digest.as_bytes(), digest.as_bytes()))
    }

    /// Every access token of the family that may still be alive.
    pub fn access_tokens(&self) -> impl Iterator<Item = &IssuedTokens> {
        std::iter::once(&self.latest).chain(&self.earlier)
    }

    /// A revoked family that never held a token: what revoking an unknown family leaves, so a
    /// token of it still in flight is refused.
    pub fn tombstone(expires_at: u64) -> Self {
        Self {
            client_id: String::new(),
            scope: vec![],
            subject: None,
            auth_time: None,
            current: String::new(),
            expires_at,
            latest: IssuedTokens::default(),
            earlier: Vec::new(),
            revoked: true,
            retry: None,
            key: None,
        }
    }
}

/// `at:<digest>`: an opaque access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct OpaqueAccessToken {
    pub jti: String,
    pub client_id: String,
    pub scope: Vec<String>,
    #[serde(default)]
    pub subject: Option<Subject>,
    pub iat: u64,
    pub exp: u64,
    /// The audience a `resource` request bound it to (RFC 8707); none: any route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// `session:<digest>`: a user signed in on the sign-in page (the cookie holds the secret
/// whose digest names it).
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub username: String,
    /// Unix time the user signed in.
    pub auth_time: u64,
}

/// `consent:<digest>`: the scopes a user allowed a client (`consent: once`).
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub scopes: Vec<String>,
}

/// Store keys.
pub mod store_key {
    /// A sign-in session, by the digest of its cookie's secret.
    pub fn session(digest: &str) -> String {
        format!("session:{digest}")
    }
    /// What a user allowed a client, by a digest of both.
    pub fn consent(digest: &str) -> String {
        format!("consent:{digest}")
    }
    pub fn code(digest: &str) -> String {
        format!("code:{digest}")
    }
    pub fn redeemed_code(digest: &str) -> String {
        format!("code_used:{digest}")
    }
    /// A refresh-token family, named by a digest of its id: a reader of the key space
    /// learns no id a refresh token starts with.
    pub fn family(id: &str) -> String {
        format!("rtf:{}", &crate::crypto::digest_hex(id)[..32])
    }
    /// Where a family started before keys were digests lives (read until those expire).
    pub fn legacy_family(id: &str) -> String {
        format!("rtf:{id}")
    }
    pub fn opaque_access(digest: &str) -> String {
        format!("at:{digest}")
    }
    /// A revoked access token's `jti`, kept until the token would have expired.
    pub fn denied_jti(jti: &str) -> String {
        format!("deny:{jti}")
    }
    /// Failed authentications of one client or user (`kind`), from every address.
    pub fn failures(kind: &str, who: &str) -> String {
        format!("bf:{kind}:{who}")
    }
    /// Failed authentications from one address, of any account. The address is a hash tag,
    /// so this counter and [`failures_from`] share a Redis Cluster slot (read in one `MGET`).
    pub fn failures_at(ip: &str) -> String {
        format!("bf:{{{ip}}}:any")
    }
    /// What every failure counter of one address starts with.
    pub fn failures_prefix(ip: &str) -> String {
        format!("bf:{{{ip}}}:")
    }
    /// Failed authentications of one client or user from one address.
    pub fn failures_from(kind: &str, who: &str, ip: &str) -> String {
        format!("bf:{{{ip}}}:{kind}:{who}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(jti: &str, exp: u64) -> IssuedTokens {
        IssuedTokens {
            access_jti: jti.into(),
            access_exp: exp,
            ..IssuedTokens::default()
        }
    }

    #[test]
    fn a_family_remembers_its_live_access_tokens_within_a_bound() {
        let mut family = RefreshFamily::tombstone(1000);
        family.latest = access("a0", 100);
        assert!(family.rotate_access(access("a1", 150), 10).is_empty());
        let jtis = |f: &RefreshFamily| {
            f.access_tokens()
                .map(|t| t.access_jti.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(jtis(&family), ["a1", "a0"]);
        // An expired one is forgotten.
        assert!(family.rotate_access(access("a2", 200), 120).is_empty());
        assert_eq!(jtis(&family), ["a2", "a1"]);
        let mut pushed_out = Vec::new();
        for i in 3..(MAX_EARLIER_ACCESS_TOKENS + 5) {
            pushed_out.extend(family.rotate_access(access(&format!("a{i}"), 500), 130));
        }
        assert_eq!(family.earlier.len(), MAX_EARLIER_ACCESS_TOKENS);
        let out: Vec<&str> = pushed_out.iter().map(|t| t.access_jti.as_str()).collect();
        assert_eq!(out, ["a1", "a2", "a3"]);
    }

    /// A family record is read and rewritten on every refresh: its tokens carry only what
    /// denying them needs, and records written before that still read.
    #[test]
    fn a_family_lists_its_tokens_without_the_family_id() {
        let mut family = RefreshFamily::tombstone(1000);
        let with_family = |jti: &str| IssuedTokens {
            family_id: Some("f1".into()),
            ..access(jti, 500)
        };
        family.latest = with_family("a0");
        family.rotate_access(with_family("a1"), 10);
        let json = serde_json::to_string(&family).expect("json");
        assert!(
            !json.contains("family_id") && !json.contains("access_key"),
            "{json}"
        );
        let earlier = r#"{"access_jti":"a0","access_exp":500,"access_key":null,"family_id":"f1"}"#;
        let old = json.replace(r#"{"access_jti":"a0","access_exp":500}"#, earlier);
        assert_ne!(old, json);
        let read: RefreshFamily = serde_json::from_str(&old).expect("an earlier record");
        assert_eq!(read.earlier[0].family_id.as_deref(), Some("f1"));
    }
}
