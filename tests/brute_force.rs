//! Brute-force limits under concurrency, through the real gateway on the memory store and on
//! a real Redis: an attempt is counted before its secret is checked, so a burst of guesses
//! sent at once gets at most `max_failures` of them checked, a right credential inside or
//! after the burst is refused too, and right credentials sent at once are never refused by
//! their own number.

mod common;

use std::net::IpAddr;

use common::oauth::*;
use common::{client, metric_value};
use futures_util::future::join_all;

/// The demo's budget: `brute_force.max_failures`.
const MAX_FAILURES: usize = 10;
const BURST: usize = 200;

/// A password-grant request for `username` (EQdkp client, no secret).
fn password_attempt(
    http: &reqwest::Client,
    env: &OAuthEnv,
    username: &str,
    password: &str,
) -> reqwest::RequestBuilder {
    http.post(env.token_url()).form(&[
        ("client_id", EQDKP_ID),
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ])
}

/// A client that opens a connection per request in flight (no idle reuse), so a burst is as
/// many connections as requests.
fn burst_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

async fn hash_verifications(env: &OAuthEnv) -> f64 {
    metric_value(
        &env.gw.metrics().await,
        "tollgate_secret_hash_verifications_total",
    )
    .unwrap_or(0.0)
}

/// Sends `requests` at once; once `settled` of them have answered, sends `last` too (inside
/// the burst, after its first answers). Returns the statuses of the burst and of `last`.
async fn burst_then(
    requests: Vec<reqwest::RequestBuilder>,
    settled: usize,
    last: reqwest::RequestBuilder,
) -> (Vec<(u16, Option<String>)>, u16) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let resp = req.send().await.expect("burst request");
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let answer = (resp.status().as_u16(), retry_after);
                let _ = tx.send(());
                answer
            })
        })
        .collect();
    for _ in 0..settled {
        rx.recv().await.expect("an answer");
    }
    let last = last.send().await.expect("last request").status().as_u16();
    let answers = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    (answers, last)
}

async fn a_burst_of_wrong_passwords_gets_at_most_the_budget_checked(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    // Hillary signs in twice, so her password is remembered and its budget answer reused: a
    // remembered password must not pass where a guess is refused either.
    assert_eq!(hillary_token(&env, None).await.status, 200);
    assert_eq!(hillary_token(&env, None).await.status, 200);
    let before = hash_verifications(&env).await;
    let http = burst_client();
    let guesses = (0..BURST)
        .map(|i| password_attempt(&http, &env, "Hillary", &format!("wrong-{i}")))
        .collect();
    let right = password_attempt(&http, &env, "Hillary", "12345678");
    let (answers, last) = burst_then(guesses, MAX_FAILURES, right).await;
    let checked = answers.iter().filter(|(s, _)| *s == 400).count();
    let refused = answers.iter().filter(|(s, _)| *s == 429).count();
    assert!(
        checked <= MAX_FAILURES,
        "{checked} wrong passwords were checked (at most {MAX_FAILURES})"
    );
    assert_eq!(checked + refused, BURST, "only 400 or 429: {answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, retry)| retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok())),
        "every 429 says when to retry"
    );
    assert_eq!(last, 429, "the right password inside the burst is refused");
    let verified = hash_verifications(&env).await - before;
    assert!(
        verified <= MAX_FAILURES as f64,
        "{verified} argon2 verifications for the burst"
    );
    // Past the burst, still refused: remembered or not.
    let resp = password_attempt(&client(), &env, "Hillary", "12345678")
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_wrong_passwords_gets_at_most_the_budget_checked_in_memory() {
    a_burst_of_wrong_passwords_gets_at_most_the_budget_checked(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_wrong_passwords_gets_at_most_the_budget_checked_on_redis() {
    a_burst_of_wrong_passwords_gets_at_most_the_budget_checked(Backend::Redis).await;
}

/// Guesses spread over many accounts count against the address: at most the budget is
/// checked, whatever the usernames.
async fn a_burst_over_many_accounts_counts_against_the_address(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let http = burst_client();
    let guesses = (0..BURST)
        .map(|i| password_attempt(&http, &env, &format!("user-{i}"), "guess"))
        .collect();
    let right = password_attempt(&http, &env, "Hillary", "12345678");
    let (answers, last) = burst_then(guesses, MAX_FAILURES, right).await;
    let checked = answers.iter().filter(|(s, _)| *s == 400).count();
    assert!(checked <= MAX_FAILURES, "{checked} guesses checked");
    assert_eq!(last, 429, "the address has no budget left");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_many_accounts_counts_against_the_address_in_memory() {
    a_burst_over_many_accounts_counts_against_the_address(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_many_accounts_counts_against_the_address_on_redis() {
    a_burst_over_many_accounts_counts_against_the_address(Backend::Redis).await;
}

/// The same for client secrets: a burst of wrong secrets for the light-oauth2 client gets at
/// most the budget checked, and its right secret is refused after it.
async fn a_burst_of_wrong_client_secrets_gets_at_most_the_budget_checked(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let http = burst_client();
    let guesses = (0..BURST)
        .map(|i| {
            http.post(env.token_url())
                .basic_auth(LIGHT_ID, Some(format!("wrong-{i}")))
                .form(&[("grant_type", "client_credentials")])
        })
        .collect();
    let right = http
        .post(env.token_url())
        .basic_auth(LIGHT_ID, Some(LIGHT_SECRET))
        .form(&[("grant_type", "client_credentials")]);
    let (answers, last) = burst_then(guesses, MAX_FAILURES, right).await;
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    let refused = answers.iter().filter(|(s, _)| *s == 429).count();
    assert!(checked <= MAX_FAILURES, "{checked} wrong secrets checked");
    assert_eq!(checked + refused, BURST, "{answers:?}");
    assert_eq!(last, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_wrong_client_secrets_gets_at_most_the_budget_checked_in_memory() {
    a_burst_of_wrong_client_secrets_gets_at_most_the_budget_checked(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_wrong_client_secrets_gets_at_most_the_budget_checked_on_redis() {
    a_burst_of_wrong_client_secrets_gets_at_most_the_budget_checked(Backend::Redis).await;
}

/// A service starting up sends its right credentials many times at once, before any is
/// remembered: none is refused, and what they counted is given back.
#[tokio::test(flavor = "multi_thread")]
async fn right_credentials_sent_at_once_are_never_refused_by_their_number() {
    let env = OAuthEnv::start(Backend::Redis, &[]);
    let http = burst_client();
    let requests = (0..100).map(|_| {
        http.post(env.token_url())
            .header("authorization", light_basic())
            .form(&[("grant_type", "client_credentials")])
            .send()
    });
    let statuses: Vec<u16> = join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("token").status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Nothing is left counted: the whole budget of wrong guesses is still there.
    let wrong = |i: usize| {
        http.post(env.token_url())
            .basic_auth(LIGHT_ID, Some(format!("wrong-{i}")))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for i in 0..MAX_FAILURES {
        assert_eq!(wrong(i).await.expect("token").status(), 401, "guess {i}");
    }
    assert_eq!(wrong(MAX_FAILURES).await.expect("token").status(), 429);
}

/// An IPv6 client holds a whole /64: its addresses share one budget (here behind a trusted
/// proxy, which names them).
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_addresses_count_by_their_64() {
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[("max_failures: 10", "max_failures: 3")],
        String::new(),
        "",
        "  trusted_proxies: [127.0.0.0/8]\n",
    );
    let http = client();
    let attempt = |from: String, password: &'static str| {
        password_attempt(&http, &env, "Hillary", password)
            .header("x-forwarded-for", from)
            .send()
    };
    let mut seen = Vec::new();
    for i in 1..=4 {
        let from = format!("2001:db8:1:2:{i}::{i}");
        seen.push(
            attempt(from, "wrong")
                .await
                .expect("token")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(seen, [400, 400, 400, 429], "one /64, one budget");
    let other: IpAddr = "2001:db8:1:3::1".parse().expect("address");
    let resp = attempt(other.to_string(), "12345678").await.expect("token");
    assert_eq!(resp.status(), 200, "another /64 has its own budget");
}

/// An identifier longer than 256 bytes is refused before it is counted or logged; the
/// counters' keys never hold the caller's strings.
#[tokio::test(flavor = "multi_thread")]
async fn long_identifiers_are_refused_and_keys_are_digests() {
    let env = OAuthEnv::start(Backend::Redis, &[]);
    let long_user = format!("marker-user-{}", "u".repeat(300));
    let long_client = format!("marker-client-{}", "c".repeat(300));
    let resp = password_attempt(&client(), &env, &long_user, "x")
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request", "{body}");
    let resp = client()
        .post(env.token_url())
        .basic_auth(&long_client, Some("secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 400);
    // Guesses within the limits are counted under digests.
    for who in ["marker-guessed-user", "Hillary"] {
        let resp = password_attempt(&client(), &env, who, "wrong")
            .send()
            .await
            .expect("token");
        assert_eq!(resp.status(), 400);
    }
    let resp = client()
        .post(env.token_url())
        .basic_auth("marker-guessed-client", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 401);
    let redis = env.redis.as_ref().expect("redis");
    let keys = redis.cli(&["--scan"]);
    assert!(keys.contains("bf:"), "counters exist: {keys}");
    for marker in ["marker", "Hillary"] {
        assert!(!keys.contains(marker), "a key holds `{marker}`: {keys}");
    }
    assert!(
        !env.gw.log().contains("marker"),
        "a caller's identifier reached the log"
    );
}
