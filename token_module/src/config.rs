//! OAuth configuration: clients, users, signing keys and endpoint settings.
//!
//! [`file`] mirrors the `oauth:` section of the gateway's YAML (unknown keys are errors, every
//! field documents its default); [`OAuthConfig::from_file`] validates it into the types the
//! grants use. Secrets and passwords exist here only as argon2 PHC hashes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::keys::{KeySet, SigningAlgorithm, SigningKey};
use crate::secrets::PasswordHash;

/// A problem in the `oauth` section: the key (relative to `oauth.`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The file format of the `oauth:` section.
pub mod file {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
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

    #[derive(Debug, Deserialize)]
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
            }
        }
    }

    #[derive(Debug, Deserialize)]
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

    #[derive(Debug, Deserialize)]
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

    #[derive(Debug, Deserialize)]
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
    }

    fn default_token_format() -> String {
        "jwt".into()
    }

    fn default_token_profile() -> String {
        "rfc9068".into()
    }

    #[derive(Debug, Deserialize)]
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
}

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
}

impl Client {
    pub fn allows(&self, grant: Grant) -> bool {
        self.grants.contains(&grant)
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
}

impl OAuthConfig {
    /// Validates the file section; key files are resolved against `base`. `default_issuer`
    /// (the gateway's public base URL) stands in when `issuer` is not set.
    pub fn from_file(
        f: file::OAuth,
        base: &Path,
        default_issuer: &str,
    ) -> Result<Self, ConfigError> {
        let e = &f.endpoints;
        let paths = [
            ("endpoints.token", &e.token),
            ("endpoints.authorize", &e.authorize),
            ("endpoints.jwks", &e.jwks),
            ("endpoints.revoke", &e.revoke),
            ("endpoints.introspect", &e.introspect),
            ("endpoints.userinfo", &e.userinfo),
        ];
        for (i, (key, path)) in paths.iter().enumerate() {
            if !path.starts_with('/') {
                return Err(ConfigError::new(*key, "must start with `/`"));
            }
            if paths[..i].iter().any(|(_, p)| p == path) || path.starts_with("/.well-known/") {
                return Err(ConfigError::new(
                    *key,
                    "must differ from the other endpoints and lie outside /.well-known/",
                ));
            }
        }
        // Every limit is bounded: an absurd value is a `--check` error, never an overflow
        // (`Instant::now() + ttl`) or an unbounded allocation at request time.
        const DAY: u64 = 86_400;
        for (key, value, min, max) in [
            ("max_body_bytes", f.max_body_bytes as u64, 1, 16 << 20),
            ("code_ttl_seconds", f.code_ttl_seconds, 1, 3600),
            (
                "refresh_token_ttl_seconds",
                f.refresh_token_ttl_seconds,
                1,
                366 * DAY,
            ),
            ("id_token_ttl_seconds", f.id_token_ttl_seconds, 1, DAY),
            ("leeway_seconds", f.leeway_seconds, 0, 300),
            ("denylist_cache_ms", f.denylist_cache_ms, 0, 60_000),
            (
                "token_cache_entries",
                f.token_cache_entries as u64,
                1,
                10_000_000,
            ),
            (
                "brute_force.window_seconds",
                f.brute_force.window_seconds,
                1,
                DAY,
            ),
            (
                "brute_force.max_failures",
                f.brute_force.max_failures,
                1,
                1_000_000,
            ),
            (
                "brute_force.max_delay_ms",
                f.brute_force.max_delay_ms,
                0,
                60_000,
            ),
        ] {
            check_range(key, value, min, max)?;
        }
        let account_max_failures = f
            .brute_force
            .account_max_failures
            .unwrap_or(f.brute_force.max_failures.saturating_mul(10));
        if account_max_failures < f.brute_force.max_failures {
            return Err(ConfigError::new(
                "brute_force.account_max_failures",
                "must be at least brute_force.max_failures",
            ));
        }
        let issuer = f
            .issuer
            .clone()
            .unwrap_or_else(|| default_issuer.to_string());
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.contains(['?', '#'])
        {
            return Err(ConfigError::new(
                "issuer",
                "must be an http(s) URL without query or fragment",
            ));
        }
        let issuer = issuer.trim_end_matches('/').to_string();
        let keys = load_keys(&f.keys, base)?;
        let mut clients = HashMap::new();
        for (i, c) in f.clients.into_iter().enumerate() {
            let key = format!("clients[{i}]");
            let client = client(&key, c, &issuer)?;
            if clients.contains_key(&client.client_id) {
                return Err(ConfigError::new(
                    format!("{key}.client_id"),
                    "is registered twice",
                ));
            }
            clients.insert(client.client_id.clone(), client);
        }
        if clients.is_empty() {
            return Err(ConfigError::new(
                "clients",
                "at least one client is required",
            ));
        }
        let mut users = HashMap::new();
        for (i, u) in f.users.into_iter().enumerate() {
            let key = format!("users[{i}]");
            let password_hash = PasswordHash::parse(&u.password_hash)
                .map_err(|e| ConfigError::new(format!("{key}.password_hash"), e.to_string()))?;
            if u.username.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.username"),
                    "must not be empty",
                ));
            }
            if users.contains_key(&u.username) {
                return Err(ConfigError::new(
                    format!("{key}.username"),
                    "is registered twice",
                ));
            }
            let user_id = u.user_id.unwrap_or_else(|| u.username.clone());
            // In RFC 9068 tokens `sub` is the client for client_credentials: a user by the
            // same id would be indistinguishable from it.
            if clients.contains_key(&user_id) {
                return Err(ConfigError::new(
                    format!("{key}.user_id"),
                    format!("`{user_id}` is also a client_id; a user id must differ from every client_id"),
                ));
            }
            users.insert(
                u.username.clone(),
                User {
                    user_id,
                    username: u.username,
                    password_hash,
                    user_type: u.user_type,
                    name: u.name,
                    email: u.email,
                },
            );
        }
        Ok(Self {
            issuer,
            token_path: f.endpoints.token,
            authorize_path: f.endpoints.authorize,
            jwks_path: f.endpoints.jwks,
            revoke_path: f.endpoints.revoke,
            introspect_path: f.endpoints.introspect,
            userinfo_path: f.endpoints.userinfo,
            id_token_ttl: Duration::from_secs(f.id_token_ttl_seconds),
            leeway: Duration::from_secs(f.leeway_seconds),
            token_cache_entries: f.token_cache_entries,
            denylist_cache: Duration::from_millis(f.denylist_cache_ms),
            max_body_bytes: f.max_body_bytes,
            code_ttl: Duration::from_secs(f.code_ttl_seconds),
            refresh_token_ttl: Duration::from_secs(f.refresh_token_ttl_seconds),
            max_failures: f.brute_force.max_failures,
            account_max_failures,
            max_failure_delay: Duration::from_millis(f.brute_force.max_delay_ms),
            failure_window: Duration::from_secs(f.brute_force.window_seconds),
            keys,
            clients,
            users,
        })
    }
}

/// Loads the keys of the `oauth.keys` section, resolving paths against `base`.
fn load_keys(files: &[file::Key], base: &Path) -> Result<KeySet, ConfigError> {
    let mut active = None;
    let mut keys = Vec::with_capacity(files.len());
    for (i, k) in files.iter().enumerate() {
        let key = |field: &str| format!("keys[{i}].{field}");
        let algorithm = SigningAlgorithm::from_name(&k.algorithm).ok_or_else(|| {
            ConfigError::new(
                key("algorithm"),
                format!("`{}` is not RS256, ES256 or EdDSA", k.algorithm),
            )
        })?;
        if k.kid.is_empty() || files[..i].iter().any(|earlier| earlier.kid == k.kid) {
            return Err(ConfigError::new(key("kid"), "must be non-empty and unique"));
        }
        let path = base.join(&k.private_key);
        let pem = std::fs::read(&path).map_err(|e| {
            ConfigError::new(
                key("private_key"),
                format!("cannot read `{}`: {e}", path.display()),
            )
        })?;
        let signing = SigningKey::from_pem(&k.kid, algorithm, &pem).map_err(|e| {
            ConfigError::new(key("private_key"), format!("`{}`: {e}", path.display()))
        })?;
        if k.active && active.replace(i).is_some() {
            return Err(ConfigError::new(
                key("active"),
                "only one key may be active",
            ));
        }
        keys.push(signing);
    }
    let active =
        active.ok_or_else(|| ConfigError::new("keys", "exactly one key must be `active: true`"))?;
    KeySet::new(keys, active).map_err(|e| ConfigError::new("keys", e.to_string()))
}

/// `value` of `key` lies in `min..=max`.
fn check_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::new(key, format!("must be at least {min}")));
    }
    if value > max {
        return Err(ConfigError::new(key, format!("must be at most {max}")));
    }
    Ok(())
}

fn is_scope_token(s: &str) -> bool {
    // RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn client(key: &str, c: file::Client, default_issuer: &str) -> Result<Client, ConfigError> {
    let err = |field: &str, msg: String| ConfigError::new(format!("{key}.{field}"), msg);
    if c.client_id.is_empty() || c.client_id.contains(':') {
        return Err(err("client_id", "must be non-empty and hold no `:`".into()));
    }
    let secret_hash = c
        .secret_hash
        .as_deref()
        .map(PasswordHash::parse)
        .transpose()
        .map_err(|e| err("secret_hash", e.to_string()))?;
    match (c.public, &secret_hash) {
        (true, Some(_)) => return Err(err("secret_hash", "a public client has no secret".into())),
        (false, None) => {
            return Err(err(
                "secret_hash",
                "required unless the client is public".into(),
            ))
        }
        _ => {}
    }
    let mut grants = Vec::new();
    for (i, g) in c.grants.iter().enumerate() {
        let grant = Grant::parse(g).ok_or_else(|| {
            err(
                &format!("grants[{i}]"),
                format!("`{g}` is not a supported grant"),
            )
        })?;
        if grant == Grant::ClientAuthenticatedUser && !c.trusted {
            return Err(err(
                &format!("grants[{i}]"),
                "client_authenticated_user needs `trusted: true`".into(),
            ));
        }
        if c.public
            && matches!(
                grant,
                Grant::ClientCredentials | Grant::ClientAuthenticatedUser
            )
        {
            return Err(err(
                &format!("grants[{i}]"),
                format!("a public client cannot use `{g}`"),
            ));
        }
        grants.push(grant);
    }
    if grants.is_empty() {
        return Err(err("grants", "at least one grant is required".into()));
    }
    if let Some(bad) = c.scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(err("scopes", format!("`{bad}` is not a valid scope token")));
    }
    let default_scopes = c.default_scopes.unwrap_or_else(|| c.scopes.clone());
    if let Some(bad) = default_scopes.iter().find(|s| !c.scopes.contains(s)) {
        return Err(err("default_scopes", format!("`{bad}` is not in `scopes`")));
    }
    for (i, uri) in c.redirect_uris.iter().enumerate() {
        if !(uri.starts_with("https://") || uri.starts_with("http://")) || uri.contains('#') {
            return Err(err(
                &format!("redirect_uris[{i}]"),
                "must be an absolute http(s) URI without a fragment".into(),
            ));
        }
    }
    if grants.contains(&Grant::AuthorizationCode) && c.redirect_uris.is_empty() {
        return Err(err(
            "redirect_uris",
            "the authorization_code grant needs at least one".into(),
        ));
    }
    let token_format = match c.token_format.as_str() {
        "jwt" => TokenFormat::Jwt,
        "opaque" => TokenFormat::Opaque,
        other => {
            return Err(err(
                "token_format",
                format!("`{other}` is not `jwt` or `opaque`"),
            ))
        }
    };
    let token_profile = match c.token_profile.as_str() {
        "rfc9068" => TokenProfile::Rfc9068,
        "light-oauth2" => TokenProfile::LightOAuth2,
        other => {
            return Err(err(
                "token_profile",
                format!("`{other}` is not `rfc9068` or `light-oauth2`"),
            ))
        }
    };
    check_range(
        &format!("{key}.access_token_ttl_seconds"),
        c.access_token_ttl_seconds,
        1,
        7 * 86_400,
    )?;
    Ok(Client {
        issuer: c.issuer.unwrap_or_else(|| default_issuer.to_string()),
        audience: c.audience.unwrap_or_else(|| c.client_id.clone()),
        client_id: c.client_id,
        secret_hash,
        public: c.public,
        password_grant_without_secret: c.password_grant_without_secret,
        grants,
        scopes: c.scopes,
        default_scopes,
        redirect_uris: c.redirect_uris,
        token_format,
        token_profile,
        access_token_ttl: Duration::from_secs(c.access_token_ttl_seconds),
        token_type: c.token_type,
        trusted: c.trusted,
        allow_plain_pkce: c.allow_plain_pkce,
        id_token_hs256: c.id_token_hs256,
    })
}
