//! What the grants keep in the store, as JSON. Keys are derived from digests of the codes and
//! tokens (see [`crate::random::digest_hex`]), so the store never holds a usable secret.

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
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct IssuedTokens {
    /// `jti` of the access token, for the denylist.
    pub access_jti: String,
    /// Unix expiry of the access token.
    pub access_exp: u64,
    /// Store key of an opaque access token, to delete it.
    #[serde(default)]
    pub access_key: Option<String>,
    /// Refresh-token family, if a refresh token was issued.
    #[serde(default)]
    pub family_id: Option<String>,
}

/// `code_used:<digest>`: what a redeemed code produced, kept so that a replay of the code can
/// revoke it (RFC 6749 4.1.2).
#[derive(Debug, Serialize, Deserialize)]
pub struct RedeemedCode {
    pub client_id: String,
    pub issued: IssuedTokens,
}

/// `rtf:<family id>`: a refresh-token family. A refresh token starts with its family id (see
/// [`crate::random::refresh_token`]); the record holds the digest of the one token of the
/// family still valid. Rotation swaps the whole record atomically (compare-and-swap), so
/// exactly one use of the current token wins.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Set when reuse was detected or the family was revoked.
    #[serde(default)]
    pub revoked: bool,
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
}

/// Store keys.
pub mod keys {
    pub fn code(digest: &str) -> String {
        format!("code:{digest}")
    }
    pub fn redeemed_code(digest: &str) -> String {
        format!("code_used:{digest}")
    }
    pub fn family(id: &str) -> String {
        format!("rtf:{id}")
    }
    pub fn opaque_access(digest: &str) -> String {
        format!("at:{digest}")
    }
    /// A revoked access token's `jti`, kept until the token would have expired.
    pub fn denied_jti(jti: &str) -> String {
        format!("deny:{jti}")
    }
    pub fn failures(kind: &str, who: &str) -> String {
        format!("bf:{kind}:{who}")
    }
}
