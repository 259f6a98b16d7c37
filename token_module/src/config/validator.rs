//! Validates the `oauth:` file section into [`OAuthConfig`]; every error names the key.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::{
    file, Client, ConfigError, Consent, Grant, OAuthConfig, TokenFormat, TokenProfile, User,
};
use crate::keys::{KeySet, SigningAlgorithm, SigningKey};
use crate::secrets::PasswordHash;

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
            ("endpoints.logout", &e.logout),
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
            ("session_ttl_seconds", f.session_ttl_seconds, 0, 30 * DAY),
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
        if f.session_ttl_seconds == 0 {
            if let Some(c) = clients.values().find(|c| c.consent != Consent::Never) {
                return Err(ConfigError::new(
                    "session_ttl_seconds",
                    format!(
                        "client `{}` asks for consent, which needs sessions (a ttl above 0)",
                        c.client_id
                    ),
                ));
            }
        }
        let template = match &f.sign_in_template {
            Some(file) => {
                let path = base.join(file);
                Some(std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(
                        "sign_in_template",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?)
            }
            None => None,
        };
        let pages = crate::pages::Pages::new(template)
            .map_err(|e| ConfigError::new("sign_in_template", e))?;
        Ok(Self {
            logout_path: f.endpoints.logout,
            session_ttl: Duration::from_secs(f.session_ttl_seconds),
            scope_descriptions: f.scope_descriptions,
            pages,
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
            resources: Vec::new(),
            route_scopes: Vec::new(),
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

/// A web origin as browsers serialize it in `Origin` (RFC 6454): `http` or `https`, a host,
/// an optional port, nothing else; returned in lower case. `*` and `null` are refused: an
/// allowed origin is always one exact site.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let bad = || format!("`{s}` is not an origin (scheme://host[:port], no path)");
    let lower = s.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(bad)?;
    // The host, and what follows it: nothing or `:port`.
    let (host, after) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            addr.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (None, after)
        }
        None => match rest.find(':') {
            Some(i) => (Some(&rest[..i]), &rest[i..]),
            None => (Some(rest), ""),
        },
    };
    let name_ok = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if host.is_some_and(|h| !name_ok(h)) {
        return Err(bad());
    }
    if !after.is_empty() {
        let port = after.strip_prefix(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
    }
    Ok(lower)
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
    let allowed_origins = c
        .allowed_origins
        .iter()
        .enumerate()
        .map(|(i, o)| parse_origin(o).map_err(|e| err(&format!("allowed_origins[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
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
    let consent = match c.consent.as_str() {
        "never" => Consent::Never,
        "once" => Consent::Once,
        "required" => Consent::Required,
        other => {
            return Err(err(
                "consent",
                format!("`{other}` is not `never`, `once` or `required`"),
            ))
        }
    };
    if let Some(logo) = &c.logo_uri {
        if crate::pages::csp_origin(logo).is_none() || !logo.starts_with("https://") {
            return Err(err(
                "logo_uri",
                "must be an https URL (shown on the sign-in page)".into(),
            ));
        }
    }
    for (i, uri) in c.post_logout_redirect_uris.iter().enumerate() {
        if !(uri.starts_with("https://") || uri.starts_with("http://")) || uri.contains('#') {
            return Err(err(
                &format!("post_logout_redirect_uris[{i}]"),
                "must be an absolute http(s) URI without a fragment".into(),
            ));
        }
    }
    check_range(
        &format!("{key}.refresh_retry_grace_seconds"),
        c.refresh_retry_grace_seconds,
        0,
        300,
    )?;
    Ok(Client {
        name: c.name.unwrap_or_else(|| c.client_id.clone()),
        logo_uri: c.logo_uri,
        consent,
        post_logout_redirect_uris: c.post_logout_redirect_uris,
        refresh_retry_grace: Duration::from_secs(c.refresh_retry_grace_seconds),
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
        allowed_origins,
    })
}

#[cfg(test)]
mod origin_tests {
    use super::parse_origin;

    #[test]
    fn origins_are_exact_sites() {
        for ok in [
            "https://App.Example.com",
            "http://localhost:3000",
            "https://[::1]:8443",
        ] {
            assert!(parse_origin(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_origin("https://App.Example.com").as_deref(),
            Ok("https://app.example.com")
        );
        for bad in [
            "*",
            "null",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://",
            "https://a:b",
            "https://user@host",
            "https://[::1",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
