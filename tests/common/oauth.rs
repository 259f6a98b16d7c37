//! OAuth helpers for the tests: the demo `oauth:` section, the seed documents' credentials,
//! and small clients for the token and authorization endpoints.

use std::collections::HashMap;

use serde_json::Value;

use super::{client, repo_root, Gateway, GatewayOptions, RedisServer};

/// The light-oauth2 seed's client.
pub const LIGHT_ID: &str = "f7d42348-c647-4efb-a52d-4c5787421e72";
pub const LIGHT_SECRET: &str = "f6h1FTI8Q3-7UScPZDzfXA";
pub const LIGHT_REDIRECT: &str = "http://localhost:8080/authorization";
/// The EQdkp seed's client.
pub const EQDKP_ID: &str = "1421589198";
pub const EQDKP_SECRET: &str = "C7LxkuPm0a7JozCd16cyiKLA31UHqbwdUZPxX8auDDO3uiiFqa1Q7SRObHtLsd2k9pmYZqmAqKBlkf3ThCtScMSTzhz9DSfjW7GP0DAfNaWO0ZXNT8SzNqWO6yTfwVq7";
pub const EQDKP_REDIRECT: &str = "https://somedomain.com/oauth-return/";

/// The `oauth:` section of `conf/gateway.yaml`, with key paths made absolute and each
/// `(from, to)` text replacement applied (to tune limits per test).
pub fn demo_oauth_yaml(replacements: &[(&str, &str)]) -> String {
    let demo = std::fs::read_to_string(repo_root().join("conf/gateway.yaml")).expect("demo config");
    let start = demo
        .find("\noauth:")
        .expect("the demo config has an oauth section");
    let keys_dir = repo_root().join("conf/keys");
    let mut section = demo[start..].replace(
        "private_key: keys/",
        &format!("private_key: {}/", keys_dir.display()),
    );
    for (from, to) in replacements {
        assert!(
            section.contains(from),
            "the demo oauth section holds `{from}`"
        );
        section = section.replace(from, to);
    }
    section
}

/// The `routes:` list of `conf/gateway.yaml` with its demo upstream replaced by `upstream`.
pub fn demo_routes_yaml(upstream: std::net::SocketAddr) -> String {
    let demo = std::fs::read_to_string(repo_root().join("conf/gateway.yaml")).expect("demo config");
    let start = demo
        .find("\nroutes:\n")
        .expect("the demo config has routes")
        + "\nroutes:\n".len();
    let list: Vec<&str> = demo[start..]
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .collect();
    list.join("\n")
        .replace("127.0.0.1:8080", &upstream.to_string())
        + "\n"
}

/// Where a test keeps its state.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redis,
}

/// A gateway with the demo OAuth config on one backend (and the Redis it uses).
pub struct OAuthEnv {
    pub gw: Gateway,
    pub redis: Option<RedisServer>,
}

impl OAuthEnv {
    pub fn start(backend: Backend, replacements: &[(&str, &str)]) -> Self {
        Self::start_with(backend, replacements, String::new(), "")
    }

    /// With `routes` (the `routes:` list) and `extra` top-level YAML after the oauth section.
    pub fn start_with(
        backend: Backend,
        replacements: &[(&str, &str)],
        routes: String,
        extra: &str,
    ) -> Self {
        Self::start_with_server(backend, replacements, routes, extra, "")
    }

    /// As [`Self::start_with`], with more `server:` keys (lines indented by two spaces).
    pub fn start_with_server(
        backend: Backend,
        replacements: &[(&str, &str)],
        routes: String,
        extra: &str,
        server: &str,
    ) -> Self {
        let redis = matches!(backend, Backend::Redis).then(RedisServer::start);
        let gw = Gateway::start(GatewayOptions {
            store_url: redis.as_ref().map_or("memory://".to_string(), |r| r.url()),
            routes,
            extra_yaml: format!("{}{extra}", demo_oauth_yaml(replacements)),
            server_yaml: server.to_string(),
            ..Default::default()
        });
        Self { gw, redis }
    }

    pub fn token_url(&self) -> String {
        self.gw.url("/oauth2/token")
    }
}

/// A token-endpoint answer.
pub struct TokenReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl TokenReply {
    pub fn str(&self, field: &str) -> &str {
        self.json[field]
            .as_str()
            .unwrap_or_else(|| panic!("`{field}` in {}", self.json))
    }
}

/// POSTs `form` to the token endpoint, with `authorization` as the raw header value if given.
pub async fn token(
    env: &OAuthEnv,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> TokenReply {
    let mut req = client().post(env.token_url()).form(form);
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.expect("token request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let json = resp.json().await.unwrap_or(Value::Null);
    TokenReply {
        status,
        headers,
        json,
    }
}

/// The EQdkp seed's password grant for Hillary (no client secret), with `scope` if given.
pub async fn hillary_token(env: &OAuthEnv, scope: Option<&str>) -> TokenReply {
    let mut form = vec![
        ("client_id", EQDKP_ID),
        ("grant_type", "password"),
        ("username", "Hillary"),
        ("password", "12345678"),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token(env, None, &form).await
}

/// The light-oauth2 client's client_credentials grant, with `scope` if given.
pub async fn light_client_credentials(env: &OAuthEnv, scope: Option<&str>) -> TokenReply {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token(env, Some(&light_basic()), &form).await
}

/// The light-oauth2 client's password grant for user `admin`.
pub async fn light_admin_password(env: &OAuthEnv) -> TokenReply {
    let form = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "123456"),
    ];
    token(env, Some(&light_basic()), &form).await
}

/// The raw `Basic id:secret` header the light-oauth2 seed sends.
pub fn light_basic() -> String {
    format!("Basic {LIGHT_ID}:{LIGHT_SECRET}")
}

/// Runs the authorization request with `params`, signing in with HTTP Basic as
/// `user:password`; returns the redirect's query parameters.
pub async fn authorize(
    env: &OAuthEnv,
    params: &[(&str, &str)],
    user: &str,
    password: &str,
) -> (u16, HashMap<String, String>) {
    let resp = client()
        .get(env.gw.url("/oauth2/authorize"))
        .query(params)
        .basic_auth(user, Some(password))
        .send()
        .await
        .expect("authorize request");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let map = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (status, map)
}

/// A fresh code for the light-oauth2 client and user `admin`, with `extra` parameters.
pub async fn light_code(env: &OAuthEnv, extra: &[(&str, &str)]) -> String {
    let mut params = vec![("response_type", "code"), ("client_id", LIGHT_ID)];
    params.extend_from_slice(extra);
    let (status, query) = authorize(env, &params, "admin", "123456").await;
    assert_eq!(status, 302, "authorize redirects");
    query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("a code in {query:?}"))
}

/// Decodes a JWT's payload without checking it (for looking at claims).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// POSTs `form` to `path`, with `auth` as the raw `Authorization` value if given; returns
/// the status and the JSON body (`Null` when there is none).
pub async fn form_post(
    env: &OAuthEnv,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client().post(env.gw.url(path)).form(form);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// RFC 7009 revocation of `token` by the EQdkp client at `gw`; the status.
pub async fn revoke_as_eqdkp(gw: &Gateway, token: &str) -> u16 {
    client()
        .post(gw.url("/oauth2/revoke"))
        .form(&[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("token", token),
        ])
        .send()
        .await
        .expect("revoke request")
        .status()
        .as_u16()
}

/// RFC 7662 introspection of `token` by the light-oauth2 client; the body of its 200.
pub async fn introspect(env: &OAuthEnv, token: &str) -> Value {
    let (status, body) = form_post(
        env,
        "/oauth2/introspect",
        Some(&light_basic()),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The demo oauth section with its `keys:` list replaced by `keys` (kid, file in
/// `conf/keys/`, active).
pub fn with_keys(keys: &[(&str, &str, bool)]) -> String {
    let yaml = demo_oauth_yaml(&[]);
    let start = yaml.find("  keys:\n").expect("keys");
    let end = yaml.find("  clients:\n").expect("clients");
    let dir = repo_root().join("conf/keys");
    let mut list = String::from("  keys:\n");
    for (kid, file, active) in keys {
        list.push_str(&format!(
            "    - {{kid: \"{kid}\", private_key: \"{}\", active: {active}}}\n",
            dir.join(file).display()
        ));
    }
    format!("{}{list}{}", &yaml[..start], &yaml[end..])
}
