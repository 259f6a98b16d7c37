//! Three gateways on one 3-master Redis Cluster act as one: codes are redeemed once across
//! the fleet, refresh tokens rotate anywhere and a reused one revokes its family everywhere,
//! brute-force counters and `shared` rate limits count once, a revocation at one gateway is
//! refused at the others at once (their reuse window is a minute, so only the fleet's events
//! can do it), and a gateway killed mid-run loses nothing the others need.
//!
//! Each test starts its own cluster and gateways A, B and C, so no counter or lockout of one
//! test is seen by another.

mod common;

use std::time::{Duration, Instant};

use common::fleet::*;
use common::oauth::*;
use common::{client, start_upstream, Gateway, RedisCluster};
use serde_json::Value;

/// How long a revocation may take to reach another gateway before a test fails.
const EVENT_BOUND: Duration = Duration::from_secs(10);

/// A Redis Cluster and three gateways on it, each subscribed to the fleet's events.
struct Fleet {
    a: Gateway,
    b: Gateway,
    c: Gateway,
    // Dropped after the gateways (fields drop in declaration order).
    _cluster: RedisCluster,
}

impl Fleet {
    async fn start() -> Self {
        let up = start_upstream("svc").await;
        let cluster = RedisCluster::start(3);
        let url = cluster.url();
        let fleet = Self {
            a: fleet_gateway(&url, up, LONG_REUSE_MS, &[]),
            b: fleet_gateway(&url, up, LONG_REUSE_MS, &[]),
            c: fleet_gateway(&url, up, LONG_REUSE_MS, &[]),
            _cluster: cluster,
        };
        for gw in [&fleet.a, &fleet.b, &fleet.c] {
            wait_subscribed(gw).await;
        }
        fleet
    }
}

/// The light client's token request at `gw`; the JSON of its 200.
async fn light_token(gw: &Gateway, form: &[(&str, &str)]) -> Value {
    let (status, body) = post(gw, "/oauth2/token", Some(&light_basic()), form).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn str_of<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` in {body}"))
}

/// A code for the light client and user `admin` (HTTP Basic sign-in), issued at `gw`.
async fn light_code_at(gw: &Gateway) -> String {
    let resp = client()
        .get(gw.url("/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", LIGHT_ID),
            ("scope", "petstore.r"),
        ])
        .basic_auth("admin", Some("123456"))
        .send()
        .await
        .expect("authorize request");
    assert_eq!(resp.status(), 302, "authorize redirects");
    let location = resp.headers()["location"].to_str().expect("location");
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(k, v)| (k == "code").then(|| v.into_owned()))
        .unwrap_or_else(|| panic!("a code in {location}"))
}

async fn redeem(gw: &Gateway, code: &str) -> (u16, Value) {
    post(
        gw,
        "/oauth2/token",
        Some(&light_basic()),
        &[("grant_type", "authorization_code"), ("code", code)],
    )
    .await
}

/// The light client's password grant for `admin` at `gw`: a JWT access token and a refresh
/// token.
async fn admin_password(gw: &Gateway) -> Value {
    light_token(
        gw,
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "123456"),
        ],
    )
    .await
}

/// A code issued at A redeems at B; a second redemption at C fails and, being a replay by
/// the authenticated client, revokes what the first one produced.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_issued_at_one_gateway_redeems_once_across_the_fleet() {
    let fleet = Fleet::start().await;
    let code = light_code_at(&fleet.a).await;

    let (status, first) = redeem(&fleet.b, &code).await;
    assert_eq!(status, 200, "the code issued at A redeems at B: {first}");
    let refresh_token = str_of(&first, "refresh_token");

    let (status, replay) = redeem(&fleet.c, &code).await;
    assert_eq!(status, 400, "a second redemption at C: {replay}");
    assert_eq!(replay["error"], "invalid_grant", "{replay}");

    // C knew the code had been redeemed (at B), so the replay revoked its tokens.
    let (status, body) = refresh(&fleet.a, refresh_token).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant")),
        "the refresh token of a replayed code: {body}"
    );
}

/// A refresh token issued at B rotates at C; the retired one presented at A is refused and
/// revokes the family: the new refresh token fails too, and the access token C issued is
/// refused at C within seconds (by the fleet's event, not C's minute-long reuse window).
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_token_rotates_anywhere_and_its_reuse_revokes_the_family_everywhere() {
    let fleet = Fleet::start().await;
    let issued = admin_password(&fleet.b).await;
    let retired = str_of(&issued, "refresh_token");

    let (status, rotated) = refresh(&fleet.c, retired).await;
    assert_eq!(status, 200, "B's refresh token refreshes at C: {rotated}");
    let (current, access) = (
        str_of(&rotated, "refresh_token"),
        str_of(&rotated, "access_token"),
    );
    assert_ne!(current, retired, "the refresh token rotated");
    assert_eq!(get_pets(&fleet.c, access).await, 200, "C accepts its token");

    let reused_at = Instant::now();
    let (status, body) = refresh(&fleet.a, retired).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant")),
        "the retired refresh token at A: {body}"
    );
    let (status, body) = refresh(&fleet.b, current).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &Value::from("invalid_grant")),
        "the family was revoked, its current refresh token too: {body}"
    );
    refused_after(&fleet.c, access, reused_at, EVENT_BOUND).await;
}

/// Failed authentications spread over A, B and C count once: past `max_failures` (3) in
/// total every gateway answers 429 with `Retry-After`, the right credentials included. Both
/// for a client's secret and for a user's password, each from an address of its own.
#[tokio::test(flavor = "multi_thread")]
async fn brute_force_counters_are_shared_by_the_fleet() {
    let fleet = Fleet::start().await;
    let gateways = [&fleet.a, &fleet.b, &fleet.c];

    let guesser = client_from([127, 0, 0, 2]);
    let cc = [("grant_type", "client_credentials")];
    let wrong = format!("Basic {LIGHT_ID}:guess");
    for gw in gateways {
        let (status, _, body) = post_from(&guesser, gw, "/oauth2/token", Some(&wrong), &cc).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
    }
    for (name, gw) in ["A", "B", "C"].iter().zip(gateways) {
        let (status, headers, body) =
            post_from(&guesser, gw, "/oauth2/token", Some(&light_basic()), &cc).await;
        assert_eq!(
            status, 429,
            "after one wrong secret at each gateway, the right one at {name}: {body}"
        );
        assert_eq!(headers["retry-after"], "300", "the brute-force window");
    }

    let password_guesser = client_from([127, 0, 0, 3]);
    let login = |password: &'static str| {
        [
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", password),
        ]
    };
    for gw in gateways {
        let (status, _, body) = post_from(
            &password_guesser,
            gw,
            "/oauth2/token",
            None,
            &login("guess"),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant", "{body}");
    }
    for (name, gw) in ["A", "B", "C"].iter().zip(gateways) {
        let (status, headers, body) = post_from(
            &password_guesser,
            gw,
            "/oauth2/token",
            None,
            &login("12345678"),
        )
        .await;
        assert_eq!(
            status, 429,
            "after one wrong password at each gateway, the right one at {name}: {body}"
        );
        assert_eq!(headers["retry-after"], "300", "the brute-force window");
    }

    // The lockout is the guessers' only: from another address the client is served.
    light_token(&fleet.a, &cc).await;
}

/// A `shared: true` route limit is one budget for the fleet: four requests spread over A, B
/// and C pass, the fifth overall is refused at every gateway.
#[tokio::test(flavor = "multi_thread")]
async fn a_shared_rate_limit_is_one_budget_for_the_fleet() {
    let fleet = Fleet::start().await;
    let http = client_from([127, 0, 0, 4]);
    let get = |gw: &Gateway| http.get(gw.url("/v1/quota/x")).send();

    let mut seen = Vec::new();
    for gw in [&fleet.a, &fleet.b, &fleet.c, &fleet.a] {
        seen.push(get(gw).await.expect("request").status().as_u16());
    }
    assert_eq!(seen, [200, 200, 200, 200], "the budget of four, spread");
    for (name, gw) in [("B", &fleet.b), ("C", &fleet.c), ("A", &fleet.a)] {
        let resp = get(gw).await.expect("request");
        assert_eq!(resp.status(), 429, "past the fleet's budget, at {name}");
        let retry: u64 = resp.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("delay-seconds");
        assert!((1..=86400).contains(&retry), "Retry-After {retry}");
    }
}

/// An RFC 7009 revocation at A of a JWT access token that B and C have just accepted (and
/// would accept for another minute on their own) is refused at B and C within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_at_one_gateway_is_refused_at_the_others_at_once() {
    let fleet = Fleet::start().await;
    let body = light_token(&fleet.a, &[("grant_type", "client_credentials")]).await;
    let token = str_of(&body, "access_token");
    assert_eq!(get_pets(&fleet.b, token).await, 200, "B accepts the token");
    assert_eq!(get_pets(&fleet.c, token).await, 200, "C accepts the token");

    let revoked_at = Instant::now();
    let (status, body) = post(
        &fleet.a,
        "/oauth2/revoke",
        Some(&light_basic()),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (name, gw) in [("B", &fleet.b), ("C", &fleet.c)] {
        let took = refused_after(gw, token, revoked_at, EVENT_BOUND).await;
        println!("revoked at A, refused at {name} after {took:?}");
    }
    assert_eq!(get_pets(&fleet.a, token).await, 401, "and at A itself");
}

/// C issues a code, a refresh token and access tokens (a JWT and an opaque one), then dies
/// (SIGKILL). A redeems the code, B refreshes the refresh token, and A accepts both access
/// tokens: everything C issued lives in the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_killed_mid_run_loses_nothing_the_others_need() {
    let mut fleet = Fleet::start().await;
    let code = light_code_at(&fleet.c).await;
    let issued = admin_password(&fleet.c).await;
    let opaque = hillary_opaque(&fleet.c).await;

    fleet.c.kill();
    assert!(
        std::net::TcpStream::connect(fleet.c.http).is_err(),
        "C is gone"
    );

    let (status, body) = redeem(&fleet.a, &code).await;
    assert_eq!(status, 200, "C's code redeems at A: {body}");
    let (status, body) = refresh(&fleet.b, str_of(&issued, "refresh_token")).await;
    assert_eq!(status, 200, "C's refresh token refreshes at B: {body}");
    assert_eq!(
        get_pets(&fleet.a, str_of(&issued, "access_token")).await,
        200,
        "C's JWT access token validates at A"
    );
    assert_eq!(
        get_with(&fleet.a, "/v1/profile", &opaque).await,
        200,
        "C's opaque access token validates at A"
    );
}
