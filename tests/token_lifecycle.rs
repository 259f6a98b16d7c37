//! Token lifecycle defects found by attacking the running gateway: a revocation racing a
//! refresh, code replays that prove nothing, Redis eviction, RFC 9068 access tokens, lockouts
//! used as a denial of service, and the small ones.

mod common;

use common::oauth::*;
use common::{client, metric_value};
use serde_json::Value;

async fn refresh(env: &OAuthEnv, refresh_token: &str) -> TokenReply {
    token(
        env,
        Some(&light_basic()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A refresh and a revocation of the same family, sent at once, many times: whichever wins,
/// afterwards nothing from the family validates (the access token a winning refresh issued
/// included).
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_racing_a_refresh_leaves_nothing_valid() {
    let env = OAuthEnv::start(Backend::Redis, &[]);
    let mut refresh_won = 0;
    for round in 0..40 {
        let first = light_admin_password(&env).await;
        let (rt0, at0) = (
            first.str("refresh_token").to_string(),
            first.str("access_token").to_string(),
        );
        let basic = light_basic();
        let revoke_form = [
            ("token", rt0.as_str()),
            ("token_type_hint", "refresh_token"),
        ];
        let revoke = form_post(&env, "/oauth2/revoke", Some(&basic), &revoke_form);
        let (refreshed, (revoked, _)) = tokio::join!(refresh(&env, &rt0), revoke);
        assert_eq!(revoked, 200, "round {round}");
        assert_eq!(
            introspect(&env, &at0).await["active"],
            false,
            "round {round}: first access token"
        );
        if refreshed.status == 200 {
            refresh_won += 1;
            let at1 = refreshed.str("access_token");
            assert_eq!(
                introspect(&env, at1).await["active"],
                false,
                "round {round}: the access token of a refresh that raced the revocation is still valid"
            );
            let again = refresh(&env, refreshed.str("refresh_token")).await;
            assert_eq!(again.status, 400, "round {round}: {}", again.json);
        } else {
            assert_eq!(refreshed.json["error"], "invalid_grant", "round {round}");
        }
        assert_eq!(
            introspect(&env, &rt0).await["active"],
            false,
            "round {round}"
        );
    }
    eprintln!("the refresh won {refresh_won} of 40 rounds");
}

const SPA_ID: &str = "spa";
const SPA_REDIRECT: &str = "http://localhost:3000/callback";

/// The demo config plus a public client (a single-page app: no secret, PKCE).
fn with_public_client() -> [(&'static str, &'static str); 1] {
    [(
        "\n  users:\n",
        "\n    - client_id: spa\n      public: true\n      grants: [authorization_code, refresh_token]\n      scopes: [petstore.r]\n      redirect_uris: [http://localhost:3000/callback]\n      token_format: jwt\n  users:\n",
    )]
}

/// A code for `client_id` with an S256 challenge of `verifier`.
async fn code_with_pkce(env: &OAuthEnv, client_id: &str, redirect: &str, verifier: &str) -> String {
    let challenge = {
        use base64::Engine;
        use sha2_digest::digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest(verifier.as_bytes()))
    };
    let params = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let (status, query) = authorize(env, &params, "admin", "123456").await;
    assert_eq!(status, 302, "{query:?}");
    query
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("a code in {query:?}"))
}

/// SHA-256 through aws-lc-rs, the project's own crypto library (a test dependency).
mod sha2_digest {
    pub fn digest(data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
            .as_ref()
            .to_vec()
    }
}

/// A replay revokes what the code produced only when it proves possession: the PKCE verifier
/// when the code had a challenge. A wrong or missing verifier, or another client, gets
/// `invalid_grant` and revokes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_code_replay_that_proves_nothing_revokes_nothing() {
    let env = OAuthEnv::start(Backend::Redis, &with_public_client());
    let verifier = "a".repeat(20) + &"b".repeat(23);
    let wrong_verifier = "c".repeat(43);
    let code = code_with_pkce(&env, SPA_ID, SPA_REDIRECT, &verifier).await;
    let redeem = |verifier: Option<&str>, client_id: &str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.clone()),
            ("redirect_uri", SPA_REDIRECT.to_string()),
            ("client_id", client_id.to_string()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_string()));
        }
        if client_id == EQDKP_ID {
            form.push(("client_secret", EQDKP_SECRET.to_string()));
        }
        let env = &env;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(env, None, &form).await
        }
    };
    let spa_refresh = |rt: String| {
        let env = &env;
        async move {
            token(
                env,
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("client_id", SPA_ID),
                ],
            )
            .await
        }
    };
    let first = redeem(Some(&verifier), SPA_ID).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let access = first.str("access_token").to_string();
    let mut refresh_token = first.str("refresh_token").to_string();

    for (what, verifier, client_id) in [
        ("a wrong verifier", Some(wrong_verifier.as_str()), SPA_ID),
        ("no verifier", None, SPA_ID),
        ("another client", Some(verifier.as_str()), EQDKP_ID),
    ] {
        let replay = redeem(verifier, client_id).await;
        assert_eq!(
            (replay.status, replay.json["error"].as_str()),
            (400, Some("invalid_grant")),
            "{what}"
        );
        assert_eq!(
            introspect(&env, &access).await["active"],
            true,
            "{what} revoked the access token"
        );
        let rotated = spa_refresh(refresh_token.clone()).await;
        assert_eq!(
            rotated.status, 200,
            "{what} revoked the refresh token: {}",
            rotated.json
        );
        refresh_token = rotated.str("refresh_token").to_string();
    }

    // The holder of the verifier replaying: the code was stolen and used, so everything goes.
    let replay = redeem(Some(&verifier), SPA_ID).await;
    assert_eq!(
        (replay.status, replay.json["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(introspect(&env, &access).await["active"], false);
    assert_eq!(spa_refresh(refresh_token).await.status, 400);
}

/// A token request sent from the loopback address `from` (127.0.0.x: every one is this host).
async fn token_from(
    env: &OAuthEnv,
    from: [u8; 4],
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> u16 {
    let http = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .expect("client");
    let mut req = http.post(env.token_url()).form(form);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.expect("token request").status().as_u16()
}

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
const USER: [u8; 4] = [127, 0, 0, 1];

fn hillary(password: &str) -> [(&'static str, String); 4] {
    [
        ("client_id", EQDKP_ID.to_string()),
        ("grant_type", "password".to_string()),
        ("username", "Hillary".to_string()),
        ("password", password.to_string()),
    ]
}

fn pairs<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Ten wrong passwords from one address block that address, not the user: the right
/// password from another address is served. The same for a client's secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_lockout_blocks_the_attacker_not_the_account() {
    let env = OAuthEnv::start(Backend::Redis, &[]);
    for _ in 0..10 {
        assert_eq!(
            token_from(&env, ATTACKER, None, &pairs(&hillary("guess"))).await,
            400
        );
    }
    assert_eq!(
        token_from(&env, ATTACKER, None, &pairs(&hillary("12345678"))).await,
        429,
        "the attacker's address is blocked, even with the right password"
    );
    assert_eq!(
        token_from(&env, USER, None, &pairs(&hillary("12345678"))).await,
        200,
        "the user, from an address of their own, is served"
    );

    let guess = format!("Basic {}", base64_basic(EQDKP_ID, "guess"));
    let right = format!("Basic {}", base64_basic(EQDKP_ID, EQDKP_SECRET));
    let revoke_form = [("token", "unknown")];
    let revoke_from = |from: [u8; 4], auth: String| {
        let env = &env;
        async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .local_address(std::net::IpAddr::from(from))
                .build()
                .expect("client");
            http.post(env.gw.url("/oauth2/revoke"))
                .header("authorization", auth)
                .form(&revoke_form)
                .send()
                .await
                .expect("revoke")
                .status()
                .as_u16()
        }
    };
    for _ in 0..10 {
        assert_eq!(revoke_from([127, 0, 0, 3], guess.clone()).await, 401);
    }
    assert_eq!(
        revoke_from([127, 0, 0, 3], right.clone()).await,
        429,
        "the guessing address is blocked"
    );
    assert_eq!(
        revoke_from(USER, right).await,
        200,
        "the client, from its own address, is served"
    );
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
}

/// Past `account_max_failures` from all addresses together, attempts on the account are
/// slowed down, never refused: the right password from a fresh address still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn many_failures_on_an_account_slow_it_down_without_locking_it() {
    let env = OAuthEnv::start(
        Backend::Memory,
        &[(
            "max_failures: 10",
            "max_failures: 2\n    account_max_failures: 4\n    max_delay_ms: 300",
        )],
    );
    for last in 2..=4u8 {
        for _ in 0..2 {
            assert_eq!(
                token_from(&env, [127, 0, 1, last], None, &pairs(&hillary("guess"))).await,
                400
            );
        }
    }
    assert_eq!(
        token_from(&env, [127, 0, 1, 2], None, &pairs(&hillary("12345678"))).await,
        429
    );
    let before =
        metric_value(&env.gw.metrics().await, "tollgate_auth_throttled_total").unwrap_or(0.0);
    assert_eq!(
        token_from(&env, USER, None, &pairs(&hillary("12345678"))).await,
        200
    );
    let after =
        metric_value(&env.gw.metrics().await, "tollgate_auth_throttled_total").unwrap_or(0.0);
    assert_eq!(after - before, 1.0, "the attempt was slowed down");
}

/// A gateway with the demo OAuth config on `redis`.
fn gateway_on(redis: &common::RedisServer) -> common::Gateway {
    common::Gateway::start(common::GatewayOptions {
        store_url: redis.url(),
        extra_yaml: demo_oauth_yaml(&[]),
        ..Default::default()
    })
}

async fn evicting_gauge(gw: &common::Gateway) -> Option<f64> {
    metric_value(&gw.metrics().await, "tollgate_store_evicting_policy")
}

const EVICTION_WARNING: &str = "maxmemory-policy can evict keys";

/// An evicting Redis is reported at start (once in the log, and as a gauge) and on every
/// `/readyz`; switching it to `noeviction` clears the gauge.
#[tokio::test(flavor = "multi_thread")]
async fn an_evicting_redis_is_reported() {
    let redis = common::RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let gw = gateway_on(&redis);
    // The start-up check runs in the background: wait for it (a wait, not a timing claim).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while evicting_gauge(&gw).await != Some(1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "no start-up report:\n{}",
            gw.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        assert_eq!(gw.readyz().await, 200, "an evicting Redis still serves");
    }
    assert_eq!(
        gw.log().matches(EVICTION_WARNING).count(),
        1,
        "warned once:\n{}",
        gw.log()
    );
    assert!(gw.log().contains("allkeys-lru"));
    assert_eq!(
        redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
        "OK"
    );
    assert_eq!(gw.readyz().await, 200);
    assert_eq!(evicting_gauge(&gw).await, Some(0.0));
}

/// `noeviction` is fine, and a Redis that refuses `CONFIG` (as managed services do) is
/// tolerated: the policy is unknown, not an outage.
#[tokio::test(flavor = "multi_thread")]
async fn a_safe_or_silent_redis_is_not_reported() {
    for args in [
        &["--maxmemory-policy", "noeviction"][..],
        &["--rename-command", "CONFIG", ""][..],
    ] {
        let redis = common::RedisServer::start_with(args);
        let gw = gateway_on(&redis);
        assert_eq!(gw.readyz().await, 200, "{args:?}");
        assert_eq!(evicting_gauge(&gw).await, Some(0.0), "{args:?}");
        assert!(
            !gw.log().contains(EVICTION_WARNING),
            "{args:?}:\n{}",
            gw.log()
        );
        assert!(
            !gw.log().contains("store call failed"),
            "{args:?}:\n{}",
            gw.log()
        );
    }
}

/// With Redis full (and not evicting), every grant that must keep something fails with 503
/// and hands out nothing; one that keeps nothing (a JWT by client_credentials) still works.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_redis_fails_writes_with_503_and_issues_nothing() {
    let redis = common::RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let gw = gateway_on(&redis);
    let env = OAuthEnv { gw, redis: None };
    let before = light_admin_password(&env).await;
    assert_eq!(before.status, 200);
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
    let password = light_admin_password(&env).await;
    assert_eq!(
        (password.status, password.json["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(
        password.json.get("access_token").is_none() && password.json.get("refresh_token").is_none()
    );
    let opaque = hillary_token(&env, None).await;
    assert_eq!(opaque.status, 503, "{}", opaque.json);
    assert!(opaque.json.get("access_token").is_none());
    let rotated = refresh(&env, before.str("refresh_token")).await;
    assert_eq!(rotated.status, 503, "{}", rotated.json);
    let (status, _) = form_post(
        &env,
        "/oauth2/revoke",
        Some(&light_basic()),
        &[("token", before.str("refresh_token"))],
    )
    .await;
    assert_eq!(
        status, 503,
        "a revocation that cannot be kept is not acknowledged"
    );
    assert_eq!(
        light_client_credentials(&env, None).await.status,
        200,
        "a JWT keeps nothing in the store"
    );
    // Room again: the refresh token that could not be rotated still works.
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "0"]), "OK");
    assert_eq!(refresh(&env, before.str("refresh_token")).await.status, 200);
}

const RS_ID: &str = "resource-client";

/// The demo config plus a client on the default token profile (RFC 9068), sharing the
/// light-oauth2 client's secret, and a protected route to an echo upstream.
async fn rfc9068_env() -> OAuthEnv {
    let demo = std::fs::read_to_string(common::repo_root().join("conf/gateway.yaml"))
        .expect("demo config");
    let hash_line = demo
        .lines()
        .find(|l| l.trim_start().starts_with("secret_hash:"))
        .expect("a secret hash")
        .trim()
        .to_string();
    let client = format!(
        "\n    - client_id: {RS_ID}\n      {hash_line}\n      grants: [client_credentials, password, refresh_token]\n      scopes: [petstore.r, petstore.w]\n      audience: urn:petstore\n  users:\n"
    );
    let up = common::start_upstream("svc").await;
    let routes = format!("  - path_prefix: /v1/pets\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [petstore.r]}}\n");
    OAuthEnv::start_with(
        Backend::Memory,
        &[("\n  users:\n", client.as_str())],
        routes,
        "",
    )
}

fn rs_basic() -> String {
    format!("Basic {}", base64_basic(RS_ID, LIGHT_SECRET))
}

/// Checks a token with jsonwebtoken and the demo public key, as a standard resource server
/// would (with `issuer`, also `iss` and a required `sub`, as RFC 9068 has them); returns its
/// header and claims.
fn verify_independently(
    token: &str,
    audience: &str,
    issuer: Option<&str>,
) -> (jsonwebtoken::Header, Value) {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let header = decode_header(token).expect("header");
    let pem = std::fs::read(common::repo_root().join("conf/keys/demo-rs256-100.pub.pem"))
        .expect("public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    }
    let claims = decode::<Value>(
        token,
        &DecodingKey::from_rsa_pem(&pem).expect("key"),
        &validation,
    )
    .expect("verifies")
    .claims;
    (header, claims)
}

async fn get_pets(env: &OAuthEnv, token: &str) -> (u16, Value) {
    env.gw.bearer_get("/v1/pets", token).await
}

/// A client on the RFC 9068 profile gets `typ: at+jwt` tokens with `sub`, `client_id` and a
/// string `scope`, which a standard library verifies and Tollgate's own routes accept; the
/// light-oauth2 client keeps its seed shape.
#[tokio::test(flavor = "multi_thread")]
async fn rfc9068_access_tokens_end_to_end() {
    let env = rfc9068_env().await;
    let issuer = "https://localhost:6882";
    let cc = token(
        &env,
        Some(&rs_basic()),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(cc.status, 200, "{}", cc.json);
    let (header, claims) =
        verify_independently(cc.str("access_token"), "urn:petstore", Some(issuer));
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some("100"));
    assert_eq!(claims["sub"], RS_ID, "no user: sub is the client");
    assert_eq!(claims["client_id"], RS_ID);
    assert_eq!(claims["scope"], "petstore.r petstore.w");
    for claim in ["iat", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim} in {claims}");
    }
    assert!(claims.get("user_id").is_none(), "{claims}");
    let (status, echo) = get_pets(&env, cc.str("access_token")).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-client-id"][0], RS_ID);
    assert_eq!(echo["headers"]["x-scopes"][0], "petstore.r petstore.w");
    assert!(
        echo["headers"].get("x-user-id").is_none(),
        "the client is no user: {echo}"
    );
    assert_eq!(
        introspect(&env, cc.str("access_token")).await["scope"],
        "petstore.r petstore.w"
    );

    let form = [
        ("grant_type", "password"),
        ("username", "admin"),
        ("password", "123456"),
        ("scope", "petstore.r"),
    ];
    let user = token(&env, Some(&rs_basic()), &form).await;
    assert_eq!(user.status, 200, "{}", user.json);
    let (_, claims) = verify_independently(user.str("access_token"), "urn:petstore", Some(issuer));
    assert_eq!(
        (claims["sub"].as_str(), claims["scope"].as_str()),
        (Some("admin"), Some("petstore.r"))
    );
    let (status, echo) = get_pets(&env, user.str("access_token")).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-user-id"][0], "admin");
    assert_eq!(echo["headers"]["x-user-type"][0], "admin");
    let rotated = refresh_as(&env, &rs_basic(), user.str("refresh_token")).await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
    let (header, claims) =
        verify_independently(rotated.str("access_token"), "urn:petstore", Some(issuer));
    assert_eq!(
        (header.typ.as_deref(), claims["sub"].as_str()),
        (Some("at+jwt"), Some("admin"))
    );

    // The seed client keeps the light-oauth2 shape.
    let light = light_client_credentials(&env, None).await;
    let (header, claims) =
        verify_independently(light.str("access_token"), "urn:com.networknt", None);
    assert_eq!(header.typ, None);
    assert!(claims["scope"].is_array(), "{claims}");
    assert_eq!(get_pets(&env, light.str("access_token")).await.0, 200);
}

async fn refresh_as(env: &OAuthEnv, basic: &str, refresh_token: &str) -> TokenReply {
    token(
        env,
        Some(basic),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Signs `claims` with the demo key (kid 100) and header `typ`.
fn sign_with_typ(claims: &Value, typ: Option<&str>) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let pem = std::fs::read(common::repo_root().join("conf/keys/demo-rs256-100.pem")).expect("key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("100".into());
    header.typ = typ.map(str::to_string);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(&pem).expect("RSA key"),
    )
    .expect("sign")
}

/// RFC 8725 explicit typing: a token of an RFC 9068 client must say `at+jwt`; the validator
/// takes `scope` in either shape; id_tokens stay refused.
#[tokio::test(flavor = "multi_thread")]
async fn rfc9068_tokens_must_be_typed() {
    let env = rfc9068_env().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = |client_id: &str, iss: &str, aud: &str, jti: &str, scope: Value| {
        serde_json::json!({
            "iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": jti,
            "sub": "admin", "client_id": client_id, "scope": scope,
        })
    };
    let rs = |jti: &str, scope: Value| {
        claims(RS_ID, "https://localhost:6882", "urn:petstore", jti, scope)
    };
    for (typ, scope, want) in [
        (Some("at+jwt"), Value::from("petstore.r petstore.w"), 200),
        (Some("application/at+jwt"), Value::from("petstore.r"), 200),
        (Some("AT+JWT"), serde_json::json!(["petstore.r"]), 200),
        (None, Value::from("petstore.r"), 401),
        (Some("JWT"), Value::from("petstore.r"), 401),
        (Some("at+jwt"), Value::from("petstore.w"), 403),
    ] {
        let jti = format!("typ-{}-{}", typ.unwrap_or("none"), want);
        let (status, echo) = get_pets(&env, &sign_with_typ(&rs(&jti, scope.clone()), typ)).await;
        assert_eq!(status, want, "typ {typ:?}, scope {scope}: {echo}");
        if want == 200 {
            assert_eq!(echo["headers"]["x-user-id"][0], "admin");
        }
    }
    // The light-oauth2 profile needs no typ and takes a string scope too.
    let light = claims(
        LIGHT_ID,
        "urn:com:networknt:oauth2:v1",
        "urn:com.networknt",
        "light-string",
        Value::from("petstore.r"),
    );
    assert_eq!(get_pets(&env, &sign_with_typ(&light, None)).await.0, 200);
    // An id_token is no access token, whatever the profile.
    let id_token = hillary_id_token(&env).await;
    assert_eq!(get_pets(&env, &id_token).await.0, 401);
}

/// Hillary's id_token (EQdkp client, password grant with `openid`).
async fn hillary_id_token(env: &OAuthEnv) -> String {
    let form = [
        ("client_id", EQDKP_ID),
        ("grant_type", "password"),
        ("username", "Hillary"),
        ("password", "12345678"),
        ("scope", "openid"),
    ];
    token(env, None, &form).await.str("id_token").to_string()
}

/// Discovery names each signing algorithm once, even when keys that share one are not
/// neighbours in the config.
#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_each_algorithm_once() {
    let yaml = demo_oauth_yaml(&[]);
    let (start, end) = (
        yaml.find("  keys:\n").expect("keys"),
        yaml.find("  clients:\n").expect("clients"),
    );
    let dir = common::repo_root().join("conf/keys");
    let key = |kid: &str, file: &str, alg: &str, active: bool| {
        format!(
            "    - {{kid: \"{kid}\", algorithm: {alg}, private_key: \"{}\", active: {active}}}\n",
            dir.join(file).display()
        )
    };
    let keys = format!(
        "  keys:\n{}{}{}",
        key("100", "demo-rs256-100.pem", "RS256", true),
        key("es", "demo-es256.pem", "ES256", false),
        key("101", "demo-rs256-101.pem", "RS256", false)
    );
    let gw = common::Gateway::start(common::GatewayOptions {
        extra_yaml: format!("{}{keys}{}", &yaml[..start], &yaml[end..]),
        ..Default::default()
    });
    let doc = gw.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256", "ES256"]),
        "{doc}"
    );
}

/// `HEAD /oauth2/userinfo` is answered like `GET`, without a body: the gateway allows it, so
/// the endpoint must too.
#[tokio::test(flavor = "multi_thread")]
async fn userinfo_answers_head_like_get() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", "12345678"),
            ("scope", "openid profile"),
        ],
    )
    .await;
    let access = reply.str("access_token").to_string();
    let send = |method: reqwest::Method, auth: Option<String>| {
        let mut req = client().request(method, env.gw.url("/oauth2/userinfo"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        async move { req.send().await.expect("userinfo") }
    };
    let get = send(reqwest::Method::GET, Some(access.clone())).await;
    assert_eq!(get.status(), 200);
    let (get_length, get_type) = (
        get.headers()["content-length"].clone(),
        get.headers()["content-type"].clone(),
    );
    let head = send(reqwest::Method::HEAD, Some(access)).await;
    assert_eq!(head.status(), 200, "{:?}", head.headers());
    assert_eq!(head.headers()["content-type"], get_type);
    assert_eq!(head.headers()["content-length"], get_length);
    assert!(head.bytes().await.expect("body").is_empty());
    let unauthenticated = send(reqwest::Method::HEAD, None).await;
    assert_eq!(unauthenticated.status(), 401);
    let put = send(reqwest::Method::PUT, None).await;
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET, HEAD, POST");
}

/// On an `auth.required: false` route a request without a token is counted as anonymous,
/// not as a valid token.
#[tokio::test(flavor = "multi_thread")]
async fn anonymous_requests_are_counted_as_anonymous() {
    let up = common::start_upstream("svc").await;
    let routes = format!(
        "  - path_prefix: /optional\n    upstreams: [\"{up}\"]\n    auth: {{required: false}}\n"
    );
    let env = OAuthEnv::start_with(Backend::Memory, &[], routes, "");
    let resp = client()
        .get(env.gw.url("/optional/x"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let token = light_client_credentials(&env, None).await;
    let resp = client()
        .get(env.gw.url("/optional/x"))
        .bearer_auth(token.str("access_token"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let metrics = env.gw.metrics().await;
    let count = |result: &str| {
        metric_value(
            &metrics,
            &format!("tollgate_bearer_checks_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(count("anonymous"), Some(1.0), "{metrics}");
    assert_eq!(count("valid"), Some(1.0), "{metrics}");
}
