//! OAuth configuration: clients, users, signing keys and endpoint settings.
//!
//! [`file`] mirrors the `oauth:` section of the gateway's YAML (unknown keys are errors, every
//! field documents its default); [`OAuthConfig::from_file`] validates it into the types the
//! grants use. Secrets and passwords exist here only as argon2 PHC hashes.

use std::collections::HashMap;
use std::time::Duration;

use crate::keys::KeySet;
use crate::secrets::PasswordHash;

/// A problem in the `oauth` section: the key (relative to `oauth.`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

pub mod file;
mod validator;

pub use validator::parse_origin;

/// A grant type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    AuthorizationCode,
    ClientCredentials,
    Password,
    RefreshToken,
    /// The light-oauth2 custom grant: a trusted client names the user it acts for.
    ClientAuthenticatedUser,
}

impl Grant {
    pub const ALL: [Grant; 5] = [
        Grant::AuthorizationCode,
        Grant::ClientCredentials,
        Grant::Password,
        Grant::RefreshToken,
        Grant::ClientAuthenticatedUser,
    ];

    /// The `grant_type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials => "client_credentials",
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::ClientAuthenticatedUser => "client_authenticated_user",
        }
    }

    pub fn parse(s: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// How a client's access tokens look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// Signed JWT, validated by its signature.
    Jwt,
    /// Random hex, validated by a store lookup.
    Opaque,
}

/// The shape of a client's JWT access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProfile {
    /// RFC 9068: header `typ: at+jwt` (required when validating, RFC 8725 explicit typing),
    /// `sub` (the user, or the client for `client_credentials`), `scope` as one
    /// space-separated string.
    Rfc9068,
    /// The light-oauth2 seed's: no `typ`, `user_id` and `sub` for users, `scope` as an array.
    LightOAuth2,
}

/// A registered client.
#[derive(Debug)]
pub struct Client {
    pub client_id: String,
    pub secret_hash: Option<PasswordHash>,
    pub public: bool,
    pub password_grant_without_secret: bool,
    pub grants: Vec<Grant>,
    pub scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub token_format: TokenFormat,
    pub token_profile: TokenProfile,
    pub access_token_ttl: Duration,
    pub issuer: String,
    pub audience: String,
    pub token_type: String,
    pub trusted: bool,
    pub allow_plain_pkce: bool,
    pub id_token_hs256: bool,
    /// Browser origins allowed to call the token, revoke and userinfo endpoints (CORS),
    /// in the serialized form browsers send.
    pub allowed_origins: Vec<String>,
    /// How long a retried refresh token gets its first answer again (zero: never).
    pub refresh_retry_grace: Duration,
    /// The name users see (its client_id unless configured).
    pub name: String,
    /// An https URL of its logo.
    pub logo_uri: Option<String>,
    pub consent: Consent,
    /// Where the logout endpoint may send a user back to, exactly.
    pub post_logout_redirect_uris: Vec<String>,
}

/// Whether users are asked to allow what a client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    /// A first-party client: never asked.
    Never,
    /// Asked the first time and whenever the client asks for more.
    Once,
    /// Asked at every authorization.
    Required,
}

impl Client {
    pub fn allows(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
    }

    /// A confidential client of every grant, scopes `read` and `write`, no retry grace: the
    /// decision tests' starting point.
    #[cfg(test)]
    pub(crate) fn for_tests(client_id: &str) -> Self {
        Self {
            client_id: client_id.into(),
            secret_hash: None,
            public: false,
            password_grant_without_secret: false,
            grants: vec![
                Grant::AuthorizationCode,
                Grant::ClientCredentials,
                Grant::Password,
                Grant::RefreshToken,
            ],
            scopes: vec!["read".into(), "write".into()],
            default_scopes: vec!["read".into()],
            redirect_uris: vec!["https://app.example/cb".into()],
            token_format: TokenFormat::Jwt,
            token_profile: TokenProfile::Rfc9068,
            access_token_ttl: Duration::from_secs(300),
            issuer: "https://issuer.example".into(),
            audience: "api".into(),
            token_type: "Bearer".into(),
            trusted: false,
            allow_plain_pkce: false,
            id_token_hs256: false,
            allowed_origins: vec![],
            refresh_retry_grace: Duration::ZERO,
            name: client_id.into(),
            logo_uri: None,
            consent: Consent::Never,
            post_logout_redirect_uris: vec![],
        }
    }
}

/// A user who can sign in.
#[derive(Debug)]
pub struct User {
    pub username: String,
    pub password_hash: PasswordHash,
    pub user_id: String,
    pub user_type: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The validated OAuth configuration.
#[derive(Debug)]
pub struct OAuthConfig {
    /// The OpenID issuer: an http(s) URL without a trailing slash.
    pub issuer: String,
    pub token_path: String,
    pub authorize_path: String,
    pub jwks_path: String,
    pub revoke_path: String,
    pub introspect_path: String,
    pub userinfo_path: String,
    pub id_token_ttl: Duration,
    pub leeway: Duration,
    pub token_cache_entries: usize,
    pub denylist_cache: Duration,
    pub max_body_bytes: usize,
    pub code_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub max_failures: u64,
    pub account_max_failures: u64,
    pub max_failure_delay: Duration,
    pub failure_window: Duration,
    pub keys: KeySet,
    pub clients: HashMap<String, Client>,
    pub users: HashMap<String, User>,
    /// Audiences of the routes in force (`routes[].audience`): a token request may name one as
    /// its `resource` (RFC 8707) and gets an access token for that audience only. Set by the
    /// gateway from its route table, so a reload updates it.
    pub resources: Vec<String>,
    /// Scopes the routes in force require, for discovery's `scopes_supported`.
    pub route_scopes: Vec<String>,
    pub logout_path: String,
    /// How long a sign-in session lasts; zero: no sessions.
    pub session_ttl: Duration,
    /// What scopes let a client do, in words.
    pub scope_descriptions: HashMap<String, String>,
    /// The sign-in and consent page.
    pub pages: crate::pages::Pages,
}
