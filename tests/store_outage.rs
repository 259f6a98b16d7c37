//! Redis going away under a running gateway: `/readyz` says not ready and store errors are
//! counted, routes that do not need the store keep working, and when Redis comes back the
//! gateway recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::{client, start_upstream, Gateway, GatewayOptions, RedisServer};

/// An EQdkp-seed password grant: it needs the store for the brute-force counters and the
/// opaque token.
async fn token(http: &reqwest::Client, gw: &Gateway) -> reqwest::Response {
    http.post(gw.url("/oauth2/token"))
        .form(&[
            ("client_id", common::oauth::EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", "12345678"),
        ])
        .send()
        .await
        .expect("token request")
}

async fn wait_for_readyz(gw: &Gateway, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = gw.readyz().await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed {got}, wanted {want}\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_killed_then_restarted_without_restarting_the_gateway() {
    let mut redis = RedisServer::start();
    let up = start_upstream("echo").await;
    let gw = Gateway::start(GatewayOptions {
        store_url: redis.url(),
        routes: format!("  - path_prefix: /v1\n    upstreams: [{up}]\n"),
        store_timeout_ms: 300,
        extra_yaml: common::oauth::demo_oauth_yaml(&[]),
        ..Default::default()
    });
    let http = client();
    wait_for_readyz(&gw, 200).await;

    redis.kill();
    let started = Instant::now();
    assert_eq!(gw.readyz().await, 503, "readyz fails once Redis is gone");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the store timeout bounds readyz"
    );
    let resp = http
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "not ready");

    let resp = http
        .get(gw.url("/v1/still-up"))
        .send()
        .await
        .expect("proxy");
    assert_eq!(
        resp.status(),
        200,
        "a route that needs no store keeps working"
    );

    let resp = token(&http, &gw).await;
    assert_eq!(resp.status(), 503, "the token endpoint needs the store");
    assert!(resp.headers().get("retry-after").is_some());
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("tollgate_store_errors_total{kind="),
        "store errors are counted:\n{metrics}"
    );

    redis.restart();
    wait_for_readyz(&gw, 200).await;
    assert_eq!(
        http.get(gw.url("/v1/again"))
            .send()
            .await
            .expect("proxy")
            .status(),
        200
    );
    assert_eq!(
        token(&http, &gw).await.status(),
        200,
        "OAuth works again without a restart"
    );
}
