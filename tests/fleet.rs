//! Several gateways on one Redis behaving as one: a revocation made at one is refused at the
//! others at once (not after their reuse window), through the store's events; without those
//! events an instance says it is degraded and falls back to its reuse window; a refresh
//! retried at another gateway within its grace gets the first answer. The same fleet on a
//! Redis Cluster (codes, refresh tokens, counters, limits, a killed gateway) is
//! `tests/fleet_cluster.rs`.

mod common;

use std::time::{Duration, Instant};

use common::fleet::*;
use common::oauth::*;
use common::{metric_value, start_upstream, Gateway, RedisServer};
use serde_json::Value;

/// Gateways A and B on `redis` with the long reuse window, each subscribed to the events.
async fn subscribed_pair(redis: &RedisServer, up: std::net::SocketAddr) -> (Gateway, Gateway) {
    let a = fleet_gateway(&redis.url(), up, LONG_REUSE_MS, &[]);
    let b = fleet_gateway(&redis.url(), up, LONG_REUSE_MS, &[]);
    wait_subscribed(&a).await;
    wait_subscribed(&b).await;
    (a, b)
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
    let (a, b) = subscribed_pair(&redis, up).await;

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
    let opaque = hillary_opaque(&a).await;
    let profile = |gw| get_with(gw, "/v1/profile", &opaque);
    let _ = profile(&b).await;
    assert_ne!(profile(&b).await, 401, "the opaque token is accepted at B");
    assert_eq!(revoke_as_eqdkp(&a, &opaque).await, 200);
    let since = Instant::now();
    loop {
        let s = profile(&b).await;
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
    let a = fleet_gateway(&url, up, "1000", &[]);
    let b = fleet_gateway(&url, up, "1000", &[]);

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
        took >= Duration::from_millis(200),
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
    let (a, b) = subscribed_pair(&redis, up).await;
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
    let grace = [(
        "      trusted: true\n",
        "      trusted: true\n      refresh_retry_grace_seconds: 30\n",
    )];
    let gateway = || fleet_gateway(&redis.url(), up, "1000", &grace);
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

/// A sign-in session lives in the store: a user signed in on A's sign-in page is signed in
/// at B (`prompt=none` gets a code there), and logging out at A ends it at B.
#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_session_is_the_fleets() {
    let redis = RedisServer::start();
    let up = start_upstream("svc").await;
    let a = fleet_gateway(&redis.url(), up, LONG_REUSE_MS, &[]);
    let b = fleet_gateway(&redis.url(), up, LONG_REUSE_MS, &[]);
    let http = common::client();
    let request = [
        ("response_type", "code"),
        ("client_id", LIGHT_ID),
        ("state", "s1"),
    ];
    let cookie_of = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("a {name} cookie"))
    };
    let form = http
        .get(a.url("/oauth2/authorize"))
        .query(&request)
        .send()
        .await
        .expect("the sign-in page");
    let csrf = cookie_of(&form, "tollgate_csrf");
    let mut fields = request.to_vec();
    fields.extend([
        ("csrf_token", csrf.as_str()),
        ("username", "admin"),
        ("password", "123456"),
        ("decision", "sign_in"),
    ]);
    let signed_in = http
        .post(a.url("/oauth2/authorize"))
        .header("cookie", format!("tollgate_csrf={csrf}"))
        .form(&fields)
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 302);
    let session = format!(
        "tollgate_session={}",
        cookie_of(&signed_in, "tollgate_session")
    );
    let silently_at_b = || {
        http.get(b.url("/oauth2/authorize"))
            .query(&request)
            .query(&[("prompt", "none")])
            .header("cookie", session.as_str())
            .send()
    };
    let at_b = silently_at_b().await.expect("authorize at B");
    let location = at_b.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.contains("code="), "{location}");
    let out = http
        .get(a.url("/oauth2/logout"))
        .header("cookie", session.as_str())
        .send()
        .await
        .expect("logout at A");
    assert_eq!(out.status(), 200);
    let at_b = silently_at_b().await.expect("authorize at B");
    let location = at_b.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.contains("error=login_required"), "{location}");
}
