//! Several gateways on one store behaving as one: a revocation made at one is refused at the
//! others at once (not after their reuse window), through the store's events; without those
//! events an instance says it is degraded and falls back to its reuse window; on a Redis
//! Cluster, codes, refresh tokens, brute-force counters and rate limits are shared, and a
//! gateway killed mid-run loses nothing the others need.

mod common;

use std::time::{Duration, Instant};

use common::oauth::*;
use common::{client, metric_value, start_upstream, Gateway, GatewayOptions, RedisServer};
use serde_json::Value;

/// A reuse window no test waits for: a revocation seen quickly can only have come by event.
const LONG_REUSE: &str = "60000";

/// A gateway with the demo OAuth configuration and routes on `store_url`; a "not revoked"
/// answer is reused for `reuse_ms`.
fn fleet_gateway(store_url: &str, upstream: std::net::SocketAddr, reuse_ms: &str) -> Gateway {
    let profile =
        format!("  - path_prefix: /v1/profile\n    upstreams: [\"{upstream}\"]\n    auth: {{scopes: [identify]}}\n");
    fleet_gateway_with(store_url, upstream, reuse_ms, &profile)
}

fn fleet_gateway_with(
    store_url: &str,
    upstream: std::net::SocketAddr,
    reuse_ms: &str,
    extra_routes: &str,
) -> Gateway {
    let issuer = "  issuer: https://localhost:6882\n";
    Gateway::start(GatewayOptions {
        store_url: store_url.to_string(),
        routes: format!("{extra_routes}{}", demo_routes_yaml(upstream)),
        store_timeout_ms: 2000,
        extra_yaml: demo_oauth_yaml(&[
            (
                issuer,
                &format!("{issuer}  denylist_cache_ms: {reuse_ms}\n"),
            ),
            ("max_failures: 10", "max_failures: 3"),
        ]),
        ..Default::default()
    })
}

/// Waits until the gateway hears the store's events (`tollgate_store_events_connected 1`).
async fn wait_subscribed(gw: &Gateway) {
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

async fn post(gw: &Gateway, path: &str, auth: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = client().post(gw.url(path)).form(form);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get_pets(gw: &Gateway, token: &str) -> u16 {
    client()
        .get(gw.url("/v1/pets"))
        .bearer_auth(token)
        .send()
        .await
        .expect("protected request")
        .status()
        .as_u16()
}

async fn client_credentials(gw: &Gateway) -> String {
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

async fn revoke(gw: &Gateway, token: &str) {
    let (status, body) = post(
        gw,
        "/oauth2/revoke",
        Some(&light_basic()),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Polls `gw` with `token` until it is refused; returns how long that took after `since`.
async fn refused_after(gw: &Gateway, token: &str, since: Instant, bound: Duration) -> Duration {
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Revoke at A, poll at B: 200 times, each refused long before B's 60 s reuse window would
/// have let it go. The latencies are printed (the fleet bench quotes them), not asserted.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_at_one_gateway_is_refused_at_another_at_once() {
    let up = start_upstream("svc").await;
    let redis = RedisServer::start();
    let a = fleet_gateway(&redis.url(), up, LONG_REUSE);
    let b = fleet_gateway(&redis.url(), up, LONG_REUSE);
    wait_subscribed(&a).await;
    wait_subscribed(&b).await;

    let mut seen = Vec::new();
    for _ in 0..200 {
        let token = client_credentials(&a).await;
        assert_eq!(
            get_pets(&b, &token).await,
            200,
            "B remembers it as not revoked"
        );
        let revoked_at = Instant::now();
        revoke(&a, &token).await;
        seen.push(refused_after(&b, &token, revoked_at, Duration::from_secs(10)).await);
    }
    seen.sort();
    println!(
        "revoke at A, refused at B (200 tries, from the revocation request): p50 {:?}, p99 {:?}, max {:?}",
        percentile(&seen, 0.5),
        percentile(&seen, 0.99),
        percentile(&seen, 1.0)
    );

    // Opaque tokens: B caches what it looked up, and drops it on the event too.
    let (status, body) = post(
        &a,
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
    let opaque = body["access_token"].as_str().expect("token").to_string();
    let profile = |gw: &Gateway| {
        client()
            .get(gw.url("/v1/profile"))
            .bearer_auth(&opaque)
            .send()
    };
    let _ = profile(&b).await;
    let status = |r: reqwest::Response| r.status().as_u16();
    let before = profile(&b).await.expect("request");
    assert_ne!(status(before), 401, "the opaque token is accepted at B");
    let (revoked, _) = post(
        &a,
        "/oauth2/revoke",
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("token", &opaque),
        ],
    )
    .await;
    assert_eq!(revoked, 200);
    let since = Instant::now();
    loop {
        let s = status(profile(&b).await.expect("request"));
        if s == 401 {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(10), "still accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Without the events (here: a Redis user that may not use pub/sub) a gateway still serves,
/// says `degraded` on `/readyz`, and sees revocations made elsewhere within its reuse window.
/// Once events are allowed again it subscribes by itself.
#[tokio::test(flavor = "multi_thread")]
async fn without_events_a_gateway_is_degraded_and_falls_back_to_its_reuse_window() {
    let up = start_upstream("svc").await;
    let redis = RedisServer::start();
    let acl = |pubsub: &str| {
        redis.cli(&[
            "ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all", pubsub,
        ])
    };
    assert_eq!(acl("-@pubsub"), "OK");
    let url = format!("redis://gw:pw@127.0.0.1:{}/0", redis.port);
    let a = fleet_gateway(&url, up, "1000");
    let b = fleet_gateway(&url, up, "1000");

    let ready = b.admin_get("/readyz").await;
    assert_eq!(ready.status(), 200, "degraded is still ready");
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        metric_value(&b.metrics().await, "tollgate_store_events_connected"),
        Some(0.0)
    );

    let token = client_credentials(&a).await;
    assert_eq!(get_pets(&b, &token).await, 200);
    let revoked_at = Instant::now();
    revoke(&a, &token).await;
    let took = refused_after(&b, &token, revoked_at, Duration::from_secs(10)).await;
    assert!(
        took >= Duration::from_millis(500),
        "refused after {took:?}: without events only the reuse window can have done it"
    );

    // Events allowed again: B subscribes by itself and is ready.
    assert_eq!(acl("+@pubsub"), "OK");
    wait_subscribed(&b).await;
    let body: Value = b.admin_get("/readyz").await.json().await.expect("json");
    assert_eq!(body["status"], "ready", "{body}");
}

/// A subscription that the server drops is made again, and events flow once more.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_subscription_is_made_again() {
    let up = start_upstream("svc").await;
    let redis = RedisServer::start();
    let a = fleet_gateway(&redis.url(), up, LONG_REUSE);
    let b = fleet_gateway(&redis.url(), up, LONG_REUSE);
    wait_subscribed(&a).await;
    wait_subscribed(&b).await;
    let channels = redis.cli(&["PUBSUB", "CHANNELS", "*"]);
    assert!(channels.ends_with("events"), "{channels}");
    let numsub = || redis.cli(&["PUBSUB", "NUMSUB", &channels]);
    assert!(numsub().ends_with('2'), "{}", numsub());

    let killed = redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_eq!(killed, "2");
    common::wait_until(
        "both gateways to subscribe again",
        Duration::from_secs(20),
        || numsub().ends_with('2'),
    );

    let token = client_credentials(&a).await;
    assert_eq!(get_pets(&b, &token).await, 200);
    let revoked_at = Instant::now();
    revoke(&a, &token).await;
    refused_after(&b, &token, revoked_at, Duration::from_secs(10)).await;
}

/// A refresh whose answer was lost, retried at another gateway (and two sends racing at two
/// gateways): within the client's grace every send gets the same tokens, on Redis.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_refresh_gets_the_first_answer_at_any_gateway() {
    let up = start_upstream("svc").await;
    let redis = RedisServer::start();
    let gateway = || {
        let issuer = "  issuer: https://localhost:6882\n";
        Gateway::start(GatewayOptions {
            store_url: redis.url(),
            routes: demo_routes_yaml(up),
            extra_yaml: demo_oauth_yaml(&[
                (issuer, issuer),
                (
                    "      trusted: true\n",
                    "      trusted: true\n      refresh_retry_grace_seconds: 30\n",
                ),
            ]),
            ..Default::default()
        })
    };
    let (a, b) = (gateway(), gateway());
    let password = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "123456"),
    ];
    for round in 0..10 {
        let (status, body) = post(&a, "/oauth2/token", Some(&light_basic()), &password).await;
        assert_eq!(status, 200, "{body}");
        let rt0 = body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_string();
        let ((s1, first), (s2, second)) = tokio::join!(refresh(&a, &rt0), refresh(&b, &rt0));
        assert_eq!((s1, s2), (200, 200), "round {round}: {first} {second}");
        assert_eq!(
            first["refresh_token"], second["refresh_token"],
            "round {round}"
        );
        assert_eq!(
            first["access_token"], second["access_token"],
            "round {round}"
        );
        // A third send, later, at B: the same answer again.
        let (s3, third) = refresh(&b, &rt0).await;
        assert_eq!(s3, 200);
        assert_eq!(third["refresh_token"], first["refresh_token"]);
        let access = first["access_token"].as_str().expect("access token");
        assert_eq!(get_pets(&b, access).await, 200);
    }
}

async fn refresh(gw: &Gateway, rt: &str) -> (u16, Value) {
    post(
        gw,
        "/oauth2/token",
        Some(&light_basic()),
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}
