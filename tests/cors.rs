//! CORS for browser clients through the real gateway: preflights and responses of the OAuth
//! endpoints follow each client's `allowed_origins`, routes follow their `cors` policy, and
//! an origin that is not allowed gets no CORS header at all.

mod common;

use common::oauth::*;
use common::{client, start_upstream};
use reqwest::Method;

const LIGHT_ORIGIN: &str = "https://light.example";
const EQDKP_ORIGIN: &str = "https://eqdkp.example";
const APP_ORIGIN: &str = "https://app.example";

async fn env() -> OAuthEnv {
    let up = start_upstream("svc").await;
    let routes = format!(
        "  - path_prefix: /api\n    upstreams: [\"{up}\"]\n    cors:\n      allowed_origins: [\"{APP_ORIGIN}\"]\n      expose_headers: [x-upstream]\n\
         \x20 - path_prefix: /private\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [petstore.r]}}\n    cors:\n      allowed_origins: [\"{APP_ORIGIN}\"]\n"
    );
    let light = format!("      trusted: true\n      allowed_origins: [\"{LIGHT_ORIGIN}\"]\n");
    let eqdkp =
        format!("      token_format: opaque\n      allowed_origins: [\"{EQDKP_ORIGIN}\"]\n");
    OAuthEnv::start_with(
        Backend::Memory,
        &[
            ("      trusted: true\n", &light),
            ("      token_format: opaque\n", &eqdkp),
        ],
        routes,
        "",
    )
}

fn allow_origin(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn no_cors_headers(resp: &reqwest::Response) -> bool {
    resp.headers()
        .keys()
        .all(|name| !name.as_str().starts_with("access-control-"))
}

async fn preflight(url: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn oauth_endpoints_follow_each_clients_allowed_origins() {
    let env = env().await;
    let token_url = env.token_url();

    let ok = preflight(
        &token_url,
        LIGHT_ORIGIN,
        "POST",
        "authorization, content-type",
    )
    .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(allow_origin(&ok).as_deref(), Some(LIGHT_ORIGIN));
    assert_eq!(
        ok.headers()["access-control-allow-methods"].to_str().ok(),
        Some("POST")
    );
    assert!(ok
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let evil = preflight(&token_url, "https://evil.example", "POST", "content-type").await;
    assert_eq!(evil.status(), 403);
    assert!(no_cors_headers(&evil));

    // The response is readable by the origins of the client that asked.
    let light_from = |origin: &'static str| {
        client()
            .post(token_url.clone())
            .header("authorization", light_basic())
            .header("origin", origin)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let resp = light_from(LIGHT_ORIGIN).await.expect("token");
    assert_eq!(resp.status(), 200);
    assert_eq!(allow_origin(&resp).as_deref(), Some(LIGHT_ORIGIN));
    assert_eq!(resp.headers()["vary"].to_str().ok(), Some("Origin"));
    let resp = light_from(EQDKP_ORIGIN).await.expect("token");
    assert_eq!(resp.status(), 200);
    assert!(no_cors_headers(&resp), "another client's origin: {resp:?}");

    let hillary = client()
        .post(token_url.clone())
        .header("origin", EQDKP_ORIGIN)
        .form(&[
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", "12345678"),
            ("scope", "openid email"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(allow_origin(&hillary).as_deref(), Some(EQDKP_ORIGIN));
    let json: serde_json::Value = hillary.json().await.expect("JSON");
    let access = json["access_token"]
        .as_str()
        .expect("access token")
        .to_string();

    // Userinfo: the token's client decides.
    let userinfo = |origin: &'static str| {
        client()
            .get(env.gw.url("/oauth2/userinfo"))
            .header("authorization", format!("Bearer {access}"))
            .header("origin", origin)
            .send()
    };
    let resp = userinfo(EQDKP_ORIGIN).await.expect("userinfo");
    assert_eq!(resp.status(), 200);
    assert_eq!(allow_origin(&resp).as_deref(), Some(EQDKP_ORIGIN));
    let resp = userinfo(LIGHT_ORIGIN).await.expect("userinfo");
    assert_eq!(resp.status(), 200);
    assert!(no_cors_headers(&resp));

    // Public documents are readable from anywhere.
    let jwks = client()
        .get(env.gw.url("/.well-known/jwks.json"))
        .header("origin", "https://anyone.example")
        .send()
        .await
        .expect("jwks");
    assert_eq!(jwks.status(), 200);
    assert_eq!(allow_origin(&jwks).as_deref(), Some("*"));
}

#[tokio::test]
async fn routes_answer_preflights_and_mark_responses_for_allowed_origins() {
    let env = env().await;
    let url = env.gw.url("/api/things");

    let ok = preflight(&url, APP_ORIGIN, "PUT", "content-type").await;
    assert_eq!(ok.status(), 204);
    assert_eq!(allow_origin(&ok).as_deref(), Some(APP_ORIGIN));
    assert_eq!(
        ok.headers()["access-control-max-age"].to_str().ok(),
        Some("600")
    );
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        (APP_ORIGIN, "TRACE", ""),
        (APP_ORIGIN, "GET", "x-not-allowed"),
    ] {
        let refused = preflight(&url, origin, method, headers).await;
        assert_eq!(refused.status(), 403, "{origin} {method} {headers}");
        assert!(no_cors_headers(&refused));
    }

    let resp = client()
        .get(url.clone())
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(allow_origin(&resp).as_deref(), Some(APP_ORIGIN));
    assert_eq!(
        resp.headers()["access-control-expose-headers"]
            .to_str()
            .ok(),
        Some("x-upstream")
    );
    let resp = client()
        .get(url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert!(no_cors_headers(&resp));

    // A protected route's refusal is readable by the page, so it can sign in.
    let resp = client()
        .get(env.gw.url("/private/x"))
        .header("origin", APP_ORIGIN)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
    assert_eq!(allow_origin(&resp).as_deref(), Some(APP_ORIGIN));
    // The preflight of a protected route needs no token.
    let ok = preflight(
        &env.gw.url("/private/x"),
        APP_ORIGIN,
        "GET",
        "authorization",
    )
    .await;
    assert_eq!(ok.status(), 204);
}
