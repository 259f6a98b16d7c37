//! Protected routes through real HTTP: a real upstream echoes what reached it, so each test
//! sees both what the client got and what the service would have seen.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::oauth::*;
use common::{client, raw_request, start_upstream};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The routes of these tests, all to one echo upstream.
fn routes(up: std::net::SocketAddr) -> String {
    format!(
        "  - {{path_prefix: /open, upstreams: [\"{up}\"]}}\n\
         \x20 - path_prefix: /v1/pets\n    upstreams: [\"{up}\"]\n    auth:\n      scopes: [petstore.r]\n      method_scopes: {{POST: [petstore.w], DELETE: [petstore.w]}}\n\
         \x20 - path_prefix: /strip\n    upstreams: [\"{up}\"]\n    auth: {{forward_authorization: false}}\n\
         \x20 - path_prefix: /optional\n    upstreams: [\"{up}\"]\n    auth: {{required: false}}\n\
         \x20 - path_prefix: /profile\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [identify]}}\n"
    )
}

async fn env_on(backend: Backend, extra: &str) -> OAuthEnv {
    let up = start_upstream("svc").await;
    OAuthEnv::start_with(backend, &[], routes(up), extra)
}

/// Claims of a light-oauth2 access token as Tollgate issues them.
fn claims() -> Value {
    let t = now();
    json!({
        "iss": "urn:com:networknt:oauth2:v1", "aud": "urn:com.networknt", "exp": t + 600, "iat": t, "nbf": t,
        "jti": format!("test-{t}-{}", rand_suffix()), "version": "1.0", "client_id": LIGHT_ID,
        "scope": ["petstore.r", "petstore.w"], "user_id": "admin", "user_type": "admin", "sub": "admin",
    })
}

fn rand_suffix() -> u32 {
    std::time::Instant::now().elapsed().subsec_nanos() ^ std::process::id()
}

fn demo_private_key() -> EncodingKey {
    let pem = std::fs::read(common::repo_root().join("conf/keys/demo-rs256-100.pem")).expect("key");
    EncodingKey::from_rsa_pem(&pem).expect("RSA key")
}

/// Signs `claims` with the demo key under `kid` (the same key the gateway uses for kid 100).
fn sign(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    header.typ = None;
    encode(&header, claims, &demo_private_key()).expect("sign")
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(env: &OAuthEnv, method: &str, path: &str, auth: Option<&str>) -> Reply {
    let mut req = client().request(method.parse().expect("method"), env.gw.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

async fn bearer(env: &OAuthEnv, method: &str, path: &str, token: &str) -> Reply {
    call(env, method, path, Some(&format!("Bearer {token}"))).await
}

fn challenge(r: &Reply) -> &str {
    r.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn assert_invalid_token(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert!(
        challenge(r).starts_with("Bearer realm=\"tollgate\", error=\"invalid_token\""),
        "{what}: {}",
        challenge(r)
    );
    assert!(
        r.body.get("upstream").is_none(),
        "{what}: never reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_tokens_pass_with_identity_headers() {
    let env = env_on(Backend::Memory, "").await;
    let cc = light_client_credentials(&env, None).await;
    let r = bearer(&env, "GET", "/v1/pets/1", cc.str("access_token")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["headers"]["x-client-id"][0], LIGHT_ID);
    assert_eq!(r.body["headers"]["x-scopes"][0], "petstore.r petstore.w");
    assert!(
        r.body["headers"].get("x-user-id").is_none(),
        "no user for client_credentials"
    );
    assert!(
        r.body["headers"]["authorization"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("Bearer ")),
        "forwarded by default"
    );

    let pw = light_admin_password(&env).await;
    let r = bearer(&env, "POST", "/v1/pets", pw.str("access_token")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (
            r.body["headers"]["x-user-id"][0].as_str(),
            r.body["headers"]["x-user-type"][0].as_str()
        ),
        (Some("admin"), Some("admin"))
    );
    // The scheme is case-insensitive.
    let r = call(
        &env,
        "GET",
        "/v1/pets",
        Some(&format!("bearer {}", pw.str("access_token"))),
    )
    .await;
    assert_eq!(r.status, 200);
    // A token the test signed with the same key and claims passes too (the forgeries below
    // differ from it in one thing each).
    assert_eq!(
        bearer(&env, "GET", "/v1/pets", &sign(&claims(), "100"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_bad_jwt_is_refused() {
    let env = env_on(Backend::Memory, "").await;
    let t = now();
    let with = |field: &str, value: Value| {
        let mut c = claims();
        c[field] = value;
        c
    };
    let public_pem =
        std::fs::read(common::repo_root().join("conf/keys/demo-rs256-100.pub.pem")).expect("pub");
    let hs256_confusion = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("100".into());
        encode(&header, &claims(), &EncodingKey::from_secret(&public_pem)).expect("sign")
    };
    let alg_none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","kid":"100"}"#),
        B64.encode(claims().to_string())
    );
    let tampered = {
        let good = sign(&with("scope", json!(["petstore.r"])), "100");
        let parts: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(claims().to_string()),
            parts[2]
        )
    };
    let id_token = hillary_token(&env, Some("openid")).await;
    let cases: Vec<(&str, String)> = vec![
        ("expired", sign(&with("exp", json!(t - 120)), "100")),
        ("not yet valid", sign(&with("nbf", json!(t + 300)), "100")),
        (
            "wrong iss",
            sign(&with("iss", json!("https://evil.example")), "100"),
        ),
        ("wrong aud", sign(&with("aud", json!("urn:other")), "100")),
        (
            "unknown client",
            sign(&with("client_id", json!("nobody")), "100"),
        ),
        (
            "string exp",
            sign(&with("exp", json!((t + 600).to_string())), "100"),
        ),
        ("alg none", alg_none),
        ("HS256 with the RSA public key", hs256_confusion),
        ("unknown kid", sign(&claims(), "999")),
        (
            "kid with path characters",
            sign(&claims(), "../../../../etc/passwd"),
        ),
        ("no kid", {
            let mut h = Header::new(Algorithm::RS256);
            h.typ = None;
            encode(&h, &claims(), &demo_private_key()).expect("sign")
        }),
        ("tampered payload", tampered),
        ("id_token", id_token.str("id_token").to_string()),
        ("not a JWT", "abc.def.ghi".into()),
        ("unknown opaque", "deadbeef".into()),
    ];
    for (what, jwt) in cases {
        assert_invalid_token(&bearer(&env, "GET", "/v1/pets", &jwt).await, what);
    }
    // Within the 60 s leeway an expired token still passes.
    assert_eq!(
        bearer(
            &env,
            "GET",
            "/v1/pets",
            &sign(&with("exp", json!(t - 20)), "100")
        )
        .await
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn challenges_and_scopes_follow_rfc_6750() {
    let env = env_on(Backend::Memory, "").await;
    let r = call(&env, "GET", "/v1/pets", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        "Bearer realm=\"tollgate\"",
        "no error code without credentials"
    );
    // Credentials of another form are not "no token": refused, never passed on.
    let r = call(&env, "GET", "/v1/pets", Some("Basic YWRtaW46MTIzNDU2")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "invalid_request", "{}", r.body);

    let read_only = light_client_credentials(&env, Some("petstore.r")).await;
    let t = read_only.str("access_token");
    assert_eq!(bearer(&env, "GET", "/v1/pets", t).await.status, 200);
    for method in ["POST", "DELETE"] {
        let r = bearer(&env, method, "/v1/pets/3", t).await;
        assert_eq!(r.status, 403, "{method}");
        assert_eq!(
            challenge(&r),
            "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"petstore.w\""
        );
        assert_eq!(r.body["error"], "insufficient_scope");
    }
    let write_only = light_client_credentials(&env, Some("petstore.w")).await;
    let w = write_only.str("access_token");
    assert_eq!(bearer(&env, "POST", "/v1/pets", w).await.status, 200);
    let r = bearer(&env, "GET", "/v1/pets", w).await;
    assert_eq!(
        (r.status, challenge(&r)),
        (
            403,
            "Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"petstore.r\""
        )
    );

    // A token both in the header and the URL, or only in the URL: 400.
    let both = client()
        .get(env.gw.url(&format!("/v1/pets?access_token={t}")))
        .bearer_auth(t)
        .send()
        .await
        .expect("req");
    assert_eq!(both.status(), 400);
    let url_only = client()
        .get(env.gw.url(&format!("/v1/pets?access_token={t}")))
        .send()
        .await
        .expect("req");
    assert_eq!(url_only.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_opaque_tokens() {
    let env = env_on(Backend::Redis, "").await;
    let cc = light_client_credentials(&env, None).await;
    let jwt = cc.str("access_token");
    assert_eq!(bearer(&env, "GET", "/v1/pets", jwt).await.status, 200);
    let revoke = client()
        .post(env.gw.url("/oauth2/revoke"))
        .header("authorization", light_basic())
        .form(&[("token", jwt)])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 200);
    assert_invalid_token(&bearer(&env, "GET", "/v1/pets", jwt).await, "revoked JWT");

    let opaque = hillary_token(&env, None).await;
    let o = opaque.str("access_token");
    let r = bearer(&env, "GET", "/profile/me", o).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["headers"]["x-user-id"][0], "Hillary");
    assert_eq!(r.body["headers"]["x-client-id"][0], EQDKP_ID);
    let revoke = client()
        .post(env.gw.url("/oauth2/revoke"))
        .form(&[
            ("token", o),
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), 200);
    assert_invalid_token(
        &bearer(&env, "GET", "/profile/me", o).await,
        "revoked opaque token",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let env = env_on(Backend::Memory, "").await;
    let pw = light_admin_password(&env).await;
    let auth = format!("Authorization: Bearer {}\r\n", pw.str("access_token"));
    for (path, auth) in [("/open/x", ""), ("/v1/pets", auth.as_str())] {
        let raw = raw_request(
            env.gw.http,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: t\r\n{auth}X-User-Id: root\r\nx_user_id: root\r\nX-USER-TYPE: admin\r\nX_Client_Id: evil\r\n\
                 X-Scopes: everything\r\nX-Forwarded-User: root\r\nConnection: close, X-Forwarded-User\r\n\r\n"
            ),
        );
        assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
        let echo: Value =
            serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap_or("")).expect("echo");
        let headers = echo["headers"].as_object().expect("headers");
        for (name, values) in headers {
            let joined = values.to_string();
            assert!(
                !joined.contains("root")
                    && !joined.contains("evil")
                    && !joined.contains("everything"),
                "{path}: {name}: {joined}"
            );
            assert!(!name.contains('_'), "{path}: {name} reached the upstream");
        }
        assert!(
            !headers.contains_key("x-forwarded-user"),
            "{path}: a Connection-listed header reached the upstream"
        );
        if path == "/v1/pets" {
            assert_eq!(
                headers["x-user-id"][0], "admin",
                "Tollgate's own header, once"
            );
            assert_eq!(headers["x-user-id"].as_array().map(Vec::len), Some(1));
        } else {
            assert!(!headers.contains_key("x-user-id"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_forwarding_optional_auth_and_the_cache() {
    let env = env_on(Backend::Memory, "").await;
    let cc = light_client_credentials(&env, None).await;
    let t = cc.str("access_token");
    let r = bearer(&env, "GET", "/strip/x", t).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["headers"].get("authorization").is_none(),
        "stripped on this route"
    );
    assert_eq!(r.body["headers"]["x-client-id"][0], LIGHT_ID);

    let r = call(&env, "GET", "/optional/x", None).await;
    assert_eq!(r.status, 200, "optional: no token is fine");
    assert!(r.body["headers"].get("x-client-id").is_none());
    assert_invalid_token(
        &bearer(&env, "GET", "/optional/x", "nonsense").await,
        "optional: a bad token is not",
    );
    assert_eq!(
        bearer(&env, "GET", "/optional/x", t).await.body["headers"]["x-client-id"][0],
        LIGHT_ID
    );

    // The same token again is served from the verified-token cache.
    let fresh = light_client_credentials(&env, None).await;
    for _ in 0..3 {
        assert_eq!(
            bearer(&env, "GET", "/v1/pets", fresh.str("access_token"))
                .await
                .status,
            200
        );
    }
    let metrics = env.gw.metrics().await;
    let cached = common::metric_value(
        &metrics,
        r#"tollgate_bearer_checks_total{result="valid_cached"}"#,
    )
    .unwrap_or(0.0);
    assert!(cached >= 2.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn store_outage_fails_closed_by_default_and_open_when_configured() {
    for fail_open in [false, true] {
        let extra = format!("bearer:\n  denylist_fail_open: {fail_open}\n");
        let mut env = env_on(Backend::Redis, &extra).await;
        let jwt = light_client_credentials(&env, None)
            .await
            .str("access_token")
            .to_string();
        let opaque = hillary_token(&env, None).await;
        let opaque = opaque.str("access_token").to_string();
        env.redis.as_mut().expect("redis").kill();
        let r = bearer(&env, "GET", "/v1/pets", &jwt).await;
        assert_eq!(
            r.status,
            if fail_open { 200 } else { 503 },
            "JWT route, fail_open={fail_open}"
        );
        let r = bearer(&env, "GET", "/profile/me", &opaque).await;
        assert_eq!(
            r.status, 503,
            "opaque tokens need the store, fail_open={fail_open}"
        );
        assert_eq!(r.body["error"], "temporarily_unavailable");
        assert_eq!(
            call(&env, "GET", "/open/x", None).await.status,
            200,
            "public routes keep working"
        );
    }
}

/// Two gateways sharing one Redis: a revocation through one is honoured by the other, at once
/// with `denylist_cache_ms: 0`, within the cache time by default.
#[tokio::test(flavor = "multi_thread")]
async fn revocation_reaches_other_instances() {
    for cache_ms in [0u64, 1000] {
        let up = start_upstream("svc").await;
        let replacement = format!("  max_body_bytes: 65536\n  denylist_cache_ms: {cache_ms}\n");
        let replacements = [("  max_body_bytes: 65536\n", replacement.as_str())];
        let a = OAuthEnv::start_with(Backend::Redis, &replacements, routes(up), "");
        let redis_url = a.redis.as_ref().expect("redis").url();
        let b = OAuthEnv {
            gw: common::Gateway::start(common::GatewayOptions {
                store_url: redis_url,
                routes: routes(up),
                extra_yaml: demo_oauth_yaml(&replacements),
                ..Default::default()
            }),
            redis: None,
        };
        let jwt = light_client_credentials(&a, None).await;
        let jwt = jwt.str("access_token");
        assert_eq!(
            bearer(&b, "GET", "/v1/pets", jwt).await.status,
            200,
            "B accepts A's token"
        );
        let revoke = client()
            .post(a.gw.url("/oauth2/revoke"))
            .header("authorization", light_basic())
            .form(&[("token", jwt)])
            .send()
            .await
            .expect("revoke");
        assert_eq!(revoke.status(), 200);
        assert_invalid_token(
            &bearer(&a, "GET", "/v1/pets", jwt).await,
            "the revoking instance refuses at once",
        );
        if cache_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(cache_ms + 200)).await;
        }
        assert_invalid_token(
            &bearer(&b, "GET", "/v1/pets", jwt).await,
            "the other instance refuses",
        );
    }
}

/// Only a credential that was checked goes upstream: an `Authorization` header that is not
/// exactly `Bearer <token68>` is refused on every route that checks tokens, optional ones
/// included (an upstream splitting on any whitespace would read the token nobody checked);
/// method and URL overrides never reach the upstream unless the route keeps them; a client's
/// own proxy headers are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn only_validated_credentials_and_meanings_go_upstream() {
    let up = start_upstream("svc").await;
    let routes = format!(
        "{}\x20 - path_prefix: /legacy\n    upstreams: [\"{up}\"]\n    keep_headers: [X-HTTP-Method-Override]\n",
        routes(up)
    );
    let env = OAuthEnv::start_with(Backend::Memory, &[], routes, "");
    let t = light_client_credentials(&env, None).await;
    let jwt = t.str("access_token");
    let revoked = revoke_and_keep(&env, jwt).await;
    for path in ["/optional/x", "/v1/pets"] {
        for header in [
            format!("Bearer\t{revoked}"),
            format!("Bearer {revoked} extra"),
            format!("Bearer {revoked}==x"),
            format!("Basic {revoked}"),
            "Bearer".to_string(),
            format!("Bearerx {revoked}"),
        ] {
            let r = call(&env, "GET", path, Some(&header)).await;
            assert_eq!(r.status, 400, "{path} with {header:?}: {}", r.body);
            assert_eq!(r.body["error"], "invalid_request");
            assert!(r.body.get("upstream").is_none(), "{path}: proxied");
        }
    }
    let fresh = light_client_credentials(&env, None).await;
    let fresh = fresh.str("access_token");
    let spoofing = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Forwarded-Host", "admin.internal"),
        ("X-Forwarded-Port", "1"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Real-IP", "10.9.9.9"),
        ("X-Forwarded-For", "10.9.9.9"),
    ];
    for (path, token) in [
        ("/open/x", None),
        ("/v1/pets", Some(fresh)),
        ("/legacy", None),
    ] {
        let mut req = client().get(env.gw.url(path));
        for (name, value) in spoofing {
            req = req.header(name, value);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let body: serde_json::Value = req
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        let headers = &body["headers"];
        for (name, _) in spoofing {
            let name = name.to_ascii_lowercase();
            let kept = path == "/legacy" && name == "x-http-method-override";
            match name.as_str() {
                "x-forwarded-for" => assert_eq!(headers[&name][0], "127.0.0.1", "{path}"),
                _ if kept => assert_eq!(headers[&name][0], "DELETE", "{path} keeps {name}"),
                _ => assert!(
                    headers.get(&name).is_none(),
                    "{path}: {name} reached the upstream"
                ),
            }
        }
    }
}

/// Revokes `token` (light-oauth2's) and returns it: a token an upstream must never act on.
async fn revoke_and_keep(env: &OAuthEnv, token: &str) -> String {
    let (status, _) = form_post(
        env,
        "/oauth2/revoke",
        Some(&light_basic()),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200);
    token.to_string()
}
