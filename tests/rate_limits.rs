//! Rate limits through the real gateway: 429 with `Retry-After` and the IETF draft's
//! `RateLimit-Policy` / `RateLimit` fields, counted per client address (the forwarded one
//! behind a trusted proxy only), per OAuth client on protected routes and at the token
//! endpoint, and, with `shared: true`, as one budget for two gateways on one Redis.
//!
//! Windows are an hour or a day long: a test never waits for one to end, and one ending
//! during a test (which would reset a count) is as good as impossible.

mod common;

use std::net::IpAddr;

use common::oauth::*;
use common::{metric_value, start_upstream, Gateway, GatewayOptions, RedisServer};

/// A client whose connections come from `from` (any 127.0.0.0/8 address is loopback).
fn client_from(from: &str) -> reqwest::Client {
    let ip: IpAddr = from.parse().expect("address");
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip)
        .build()
        .expect("client")
}

async fn statuses(
    http: &reqwest::Client,
    url: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut req = http.get(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        out.push(req.send().await.expect("request").status().as_u16());
    }
    out
}

async fn limited_gateway(limit: &str, server: &str, store_url: &str) -> Gateway {
    let up = start_upstream("svc").await;
    Gateway::start(GatewayOptions {
        store_url: store_url.to_string(),
        routes: format!(
            "  - path_prefix: /v1\n    upstreams: [\"{up}\"]\n    rate_limit: {limit}\n"
        ),
        server_yaml: server.to_string(),
        ..Default::default()
    })
}

#[tokio::test]
async fn past_the_quota_the_answer_is_429_with_the_draft_headers() {
    let gw = limited_gateway("{requests: 3, window_seconds: 3600}", "", "memory://").await;
    let one = client_from("127.0.0.1");
    assert_eq!(
        statuses(&one, &gw.url("/v1/pets"), 3, &[]).await,
        [200, 200, 200]
    );
    // A reload that leaves the limit as it was keeps its counts.
    let (status, report) = gw.reload().await;
    assert_eq!(status, 200, "{report}");
    let resp = one.get(gw.url("/v1/pets")).send().await.expect("request");
    assert_eq!(resp.status(), 429);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{name} in {:?}", resp.headers()))
            .to_string()
    };
    let retry: u64 = header("retry-after").parse().expect("delay-seconds");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    assert_eq!(header("ratelimit-policy"), r#""/v1";q=3;w=3600"#);
    assert_eq!(header("ratelimit"), format!(r#""/v1";r=0;t={retry}"#));
    let body: serde_json::Value = resp.json().await.expect("JSON error");
    assert_eq!(body["error"], "too_many_requests");
    // Another address has its own budget.
    let two = client_from("127.0.0.2");
    assert_eq!(statuses(&two, &gw.url("/v1/pets"), 1, &[]).await, [200]);
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"tollgate_rate_limited_total{route="/v1"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_client_address() {
    let gw = limited_gateway(
        "{requests: 2, window_seconds: 3600}",
        "  trusted_proxies: [127.0.0.1]\n",
        "memory://",
    )
    .await;
    let url = gw.url("/v1/pets");
    let proxy = client_from("127.0.0.1");
    let from = |ip| [("x-forwarded-for", ip)];
    assert_eq!(
        statuses(&proxy, &url, 3, &from("203.0.113.5")).await,
        [200, 200, 429]
    );
    // The proxy itself was not counted: another client behind it is served.
    assert_eq!(statuses(&proxy, &url, 1, &from("203.0.113.6")).await, [200]);
    // A client that is not a trusted proxy cannot pick the address it is counted under.
    let direct = client_from("127.0.0.3");
    let mut seen = Vec::new();
    for i in 0..3 {
        let spoofed = format!("198.51.100.{i}");
        seen.extend(statuses(&direct, &url, 1, &[("x-forwarded-for", spoofed.as_str())]).await);
    }
    assert_eq!(seen, [200, 200, 429]);
}

#[tokio::test]
async fn protected_routes_count_per_client_and_the_token_endpoint_per_named_client() {
    let up = start_upstream("svc").await;
    let routes = format!(
        "  - path_prefix: /limited\n    upstreams: [\"{up}\"]\n    auth: {{scopes: []}}\n    rate_limit: {{requests: 2, window_seconds: 3600, key: client}}\n"
    );
    let env = OAuthEnv::start_with(
        Backend::Memory,
        &[],
        routes,
        "oauth_rate_limit: {requests: 3, window_seconds: 3600, key: client}\n",
    );
    let light = light_client_credentials(&env, None).await;
    assert_eq!(light.status, 200, "{}", light.json);
    let hillary = hillary_token(&env, None).await;
    assert_eq!(hillary.status, 200, "{}", hillary.json);

    let http = client_from("127.0.0.1");
    let url = env.gw.url("/limited/x");
    let with = |t: &TokenReply| format!("Bearer {}", t.str("access_token"));
    let light_auth = with(&light);
    let bearer = |auth: &str| vec![("authorization", auth.to_string())];
    let mut seen = Vec::new();
    for _ in 0..3 {
        let h = bearer(&light_auth);
        let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
        seen.extend(statuses(&http, &url, 1, &h).await);
    }
    assert_eq!(seen, [200, 200, 429]);
    // Same address, another client: its own budget.
    let hillary_auth = with(&hillary);
    assert_eq!(
        statuses(&http, &url, 1, &[("authorization", hillary_auth.as_str())]).await,
        [200]
    );

    // The token endpoint counts per named client: the light client has used one of its
    // three, EQdkp one.
    let mut light_seen = Vec::new();
    for _ in 0..3 {
        light_seen.push(light_client_credentials(&env, None).await.status);
    }
    assert_eq!(light_seen, [200, 200, 429]);
    assert_eq!(hillary_token(&env, None).await.status, 200);

    // Invented client_ids are counted by address: a fresh name each time escapes nothing.
    let mut invented = Vec::new();
    for i in 0..4 {
        let id = format!("no-such-client-{i}");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", "x"),
        ];
        invented.push(token(&env, None, &form).await.status);
    }
    assert_eq!(invented[3], 429, "{invented:?}");
    assert!(invented[..3].iter().all(|s| *s != 429), "{invented:?}");
}

#[tokio::test]
async fn a_shared_limit_is_one_budget_for_two_gateways_on_one_redis() {
    let redis = RedisServer::start();
    let limit = "{requests: 4, window_seconds: 86400, shared: true}";
    let a = limited_gateway(limit, "", &redis.url()).await;
    let b = limited_gateway(limit, "", &redis.url()).await;
    let http = client_from("127.0.0.1");
    assert_eq!(statuses(&http, &a.url("/v1/x"), 2, &[]).await, [200, 200]);
    assert_eq!(statuses(&http, &b.url("/v1/x"), 2, &[]).await, [200, 200]);
    assert_eq!(statuses(&http, &a.url("/v1/x"), 1, &[]).await, [429]);
    assert_eq!(statuses(&http, &b.url("/v1/x"), 1, &[]).await, [429]);
    // Each instance alone saw only half of the budget: without the store, both would
    // still serve.
}

#[tokio::test]
async fn brute_force_counters_count_the_forwarded_address_behind_a_trusted_proxy() {
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[("max_failures: 10", "max_failures: 3")],
        String::new(),
        "",
        "  trusted_proxies: [127.0.0.0/8]\n",
    );
    let http = client_from("127.0.0.1");
    let attempt = |from: &'static str, password: &'static str| {
        http.post(env.token_url())
            .header("x-forwarded-for", from)
            .form(&[
                ("client_id", EQDKP_ID),
                ("grant_type", "password"),
                ("username", "Hillary"),
                ("password", password),
            ])
            .send()
    };
    let mut guessing = Vec::new();
    for _ in 0..4 {
        guessing.push(
            attempt("203.0.113.66", "wrong")
                .await
                .expect("token")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(guessing.last(), Some(&429), "{guessing:?}");
    // Hillary, behind the same proxy from another address, signs in.
    let resp = attempt("198.51.100.7", "12345678").await.expect("token");
    assert_eq!(resp.status(), 200);
}
