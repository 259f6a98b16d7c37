//! The file format of the `oauth:` section.
//!
//! These structs mirror the YAML exactly: unknown keys are errors and every field documents
//! its default. Only the configuration loaders read them: the rest of the code sees the
//! validated types of `mod.rs`, built from these.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth {
    /// Public base URL of the gateway; the OpenID issuer. Default: none.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Paths of the endpoints. Default: see [`Endpoints`].
    #[serde(default)]
    pub endpoints: Endpoints,
    /// Largest token-request body read, in bytes; larger gets 413. Default: 65536.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Lifetime of an authorization code. Default: 600.
    #[serde(default = "default_code_ttl")]
    pub code_ttl_seconds: u64,
    /// Lifetime of a refresh-token family from its first grant. Default: 1209600 (14 days).
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_seconds: u64,
    /// Brute-force limits. Default: see [`BruteForce`].
    #[serde(default)]
    pub brute_force: BruteForce,
    /// Lifetime of an id_token. Default: 3600.
    #[serde(default = "default_access_ttl")]
    pub id_token_ttl_seconds: u64,
    /// Clock skew tolerated on `exp` / `nbf` when validating tokens. Default: 60.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Verified access tokens remembered (so a token seen again costs no signature check).
    /// Default: 100000.
    #[serde(default = "default_cache_entries")]
    pub token_cache_entries: usize,
    /// How long a "not revoked" answer from the store is reused before asking again, in
    /// milliseconds; 0 asks on every request. Revocations through this instance take
    /// effect at once either way. Default: 1000.
    #[serde(default = "default_denylist_cache_ms")]
    pub denylist_cache_ms: u64,
    /// Signing keys; exactly one `active`. Required.
    pub keys: Vec<Key>,
    /// Registered clients. Required.
    pub clients: Vec<Client>,
    /// Users for the password and authorization-code grants. Default: none.
    #[serde(default)]
    pub users: Vec<User>,
    /// How long a user who signed in on the sign-in page stays signed in (a cookie bound to
    /// a record in the store), so other authorizations within it ask for no password again;
    /// 0 turns sessions off. Default: 28800 (8 hours).
    #[serde(default = "default_session_ttl")]
    pub session_ttl_seconds: u64,
    /// A template file replacing the built-in sign-in and consent page (minijinja syntax,
    /// every value escaped for HTML; see the built-in one for the variables). Default: the
    /// built-in page.
    #[serde(default)]
    pub sign_in_template: Option<String>,
    /// What each scope lets a client do, in words, shown on the consent page
    /// (`{petstore.r: "See your pets"}`). Default: none (built-in words for `openid`,
    /// `profile`, `email`, `offline_access`; the scope name for others).
    #[serde(default)]
    pub scope_descriptions: std::collections::HashMap<String, String>,
}

fn default_session_ttl() -> u64 {
    8 * 3600
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_code_ttl() -> u64 {
    600
}
fn default_refresh_ttl() -> u64 {
    14 * 24 * 3600
}
fn default_access_ttl() -> u64 {
    3600
}
fn default_denylist_cache_ms() -> u64 {
    1000
}
fn default_leeway() -> u64 {
    60
}
fn default_cache_entries() -> usize {
    100_000
}
fn default_token_type() -> String {
    "Bearer".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Endpoints {
    /// Default: `/oauth2/token`.
    pub token: String,
    /// Default: `/oauth2/authorize`.
    pub authorize: String,
    /// The JWKS document (also served at `/.well-known/jwks.json`). Default: `/oauth2/jwks`.
    pub jwks: String,
    /// RFC 7009 revocation. Default: `/oauth2/revoke`.
    pub revoke: String,
    /// RFC 7662 introspection. Default: `/oauth2/introspect`.
    pub introspect: String,
    /// OpenID Connect userinfo. Default: `/oauth2/userinfo`.
    pub userinfo: String,
    /// OpenID Connect RP-initiated logout (ends the sign-in session). Default:
    /// `/oauth2/logout`.
    pub logout: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            token: "/oauth2/token".into(),
            authorize: "/oauth2/authorize".into(),
            jwks: "/oauth2/jwks".into(),
            revoke: "/oauth2/revoke".into(),
            introspect: "/oauth2/introspect".into(),
            userinfo: "/oauth2/userinfo".into(),
            logout: "/oauth2/logout".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BruteForce {
    /// Failed client authentications or password logins allowed per (client_id or
    /// username, source address) and per source address within the window; past it that
    /// address gets 429 for that account. Default: 10.
    pub max_failures: u64,
    /// Failures per client_id or username from all addresses together past which every
    /// attempt on that account is slowed down (never refused, so that no one can lock a
    /// user out). Default: ten times `max_failures`.
    pub account_max_failures: Option<u64>,
    /// The longest such slow-down, in milliseconds. Default: 5000.
    pub max_delay_ms: u64,
    /// The counting window, from the first failure. Default: 300.
    pub window_seconds: u64,
}

impl Default for BruteForce {
    fn default() -> Self {
        Self {
            max_failures: 10,
            account_max_failures: None,
            max_delay_ms: 5000,
            window_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// The `kid` header of tokens it signs. Required.
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`. Default: `RS256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// PKCS#8 PEM private key (PKCS#1 accepted for RSA). Required.
    pub private_key: String,
    /// Signs new tokens (exactly one key is active). Default: false.
    #[serde(default)]
    pub active: bool,
}

fn default_algorithm() -> String {
    "RS256".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Required.
    pub client_id: String,
    /// argon2 PHC hash of the secret (`tollgate hash-secret`). Required unless `public`.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// A public client has no secret and must use PKCE. Default: false.
    #[serde(default)]
    pub public: bool,
    /// Allow the password grant with no client secret (the EQdkp seed). Default: false.
    #[serde(default)]
    pub password_grant_without_secret: bool,
    /// Grants it may use: authorization_code, client_credentials, password,
    /// refresh_token, client_authenticated_user. Required.
    pub grants: Vec<String>,
    /// Scopes it may request. Required.
    pub scopes: Vec<String>,
    /// Scopes granted when a request names none. Default: all of `scopes`.
    #[serde(default)]
    pub default_scopes: Option<Vec<String>>,
    /// Exact redirect URIs for the authorization-code grant. Default: none.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `jwt` or `opaque` access tokens. Default: `jwt`.
    #[serde(default = "default_token_format")]
    pub token_format: String,
    /// The shape of its JWT access tokens: `rfc9068` (the IETF profile standard resource
    /// servers expect: header `typ: at+jwt`, `sub`, `scope` as one string) or
    /// `light-oauth2` (the light-oauth2 seed's: no `typ`, `user_id`, `scope` as an
    /// array). Default: `rfc9068`.
    #[serde(default = "default_token_profile")]
    pub token_profile: String,
    /// Access-token lifetime. Default: 3600.
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_seconds: u64,
    /// `iss` of its JWT access tokens. Default: `oauth.issuer`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// `aud` of its JWT access tokens. Default: its client_id.
    #[serde(default)]
    pub audience: Option<String>,
    /// `token_type` in responses. Default: `Bearer`.
    #[serde(default = "default_token_type")]
    pub token_type: String,
    /// May use the custom `client_authenticated_user` grant. Default: false.
    #[serde(default)]
    pub trusted: bool,
    /// Accept `code_challenge_method=plain`. Default: false (S256 only).
    #[serde(default)]
    pub allow_plain_pkce: bool,
    /// Sign its id_tokens HS256 with its own client secret (as the EQdkp seed's are) when
    /// the request presented the secret; otherwise the active key signs them.
    /// Default: false.
    #[serde(default)]
    pub id_token_hs256: bool,
    /// Browser origins (`https://app.example.com`, exact) allowed to call the token,
    /// revoke and userinfo endpoints for this client (CORS). Default: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Seconds during which a repeat of a refresh token already used gets the same answer
    /// as its first use (a client whose answer was lost retries), instead of revoking the
    /// family as a reuse. Default: 0 (every reuse revokes). At most 300.
    #[serde(default)]
    pub refresh_retry_grace_seconds: u64,
    /// The name users see on the sign-in and consent page. Default: its client_id.
    #[serde(default)]
    pub name: Option<String>,
    /// An https URL of its logo, shown on the sign-in and consent page. Default: none.
    #[serde(default)]
    pub logo_uri: Option<String>,
    /// Whether users are asked to allow what it asks for: `never` (a first-party client),
    /// `once` (asked the first time and whenever it asks for more, remembered per user in
    /// the store) or `required` (asked every time). Default: `never`.
    #[serde(default = "default_consent")]
    pub consent: String,
    /// Exact URIs the logout endpoint may send a user back to for this client. Default: none.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
}

fn default_consent() -> String {
    "never".into()
}

fn default_token_format() -> String {
    "jwt".into()
}

fn default_token_profile() -> String {
    "rfc9068".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name. Required.
    pub username: String,
    /// argon2 PHC hash of the password. Required.
    pub password_hash: String,
    /// `user_id` / `sub` claim. Default: the username.
    #[serde(default)]
    pub user_id: Option<String>,
    /// `user_type` claim. Default: none.
    #[serde(default)]
    pub user_type: Option<String>,
    /// Display name. Default: none.
    #[serde(default)]
    pub name: Option<String>,
    /// Email address. Default: none.
    #[serde(default)]
    pub email: Option<String>,
}
