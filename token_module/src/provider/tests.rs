//! The grants, client authentication, validation and revocation in-process: the demo
//! configuration, the memory store and a clock the tests move (no sleeps, no processes). The
//! HTTP tests in `tests/` keep the wire format covered; these pin the logic.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{AuthorizeRequest, OAuthProvider, TokenRequest};
use crate::clock::ManualClock;
use crate::config::OAuthConfig;
use crate::crypto;
use crate::store::{MemoryStore, StoreError};
use crate::validate::Rejection;

const LIGHT_BASIC: &str = "Basic f7d42348-c647-4efb-a52d-4c5787421e72:f6h1FTI8Q3-7UScPZDzfXA";
const LIGHT_ID: &str = "f7d42348-c647-4efb-a52d-4c5787421e72";
const EQDKP_ID: &str = "1421589198";
const START: u64 = 1_800_000_000;

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

/// The demo configuration's `oauth:` section, plus a public single-page-app client.
fn demo_config() -> OAuthConfig {
    #[derive(serde::Deserialize)]
    struct Demo {
        oauth: crate::config::file::OAuth,
    }
    let demo = std::fs::read_to_string(conf_dir().join("gateway.yaml")).expect("demo config");
    let spa = "  clients:\n    - {client_id: spa, public: true, grants: [authorization_code, refresh_token], scopes: [petstore.r], redirect_uris: [\"http://localhost:3000/cb\"]}\n";
    let demo = demo.replacen("  clients:\n", spa, 1);
    let file: Demo = serde_saphyr::from_str(&demo).expect("the demo config parses");
    OAuthConfig::from_file(file.oauth, &conf_dir(), "https://localhost:6882").expect("valid")
}

struct Env {
    provider: OAuthProvider,
    clock: Arc<ManualClock>,
}

fn env() -> Env {
    env_configured(|_| {})
}

/// The demo configuration changed by `edit`.
fn env_configured(edit: impl FnOnce(&mut OAuthConfig)) -> Env {
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(MemoryStore::with_clock("test:", Arc::clone(&clock) as _));
    env_on(store, clock, edit)
}

/// The demo configuration changed by `edit`, on `store`.
fn env_with(store: Arc<dyn crate::store::Store>, edit: impl FnOnce(&mut OAuthConfig)) -> Env {
    env_on(store, Arc::new(ManualClock::new(START)), edit)
}

/// The demo configuration changed by `edit`, on `store`, at `clock`'s time.
fn env_on(
    store: Arc<dyn crate::store::Store>,
    clock: Arc<ManualClock>,
    edit: impl FnOnce(&mut OAuthConfig),
) -> Env {
    let mut config = demo_config();
    edit(&mut config);
    let provider =
        OAuthProvider::with_clock(config, store, Arc::clone(&clock) as _).expect("provider");
    Env { provider, clock }
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, last]))
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish().into_bytes()
}

/// What an endpoint answered: status and JSON body.
struct Answer {
    status: u16,
    json: Value,
}

impl Answer {
    fn str(&self, field: &str) -> &str {
        self.json[field]
            .as_str()
            .unwrap_or_else(|| panic!("`{field}` in {}", self.json))
    }
}

fn answer(response: crate::Response) -> Answer {
    Answer {
        status: response.status,
        json: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
    }
}

impl Env {
    async fn token_from(
        &self,
        from: Option<IpAddr>,
        authorization: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Answer {
        let body = form(pairs);
        let outcome = self
            .provider
            .token(TokenRequest {
                content_type: Some("application/x-www-form-urlencoded"),
                authorization,
                query: None,
                body: &body,
                client_ip: from,
            })
            .await;
        answer(outcome.response)
    }

    async fn token(&self, authorization: Option<&str>, pairs: &[(&str, &str)]) -> Answer {
        self.token_from(ip(1), authorization, pairs).await
    }

    async fn revoke(&self, token: &str) -> u16 {
        let body = form(&[("token", token)]);
        self.provider
            .revoke(TokenRequest {
                content_type: Some("application/x-www-form-urlencoded"),
                authorization: Some(LIGHT_BASIC),
                query: None,
                body: &body,
                client_ip: ip(1),
            })
            .await
            .status
    }

    async fn valid(&self, token: &str) -> Result<(), Rejection> {
        self.provider
            .validate_access_token(token, false)
            .await
            .map(|_| ())
    }

    async fn admin_password(&self) -> Answer {
        self.token(
            Some(LIGHT_BASIC),
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", "123456"),
            ],
        )
        .await
    }

    /// An access token of the light client's, by `client_credentials`.
    async fn light_access_token(&self) -> String {
        let reply = self
            .token(Some(LIGHT_BASIC), &[("grant_type", "client_credentials")])
            .await;
        reply.str("access_token").to_string()
    }

    /// The light client's refresh with `refresh_token`, asking for `scope` if given.
    async fn refresh(&self, refresh_token: &str, scope: Option<&str>) -> Answer {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        form.extend(scope.map(|s| ("scope", s)));
        self.token(Some(LIGHT_BASIC), &form).await
    }

    /// The SPA client's redemption of `code` with `verifier`.
    async fn redeem_spa(&self, code: &str, verifier: &str) -> Answer {
        self.token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", code),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// A code for the SPA client, signed in as admin with HTTP Basic.
    async fn spa_code(&self, verifier: &str) -> String {
        let challenge = crypto::pkce_s256(verifier);
        let query = String::from_utf8(form(&[
            ("response_type", "code"),
            ("client_id", "spa"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "s1"),
        ]))
        .expect("UTF-8");
        let response = self
            .provider
            .authorize(AuthorizeRequest {
                method: "GET",
                query: Some(&query),
                content_type: None,
                body: b"",
                authorization: Some("Basic YWRtaW46MTIzNDU2"),
                cookie: None,
                client_ip: ip(1),
                secure: true,
            })
            .await;
        assert_eq!(response.status, 302);
        let location = response.header("location").expect("a redirect");
        assert!(
            location.starts_with("http://localhost:3000/cb?"),
            "{location}"
        );
        let query = location.split_once('?').map_or("", |(_, q)| q);
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert!(params.iter().any(|(k, v)| k == "state" && v == "s1"));
        params
            .into_iter()
            .find_map(|(k, v)| (k == "code").then_some(v))
            .expect("a code")
    }
}

#[tokio::test]
async fn client_credentials_tokens_expire_on_the_clock() {
    let env = env();
    let reply = env
        .token(Some(LIGHT_BASIC), &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "petstore.r petstore.w");
    assert!(reply.json.get("refresh_token").is_none());
    let access = reply.str("access_token").to_string();
    assert_eq!(env.valid(&access).await, Ok(()));
    // The light client's tokens live 600 s; the leeway is 60 s.
    env.clock.advance(600 + 59);
    assert_eq!(env.valid(&access).await, Ok(()), "within the leeway");
    env.clock.advance(2);
    assert_eq!(
        env.valid(&access).await,
        Err(Rejection::Invalid("the token expired"))
    );
}

#[tokio::test]
async fn password_grant_checks_the_user() {
    let env = env();
    let reply = env.admin_password().await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert!(reply.json.get("refresh_token").is_some());
    for (user, password) in [("admin", "wrong"), ("nobody", "123456")] {
        let reply = env
            .token(
                Some(LIGHT_BASIC),
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(
            (reply.status, reply.str("error")),
            (400, "invalid_grant"),
            "{user}"
        );
    }
    // The EQdkp client may use the password grant without its secret; Hillary's token is
    // opaque and kept in the store.
    let reply = env
        .token(
            None,
            &[
                ("client_id", EQDKP_ID),
                ("grant_type", "password"),
                ("username", "Hillary"),
                ("password", "12345678"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(env.valid(reply.str("access_token")).await, Ok(()));
}

#[tokio::test]
async fn the_custom_grant_is_for_trusted_clients_only() {
    let env = env();
    let reply = env
        .token(
            Some(LIGHT_BASIC),
            &[
                ("grant_type", "client_authenticated_user"),
                ("user_id", "u-42"),
                ("user_type", "customer"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let token = env
        .provider
        .validate_access_token(reply.str("access_token"), false)
        .await
        .expect("valid");
    let subject = token.token.subject.clone().expect("a user");
    assert_eq!(
        (subject.user_id.as_str(), subject.user_type.as_deref()),
        ("u-42", Some("customer"))
    );
    // The EQdkp client may not use it at all.
    let reply = env
        .token(
            None,
            &[
                ("client_id", EQDKP_ID),
                ("grant_type", "client_authenticated_user"),
                ("user_id", "u-42"),
            ],
        )
        .await;
    assert!(reply.status == 400 || reply.status == 401, "{}", reply.json);
}

#[tokio::test]
async fn a_code_is_redeemed_once_with_its_verifier() {
    let env = env();
    let verifier = "v".repeat(43);
    let code = env.spa_code(&verifier).await;
    let redeem = |verifier: String, code: String| {
        let env = &env;
        async move { env.redeem_spa(&code, &verifier).await }
    };
    let wrong = redeem("w".repeat(43), code.clone()).await;
    assert_eq!((wrong.status, wrong.str("error")), (400, "invalid_grant"));
    // A wrong verifier (or client) leaves the code to its client: it is checked, then
    // taken only as it was read. Of many right redemptions at once, exactly one wins.
    let wrong_client = env
        .token(
            Some(LIGHT_BASIC),
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    assert_eq!(wrong_client.status, 400, "{}", wrong_client.json);
    let attempts: Vec<_> = (0..32)
        .map(|_| redeem(verifier.clone(), code.clone()))
        .collect();
    let replies = futures_util::future::join_all(attempts).await;
    let winners: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "one redemption wins");
    let access = winners[0].str("access_token").to_string();
    // The losers were replays that proved possession: what the code produced is revoked.
    assert!(env.valid(&access).await.is_err());
    let code = env.spa_code(&verifier).await;
    let first = redeem(verifier.clone(), code.clone()).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let access = first.str("access_token").to_string();
    let again = redeem(verifier.clone(), code).await;
    assert_eq!((again.status, again.str("error")), (400, "invalid_grant"));
    // That replay proved possession: what the code produced is revoked.
    assert!(env.valid(&access).await.is_err());
}

/// A refresh family is revoked only by a token it handed out: its id followed by anything
/// else (what a reader of logs or the key space could make) revokes nothing, by refresh or
/// by revocation; and the store's keys do not name the id.
#[tokio::test]
async fn the_family_id_alone_revokes_nothing() {
    use crate::store::Store as _;
    let store = Arc::new(MemoryStore::new(""));
    let env = env_with(store.clone(), |_| {});
    let first = env.admin_password().await;
    let rt = first.str("refresh_token").to_string();
    let forged = format!("{}{}", &rt[..32], "ab".repeat(32));
    let reply = env.refresh(&forged, None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(env.revoke(&forged).await, 200);
    assert!(
        env.valid(first.str("access_token")).await.is_ok(),
        "still valid"
    );
    assert!(store
        .get(&format!("rtf:{}", &rt[..32]))
        .await
        .expect("get")
        .is_none());
    let rotated = env.refresh(&rt, None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
    // The retired token is genuine: its reuse revokes the family.
    let reuse = env.refresh(&rt, None).await;
    assert_eq!(reuse.status, 400);
    assert!(env.valid(rotated.str("access_token")).await.is_err());
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let env = env();
    let first = env.admin_password().await;
    let refresh = |rt: String| {
        let env = &env;
        async move { env.refresh(&rt, None).await }
    };
    let rt1 = first.str("refresh_token").to_string();
    let second = refresh(rt1.clone()).await;
    assert_eq!(second.status, 200, "{}", second.json);
    let rt2 = second.str("refresh_token").to_string();
    let access2 = second.str("access_token").to_string();
    assert_eq!(env.valid(&access2).await, Ok(()));
    // The retired token comes back: the whole family goes, the latest access token too.
    assert_eq!(refresh(rt1).await.status, 400);
    assert_eq!(refresh(rt2).await.status, 400);
    assert_eq!(
        env.valid(&access2).await,
        Err(Rejection::Invalid("the token was revoked"))
    );
    assert_eq!(
        env.valid(first.str("access_token")).await,
        Err(Rejection::Invalid("the token was revoked")),
        "every access token of the family"
    );
}

#[tokio::test]
async fn a_refresh_retried_within_its_grace_gets_the_first_answer_again() {
    let env = env_configured(|c| {
        if let Some(light) = c.clients.get_mut(LIGHT_ID) {
            light.refresh_retry_grace = Duration::from_secs(30);
        }
    });
    let refresh = |rt: String, scope: Option<&'static str>| {
        let env = &env;
        async move { env.refresh(&rt, scope).await }
    };
    let rt0 = env.admin_password().await.str("refresh_token").to_string();
    let first = refresh(rt0.clone(), None).await;
    assert_eq!(first.status, 200, "{}", first.json);
    // The answer was lost; the client sends the same request again, twice.
    env.clock.advance(29);
    for _ in 0..2 {
        let again = refresh(rt0.clone(), None).await;
        assert_eq!(again.status, 200, "{}", again.json);
        for field in ["access_token", "refresh_token", "scope"] {
            assert_eq!(again.str(field), first.str(field), "{field}");
        }
    }
    // A retry asking for more (or other) scope is refused, and revokes nothing.
    let wider = refresh(rt0.clone(), Some("petstore.r petstore.w admin")).await;
    assert_eq!((wider.status, wider.str("error")), (400, "invalid_scope"));
    let narrower = refresh(rt0.clone(), Some("petstore.r")).await;
    assert_eq!(
        (narrower.status, narrower.str("error")),
        (400, "invalid_scope")
    );
    assert_eq!(env.valid(first.str("access_token")).await, Ok(()));

    // The new token rotates as usual; its successor's retry window is its own.
    let rt1 = first.str("refresh_token").to_string();
    let second = refresh(rt1.clone(), None).await;
    assert_eq!(second.status, 200, "{}", second.json);
    // The first token is two rotations old now: that is a reuse, and the family goes.
    let stale = refresh(rt0.clone(), None).await;
    assert_eq!((stale.status, stale.str("error")), (400, "invalid_grant"));
    assert_eq!(
        refresh(second.str("refresh_token").to_string(), None)
            .await
            .status,
        400
    );
    assert_eq!(
        env.valid(second.str("access_token")).await,
        Err(Rejection::Invalid("the token was revoked"))
    );
}

#[tokio::test]
async fn past_its_grace_a_retried_refresh_is_a_reuse() {
    let env = env_configured(|c| {
        if let Some(light) = c.clients.get_mut(LIGHT_ID) {
            light.refresh_retry_grace = Duration::from_secs(30);
        }
    });
    let refresh = |rt: String| {
        let env = &env;
        async move { env.refresh(&rt, None).await }
    };
    let rt0 = env.admin_password().await.str("refresh_token").to_string();
    let first = refresh(rt0.clone()).await;
    assert_eq!(first.status, 200);
    env.clock.advance(31);
    assert_eq!(refresh(rt0).await.status, 400, "past the grace");
    assert_eq!(
        refresh(first.str("refresh_token").to_string()).await.status,
        400,
        "the family was revoked"
    );
}

/// A memory store the tests watch: with `racing`, its refresh-family swaps wait until two are
/// under way (two refreshes that run at once then both read the family before either swaps,
/// every time); every event published through it is kept.
struct WatchedStore {
    inner: MemoryStore,
    racing: Option<tokio::sync::Barrier>,
    events: std::sync::Mutex<Vec<String>>,
}

impl WatchedStore {
    fn new(racing: bool) -> Self {
        Self {
            inner: MemoryStore::new(""),
            racing: racing.then(|| tokio::sync::Barrier::new(2)),
            events: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn events(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait::async_trait]
impl crate::store::Store for WatchedStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.inner.put(key, value, ttl).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.put_if_absent(key, value, ttl).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.take(key).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        if let Some(gate) = self.racing.as_ref().filter(|_| key.starts_with("rtf:")) {
            // A lone swap (a revocation) goes on after a while.
            let _ = tokio::time::timeout(Duration::from_millis(500), gate.wait()).await;
        }
        self.inner.compare_and_swap(key, expected, new, ttl).await
    }
    async fn take_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.inner.take_if(key, expected).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.inner.incr(key, ttl).await
    }
    async fn decr(&self, key: &str) -> Result<(), StoreError> {
        self.inner.decr(key).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn publish_event(&self, event: &str) -> Result<(), StoreError> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.to_string());
        Ok(())
    }
}

#[tokio::test]
async fn two_sends_of_one_refresh_at_once_get_one_answer_within_the_grace() {
    let env = env_with(Arc::new(WatchedStore::new(true)), |config| {
        if let Some(light) = config.clients.get_mut(LIGHT_ID) {
            light.refresh_retry_grace = Duration::from_secs(30);
        }
    });
    for _ in 0..5 {
        let rt0 = env.admin_password().await.str("refresh_token").to_string();
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt0.as_str()),
        ];
        let (a, b) = tokio::join!(
            env.token(Some(LIGHT_BASIC), &form),
            env.token(Some(LIGHT_BASIC), &form)
        );
        assert_eq!((a.status, b.status), (200, 200), "{} {}", a.json, b.json);
        assert_eq!(a.str("refresh_token"), b.str("refresh_token"));
        assert_eq!(a.str("access_token"), b.str("access_token"));
        assert_eq!(env.valid(a.str("access_token")).await, Ok(()));
    }
}

#[tokio::test]
async fn a_refresh_family_dies_at_its_absolute_lifetime() {
    let env = env();
    let first = env.admin_password().await;
    // 14 days, then a refresh is refused (the clock decides, not the store's TTL).
    env.clock.advance(1_209_600);
    let reply = env
        .token(
            Some(LIGHT_BASIC),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!((reply.status, reply.str("error")), (400, "invalid_grant"));
}

#[tokio::test]
async fn revocation_denies_access_and_refresh_tokens() {
    let env = env();
    let reply = env.admin_password().await;
    let (access, refresh) = (reply.str("access_token"), reply.str("refresh_token"));
    assert_eq!(env.revoke(access).await, 200);
    assert_eq!(
        env.valid(access).await,
        Err(Rejection::Invalid("the token was revoked"))
    );
    assert_eq!(env.revoke(refresh).await, 200);
    let reply = env
        .token(
            Some(LIGHT_BASIC),
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        env.revoke("unknown").await,
        200,
        "RFC 7009: unknown is fine"
    );
}

#[tokio::test]
async fn client_authentication_and_its_brute_force_counters() {
    let env = env();
    let cc = [("grant_type", "client_credentials")];
    let wrong = format!("Basic {LIGHT_ID}:guess");
    for _ in 0..10 {
        let reply = env.token_from(ip(9), Some(&wrong), &cc).await;
        assert_eq!((reply.status, reply.str("error")), (401, "invalid_client"));
    }
    let blocked = env.token_from(ip(9), Some(LIGHT_BASIC), &cc).await;
    assert_eq!(
        (blocked.status, blocked.str("error")),
        (429, "too_many_attempts")
    );
    let served = env.token_from(ip(1), Some(LIGHT_BASIC), &cc).await;
    assert_eq!(served.status, 200, "another address is not blocked");
    // Credentials twice (Basic and body) are refused outright.
    let reply = env
        .token(
            Some(LIGHT_BASIC),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", LIGHT_ID),
                ("client_secret", "f6h1FTI8Q3-7UScPZDzfXA"),
            ],
        )
        .await;
    assert_eq!((reply.status, reply.str("error")), (400, "invalid_request"));
}

#[tokio::test]
async fn not_yet_valid_and_foreign_tokens_are_refused() {
    let env = env();
    let access = env.light_access_token().await;
    // Seen from a clock two minutes behind the issuer (beyond the 60 s leeway): not yet valid.
    let behind = Arc::new(ManualClock::new(START - 120));
    let skewed = OAuthProvider::with_clock(
        demo_config(),
        Arc::new(MemoryStore::new("test:")),
        behind as _,
    )
    .expect("provider");
    assert_eq!(
        skewed
            .validate_access_token(&access, false)
            .await
            .map(|_| ()),
        Err(Rejection::Invalid("the token is not valid yet"))
    );
    let mut tampered = access.clone();
    tampered.replace_range(access.len() - 4.., "AAAA");
    assert!(env.valid(&tampered).await.is_err());
    assert!(env.valid("not-a-token").await.is_err());
}

/// A client refreshing faster than its access tokens expire pushes the oldest out of its
/// family's memory: that token is denied at once (a later revocation of the family could not
/// reach it), but nothing was revoked, so nothing is announced; revoking the family is.
#[tokio::test]
async fn a_token_pushed_out_of_its_family_is_denied_without_an_announcement() {
    let store = Arc::new(WatchedStore::new(false));
    let env = env_with(Arc::clone(&store) as _, |_| {});
    let first = env.admin_password().await;
    let oldest = first.str("access_token").to_string();
    let mut refresh = first.str("refresh_token").to_string();
    for _ in 0..crate::records::MAX_EARLIER_ACCESS_TOKENS {
        let next = env.refresh(&refresh, None).await;
        assert_eq!(next.status, 200, "{}", next.json);
        refresh = next.str("refresh_token").to_string();
    }
    assert_eq!(env.valid(&oldest).await, Ok(()), "still remembered");
    let next = env.refresh(&refresh, None).await;
    assert_eq!(next.status, 200, "{}", next.json);
    assert!(env.valid(&oldest).await.is_err(), "pushed out, so denied");
    assert_eq!(store.events(), 0);
    assert_eq!(env.revoke(next.str("refresh_token")).await, 200);
    assert!(
        store.events() > crate::records::MAX_EARLIER_ACCESS_TOKENS,
        "one per live token"
    );
}

/// A reload keeps every cache whose inputs did not change: a secret verified against a hash
/// still configured passes without argon2, a verified token stays verified while its keys
/// and clients do. A rotated secret is checked against its new hash, and a change to what
/// verifies tokens drops what was verified.
#[tokio::test]
async fn a_reload_keeps_the_caches_whose_inputs_did_not_change() {
    use std::sync::atomic::Ordering;
    let env = env();
    let first = env.admin_password().await;
    assert_eq!(first.status, 200);
    let access = first.str("access_token").to_string();
    env.valid(&access).await.expect("valid");
    let argon2 = env.provider.hash_verifications();
    let before = argon2.load(Ordering::Relaxed);

    let same = Env {
        provider: env.provider.reconfigured(demo_config()),
        clock: Arc::clone(&env.clock),
    };
    assert_eq!(same.admin_password().await.status, 200);
    assert_eq!(
        argon2.load(Ordering::Relaxed),
        before,
        "no argon2 after a reload"
    );
    let again = same
        .provider
        .validate_access_token(&access, false)
        .await
        .expect("valid");
    assert!(again.cached, "the verified token is still known");

    let mut rotated_config = demo_config();
    let new_hash = crate::secrets::hash_secret(b"a-new-secret-for-light").expect("hash");
    if let Some(light) = rotated_config.clients.get_mut(LIGHT_ID) {
        light.secret_hash = Some(crate::secrets::PasswordHash::parse(&new_hash).expect("hash"));
    }
    rotated_config.leeway += Duration::from_secs(1);
    let rotated = Env {
        provider: env.provider.reconfigured(rotated_config),
        clock: Arc::clone(&env.clock),
    };
    let old_secret = rotated.admin_password().await;
    assert_eq!(old_secret.status, 401, "the rotated-out secret is refused");
    let checked = rotated
        .provider
        .validate_access_token(&access, false)
        .await
        .expect("valid");
    assert!(!checked.cached, "another leeway verifies again");
}

/// The browser's side of the authorization endpoint, in process: its cookies, and what the
/// last answer was.
struct Visitor<'e> {
    env: &'e Env,
    cookies: std::collections::BTreeMap<String, String>,
}

impl<'e> Visitor<'e> {
    fn new(env: &'e Env) -> Self {
        Self {
            env,
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&mut self, response: &crate::Response) {
        for (name, value) in &response.headers {
            if *name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || value.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
    }

    async fn authorize(&mut self, method: &str, pairs: &[(&str, &str)]) -> crate::Response {
        let encoded = form(pairs);
        let cookie = self.cookie_header();
        let (query, body) = if method == "GET" {
            (Some(String::from_utf8(encoded).expect("UTF-8")), Vec::new())
        } else {
            (None, encoded)
        };
        let response = self
            .env
            .provider
            .authorize(AuthorizeRequest {
                method,
                query: query.as_deref(),
                content_type: Some("application/x-www-form-urlencoded"),
                body: &body,
                authorization: None,
                cookie: cookie.as_deref(),
                client_ip: ip(7),
                secure: true,
            })
            .await;
        self.keep_cookies(&response);
        response
    }

    async fn logout(&mut self, query: &str) -> crate::Response {
        let cookie = self.cookie_header();
        let response = self
            .env
            .provider
            .logout(crate::LogoutRequest {
                method: "GET",
                query: Some(query),
                content_type: None,
                body: b"",
                cookie: cookie.as_deref(),
                secure: true,
            })
            .await;
        self.keep_cookies(&response);
        response
    }

    /// Signs `admin` in on the form; the answer to the form.
    async fn sign_in(&mut self, request: &[(&str, &str)]) -> crate::Response {
        let page = self.authorize("GET", request).await;
        assert_eq!(page.status, 200, "the form");
        let html = String::from_utf8(page.body.clone()).expect("UTF-8");
        let csrf = html
            .split("name=\"csrf_token\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a CSRF token")
            .to_string();
        let mut form = request.to_vec();
        form.extend([
            ("csrf_token", csrf.as_str()),
            ("username", "admin"),
            ("password", "123456"),
            ("decision", "sign_in"),
        ]);
        self.authorize("POST", &form).await
    }
}

fn redirected_with(response: &crate::Response, key: &str) -> Option<String> {
    let location = response.header("location")?;
    let query = location.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

const LIGHT_REQUEST: [(&str, &str); 3] = [
    ("response_type", "code"),
    ("client_id", LIGHT_ID),
    ("state", "s"),
];

/// A session spares the sign-in until `max_age` or `prompt=login` asks for a fresh one;
/// `prompt=none` never shows a page; logout ends the session, and goes back only to a URI
/// the client registered.
#[tokio::test]
async fn sessions_prompt_max_age_and_logout() {
    let env = env_configured(|c| {
        if let Some(light) = c.clients.get_mut(LIGHT_ID) {
            light.post_logout_redirect_uris = vec!["https://app.example/bye".into()];
        }
    });
    let mut browser = Visitor::new(&env);
    let none = [&LIGHT_REQUEST[..], &[("prompt", "none")]].concat();
    let refused = browser.authorize("GET", &none).await;
    assert_eq!(
        redirected_with(&refused, "error").as_deref(),
        Some("login_required")
    );
    let signed_in = browser.sign_in(&LIGHT_REQUEST).await;
    assert!(
        redirected_with(&signed_in, "code").is_some(),
        "{signed_in:?}"
    );
    assert!(browser.cookies.contains_key(crate::SESSION_COOKIE));

    let silent = browser.authorize("GET", &none).await;
    assert!(
        redirected_with(&silent, "code").is_some(),
        "the session answers"
    );
    env.clock.advance(120);
    let max_age = [&LIGHT_REQUEST[..], &[("max_age", "60")]].concat();
    assert_eq!(
        browser.authorize("GET", &max_age).await.status,
        200,
        "too old: the form"
    );
    let max_age = [&LIGHT_REQUEST[..], &[("max_age", "600")]].concat();
    assert_eq!(browser.authorize("GET", &max_age).await.status, 302);
    let login = [&LIGHT_REQUEST[..], &[("prompt", "login")]].concat();
    assert_eq!(browser.authorize("GET", &login).await.status, 200);
    let bad = [&LIGHT_REQUEST[..], &[("prompt", "none login")]].concat();
    assert_eq!(
        redirected_with(&browser.authorize("GET", &bad).await, "error").as_deref(),
        Some("invalid_request")
    );

    let elsewhere = browser
        .logout(&format!(
            "client_id={LIGHT_ID}&post_logout_redirect_uri=https://evil.example/"
        ))
        .await;
    assert_eq!(
        elsewhere.status, 400,
        "an unregistered URI is never followed"
    );
    assert!(browser.cookies.contains_key(crate::SESSION_COOKIE));
    let out = browser
        .logout(&format!(
            "client_id={LIGHT_ID}&post_logout_redirect_uri=https://app.example/bye&state=x"
        ))
        .await;
    assert_eq!(
        out.header("location"),
        Some("https://app.example/bye?state=x")
    );
    assert!(!browser.cookies.contains_key(crate::SESSION_COOKIE));
    let refused = browser.authorize("GET", &none).await;
    assert_eq!(
        redirected_with(&refused, "error").as_deref(),
        Some("login_required"),
        "the session ended"
    );
}

/// `consent: once` asks the first time and whenever the scopes grow, and `prompt=none`
/// answers `consent_required` instead of asking; `required` asks every time.
#[tokio::test]
async fn consent_once_is_remembered_until_the_scopes_grow() {
    use crate::config::Consent;
    let env = env_configured(|c| {
        if let Some(light) = c.clients.get_mut(LIGHT_ID) {
            light.consent = Consent::Once;
        }
    });
    let mut browser = Visitor::new(&env);
    let read = [&LIGHT_REQUEST[..], &[("scope", "petstore.r")]].concat();
    let asked = browser.sign_in(&read).await;
    assert_eq!(asked.status, 200, "the consent page");
    let html = String::from_utf8(asked.body.clone()).expect("UTF-8");
    assert!(html.contains("value=\"allow\""));
    let csrf = html
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token")
        .to_string();
    let mut allow = read.clone();
    allow.extend([("csrf_token", csrf.as_str()), ("decision", "allow")]);
    let allowed = browser.authorize("POST", &allow).await;
    assert!(redirected_with(&allowed, "code").is_some(), "{allowed:?}");

    let silent = [&read[..], &[("prompt", "none")]].concat();
    assert!(redirected_with(&browser.authorize("GET", &silent).await, "code").is_some());
    let more = [
        &LIGHT_REQUEST[..],
        &[("scope", "petstore.r petstore.w"), ("prompt", "none")],
    ]
    .concat();
    assert_eq!(
        redirected_with(&browser.authorize("GET", &more).await, "error").as_deref(),
        Some("consent_required")
    );
    // A forged "allow" without the page's CSRF token does nothing.
    let mut forged = read.clone();
    forged.extend([("csrf_token", "guess"), ("decision", "allow")]);
    assert_eq!(browser.authorize("POST", &forged).await.status, 403);
}
mod on_the_clock;
