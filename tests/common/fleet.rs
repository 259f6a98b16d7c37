//! Helpers of the fleet tests (`tests/fleet.rs` on one Redis, `tests/fleet_cluster.rs` on a
//! Redis Cluster): gateways with the demo OAuth configuration sharing one store, and the
//! requests those tests make of them.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::oauth::{demo_oauth_yaml, demo_routes_yaml, light_basic, EQDKP_ID};
use super::{client, metric_value, Gateway, GatewayOptions};

/// A reuse window no test waits for: a revocation seen quickly can only have come by event.
pub const LONG_REUSE_MS: &str = "60000";

/// The `/v1/quota` route's budget, for every client address and the whole fleet together.
pub const SHARED_LIMIT: &str = "{requests: 4, window_seconds: 86400, shared: true}";

/// A gateway with the demo OAuth configuration on `store_url`: a "not revoked" answer is
/// reused for `reuse_ms`, three failed authentications lock an address out, `oauth_yaml`
/// edits (from, to) apply on top. Besides the demo routes (`/v1/pets` takes the light
/// client's JWTs) it has `/v1/profile` (the EQdkp client's opaque tokens) and `/v1/quota`
/// (a [`SHARED_LIMIT`] and no auth).
pub fn fleet_gateway(
    store_url: &str,
    upstream: SocketAddr,
    reuse_ms: &str,
    oauth_yaml: &[(&str, &str)],
) -> Gateway {
    let issuer = "  issuer: https://localhost:6882\n";
    let profile = format!(
        "  - path_prefix: /v1/profile\n    upstreams: [\"{upstream}\"]\n    auth: {{scopes: [identify]}}\n"
    );
    let quota = format!(
        "  - path_prefix: /v1/quota\n    upstreams: [\"{upstream}\"]\n    rate_limit: {SHARED_LIMIT}\n"
    );
    let reuse = format!("{issuer}  denylist_cache_ms: {reuse_ms}\n");
    let mut edits = vec![
        (issuer, reuse.as_str()),
        ("max_failures: 10", "max_failures: 3"),
    ];
    edits.extend_from_slice(oauth_yaml);
    Gateway::start(GatewayOptions {
        store_url: store_url.to_string(),
        routes: format!("{profile}{quota}{}", demo_routes_yaml(upstream)),
        store_timeout_ms: 2000,
        extra_yaml: demo_oauth_yaml(&edits),
        ..Default::default()
    })
}

/// Waits until the gateway hears the store's events (`tollgate_store_events_connected 1`).
pub async fn wait_subscribed(gw: &Gateway) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = gw.metrics().await;
        if metric_value(&metrics, "tollgate_store_events_connected") == Some(1.0) {
            return;
        }
        assert!(Instant::now() < deadline, "never subscribed:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An HTTP client whose connections come from `from` (any 127.0.0.0/8 address is loopback),
/// so that what one test part counts per address (lockouts, rate limits) is its own.
pub fn client_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from(from))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// POSTs `form` to `path` at `gw` from the address of `http`, with `auth` as the raw
/// `Authorization` value if given; the status, the headers and the JSON body.
pub async fn post_from(
    http: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = http.post(gw.url(path)).form(form);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// As [`post_from`] from the usual loopback address; the status and the JSON body.
pub async fn post(
    gw: &Gateway,
    path: &str,
    auth: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let (status, _, body) = post_from(&client(), gw, path, auth, form).await;
    (status, body)
}

/// `GET path` at `gw` with `token` as the bearer token; the status.
pub async fn get_with(gw: &Gateway, path: &str, token: &str) -> u16 {
    gw.bearer_get(path, token).await.0
}

pub async fn get_pets(gw: &Gateway, token: &str) -> u16 {
    get_with(gw, "/v1/pets", token).await
}

/// The light client's `client_credentials` access token, issued at `gw`.
pub async fn client_credentials(gw: &Gateway) -> String {
    let (status, body) = post(
        gw,
        "/oauth2/token",
        Some(&light_basic()),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}

/// RFC 7009 revocation of one of the light client's tokens at `gw`.
pub async fn revoke(gw: &Gateway, token: &str) {
    let (status, body) = post(
        gw,
        "/oauth2/revoke",
        Some(&light_basic()),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The light client's refresh at `gw`.
pub async fn refresh(gw: &Gateway, refresh_token: &str) -> (u16, Value) {
    post(
        gw,
        "/oauth2/token",
        Some(&light_basic()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Polls `gw` with `token` on `/v1/pets` until it is refused; how long that took after
/// `since`. Fails past `bound`.
pub async fn refused_after(gw: &Gateway, token: &str, since: Instant, bound: Duration) -> Duration {
    loop {
        let status = get_pets(gw, token).await;
        if status == 401 {
            return since.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            since.elapsed() < bound,
            "a revoked token was still accepted after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Hillary's opaque access token from the EQdkp client's password grant at `gw`.
pub async fn hillary_opaque(gw: &Gateway) -> String {
    let (status, body) = post(
        gw,
        "/oauth2/token",
        None,
        &[
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", "12345678"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_string()
}
