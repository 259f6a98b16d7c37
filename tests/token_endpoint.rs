//! The token endpoint over real HTTP against the real gateway, on the in-memory store and on a
//! real Redis: the seed documents' requests verbatim, every grant, every error, concurrency.

mod common;

use common::oauth::*;
use common::{client, raw_request};
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// Declares `async fn $name(backend: Backend)` and runs it on both stores.
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread")]
            async fn memory() {
                super::$name(Backend::Memory).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn redis() {
                super::$name(Backend::Redis).await
            }
        }
    };
}

/// Verifies a light-oauth2 access token with the demo public key, independently of the
/// gateway's code, and returns its claims.
fn verify_light_jwt(token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("100"));
    let pem = std::fs::read(common::repo_root().join("conf/keys/demo-rs256-100.pub.pem"))
        .expect("public key");
    let key = DecodingKey::from_rsa_pem(&pem).expect("RSA public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["urn:com.networknt"]);
    validation.set_issuer(&["urn:com:networknt:oauth2:v1"]);
    decode::<Value>(token, &key, &validation)
        .expect("the signature and claims verify")
        .claims
}

fn assert_no_store(reply: &TokenReply) {
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["pragma"], "no-cache");
}

fn assert_error(reply: &TokenReply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.json);
    assert_eq!(reply.json["error"], error, "{}", reply.json);
    assert!(reply.json["error_description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_no_store(reply);
}

async fn seed_light_oauth2_client_credentials(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    // The seed's curl line, byte for byte: raw `Basic id:secret`, form body.
    let request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost:6882\r\nAuthorization: Basic {LIGHT_ID}:{LIGHT_SECRET}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\nConnection: close\r\n\r\ngrant_type=client_credentials"
    );
    let raw = raw_request(env.gw.http, &request);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let body: Value =
        serde_json::from_str(raw.split("\r\n\r\n").nth(1).expect("body")).expect("JSON body");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "petstore.r petstore.w");
    assert!(
        body.get("refresh_token").is_none(),
        "client_credentials issues no refresh token"
    );
    let claims = verify_light_jwt(body["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["client_id"], LIGHT_ID);
    assert_eq!(claims["version"], "1.0");
    assert_eq!(
        claims["scope"],
        serde_json::json!(["petstore.r", "petstore.w"])
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0),
        600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert!(claims["nbf"].is_u64());
    assert!(claims.get("user_id").is_none() && claims.get("sub").is_none());
}
on_both_stores!(seed_light_oauth2_client_credentials);

async fn seed_light_oauth2_authorization_code(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let code = light_code(&env, &[("state", "s1")]).await;
    assert!(code.len() >= 22, "at least 128 bits");
    // The seed's exchange: Basic id:secret, grant_type and code only (no redirect_uri, as the
    // authorization request had none).
    let reply = token(
        &env,
        Some(&light_basic()),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_no_store(&reply);
    assert_eq!(reply.json["token_type"], "bearer");
    assert_eq!(reply.json["expires_in"], 600);
    let claims = verify_light_jwt(reply.str("access_token"));
    assert_eq!(claims["user_id"], "admin");
    assert_eq!(claims["user_type"], "admin");
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["client_id"], LIGHT_ID);
    assert!(reply.json["refresh_token"].is_string());
}
on_both_stores!(seed_light_oauth2_authorization_code);

async fn seed_eqdkp_requests(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    // Password grant, no client secret, default scope.
    let reply = hillary_token(&env, None).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["expires_in"], 3600);
    assert_eq!(reply.json["scope"], "identify");
    let access = reply.str("access_token");
    assert!(
        access.len() >= 64 && access.bytes().all(|b| b.is_ascii_hexdigit()),
        "opaque hex: {access}"
    );
    assert!(reply.json["refresh_token"].is_string());

    // Password grant with scopes.
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("scope", "openid email profile"),
            ("password", "12345678"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "openid email profile");
    let refresh = reply.str("refresh_token").to_string();

    // Refresh as the seed sends it: secret, scope and redirect_uri in the body.
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "identify email profile"),
            ("redirect_uri", EQDKP_REDIRECT),
        ],
    )
    .await;
    assert_error(&reply, 400, "invalid_scope"); // identify was not granted to this family
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "email profile"),
            ("redirect_uri", EQDKP_REDIRECT),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "email profile");
    assert_ne!(reply.str("refresh_token"), refresh, "rotated");

    // Authorization code, credentials in the body, with redirect_uri.
    let (status, query) = authorize(
        &env,
        &[
            ("response_type", "code"),
            ("client_id", EQDKP_ID),
            ("redirect_uri", EQDKP_REDIRECT),
            ("scope", "identify email profile"),
        ],
        "Hillary",
        "12345678",
    )
    .await;
    assert_eq!(status, 302);
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", EQDKP_REDIRECT),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["scope"], "identify email profile");
    assert_eq!(reply.json["token_type"], "Bearer");
}
on_both_stores!(seed_eqdkp_requests);

async fn client_authentication(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let cc = [("grant_type", "client_credentials")];
    // RFC 6749 2.3.1 Basic: base64 of urlencoded id:secret.
    use base64::Engine;
    let rfc =
        base64::engine::general_purpose::STANDARD.encode(format!("{LIGHT_ID}:{LIGHT_SECRET}"));
    assert_eq!(
        token(&env, Some(&format!("Basic {rfc}")), &cc).await.status,
        200
    );
    // Credentials in the body.
    let body = [
        ("grant_type", "client_credentials"),
        ("client_id", LIGHT_ID),
        ("client_secret", LIGHT_SECRET),
    ];
    assert_eq!(token(&env, None, &body).await.status, 200);

    // Wrong secret with Basic: 401 and a Basic challenge.
    let reply = token(&env, Some(&format!("Basic {LIGHT_ID}:wrong")), &cc).await;
    assert_error(&reply, 401, "invalid_client");
    assert_eq!(
        reply.headers["www-authenticate"],
        "Basic realm=\"tollgate\""
    );
    // Wrong secret in the body: 401 without a Basic challenge.
    let reply = token(
        &env,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", LIGHT_ID),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_error(&reply, 401, "invalid_client");
    assert!(reply.headers.get("www-authenticate").is_none());
    // Unknown client; no credentials at all.
    assert_error(
        &token(&env, Some("Basic nobody:x"), &cc).await,
        401,
        "invalid_client",
    );
    assert_error(&token(&env, None, &cc).await, 401, "invalid_client");
    // Two methods at once.
    let both = [
        ("grant_type", "client_credentials"),
        ("client_secret", LIGHT_SECRET),
    ];
    assert_error(
        &token(&env, Some(&light_basic()), &both).await,
        400,
        "invalid_request",
    );
    // The EQdkp client may skip its secret for the password grant only.
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_error(&reply, 401, "invalid_client");
    let reply = token(
        &env,
        None,
        &[
            ("client_id", LIGHT_ID),
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "123456"),
        ],
    )
    .await;
    assert_error(&reply, 401, "invalid_client"); // the light-oauth2 client is not switched on for that
}
on_both_stores!(client_authentication);

async fn request_format_errors(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let http = client();
    let url = env.token_url();
    let basic = light_basic();

    let resp = http.get(&url).send().await.expect("GET");
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    let resp = http
        .post(&url)
        .header("authorization", &basic)
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .expect("json body");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );

    // Over the 64 KiB limit: 413 without reading it all.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(70 * 1024)
    );
    let resp = http
        .post(&url)
        .header("authorization", &basic)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .expect("big body");
    assert_eq!(resp.status(), 413);

    // Credentials in the query string are refused.
    let resp = http
        .post(format!("{url}?client_secret={LIGHT_SECRET}"))
        .header("authorization", &basic)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("query secret");
    assert_eq!(resp.status(), 400);

    let repeated = http
        .post(&url)
        .header("authorization", &basic)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=petstore.r&scope=petstore.w")
        .send()
        .await
        .expect("repeated");
    assert_eq!(repeated.status(), 400);
    assert_eq!(
        repeated.json::<Value>().await.expect("json")["error"],
        "invalid_request"
    );

    assert_error(
        &token(&env, Some(&basic), &[]).await,
        400,
        "invalid_request",
    );
    assert_error(
        &token(&env, Some(&basic), &[("grant_type", "implicit")]).await,
        400,
        "unsupported_grant_type",
    );
    // An empty scope counts as absent: the defaults apply. Unknown parameters are ignored.
    let reply = token(
        &env,
        Some(&basic),
        &[
            ("grant_type", "client_credentials"),
            ("scope", ""),
            ("foo", "bar"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["scope"], "petstore.r petstore.w");
    let reply = token(
        &env,
        Some(&basic),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "petstore.r"),
        ],
    )
    .await;
    assert_eq!(reply.json["scope"], "petstore.r");
    assert_eq!(
        verify_light_jwt(reply.str("access_token"))["scope"],
        serde_json::json!(["petstore.r"])
    );
    let reply = token(
        &env,
        Some(&basic),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "petstore.r admin"),
        ],
    )
    .await;
    assert_error(&reply, 400, "invalid_scope");
    // A grant the client may not use.
    let reply = token(
        &env,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
        ],
    )
    .await;
    assert_error(&reply, 400, "unauthorized_client");
}
on_both_stores!(request_format_errors);

/// The gateway's count of argon2 verifications.
async fn hash_verifications(env: &OAuthEnv) -> u64 {
    let metrics = env.gw.metrics().await;
    common::metric_value(&metrics, "tollgate_secret_hash_verifications_total")
        .unwrap_or_else(|| panic!("no hash counter in\n{metrics}")) as u64
}

async fn password_grant(backend: Backend) {
    let env = OAuthEnv::start(backend, &[("max_failures: 10", "max_failures: 1000")]);
    let basic = light_basic();
    let login = |user: &'static str, pass: &'static str| {
        [
            ("grant_type", "password"),
            ("username", user),
            ("password", pass),
        ]
    };
    let ok = token(&env, Some(&basic), &login("admin", "123456")).await;
    assert_eq!(ok.status, 200, "{}", ok.json);
    let claims = verify_light_jwt(ok.str("access_token"));
    assert_eq!(
        (claims["user_id"].as_str(), claims["user_type"].as_str()),
        (Some("admin"), Some("admin"))
    );
    assert!(
        ok.json["refresh_token"].is_string(),
        "the password grant issues a refresh token"
    );

    // Unknown user and wrong password: the same answer and the same work, one argon2
    // verification each (a dummy hash for the unknown user), so the time does not tell them
    // apart. Counted, not timed: timings are noisy on a shared machine.
    let wrong = token(&env, Some(&basic), &login("admin", "nope")).await;
    let unknown = token(&env, Some(&basic), &login("mallory", "nope")).await;
    assert_error(&wrong, 400, "invalid_grant");
    assert_eq!(wrong.json, unknown.json);
    for user in ["admin", "ghost"] {
        let before = hash_verifications(&env).await;
        for _ in 0..3 {
            token(&env, Some(&basic), &login(user, "bad")).await;
        }
        assert_eq!(
            hash_verifications(&env).await - before,
            3,
            "{user}: one argon2 verification per attempt"
        );
    }
    assert_error(
        &token(
            &env,
            Some(&basic),
            &[("grant_type", "password"), ("username", "admin")],
        )
        .await,
        400,
        "invalid_request",
    );
}
on_both_stores!(password_grant);

async fn custom_grant_for_trusted_clients(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let form = [
        ("grant_type", "client_authenticated_user"),
        ("user_id", "steve"),
        ("user_type", "EMPLOYEE"),
        ("scope", "petstore.r"),
    ];
    let reply = token(&env, Some(&light_basic()), &form).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let claims = verify_light_jwt(reply.str("access_token"));
    assert_eq!(
        (
            claims["user_id"].as_str(),
            claims["user_type"].as_str(),
            claims["sub"].as_str()
        ),
        (Some("steve"), Some("EMPLOYEE"), Some("steve"))
    );
    assert_error(
        &token(&env, Some(&light_basic()), &form[..1]).await,
        400,
        "invalid_request",
    );
    // The EQdkp client is not trusted.
    let mut untrusted = vec![("client_id", EQDKP_ID), ("client_secret", EQDKP_SECRET)];
    untrusted.extend_from_slice(&form);
    assert_error(
        &token(&env, None, &untrusted).await,
        400,
        "unauthorized_client",
    );
}
on_both_stores!(custom_grant_for_trusted_clients);

async fn authorization_code_binding_and_pkce(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let basic = light_basic();
    let exchange = |code: String, extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code),
        ];
        form.extend(extra);
        form
    };
    let send = |form: Vec<(&'static str, String)>| {
        let env = &env;
        let basic = basic.clone();
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(env, Some(&basic), &form).await
        }
    };

    // redirect_uri named in the authorization request must be repeated exactly.
    let code = light_code(&env, &[("redirect_uri", LIGHT_REDIRECT)]).await;
    assert_error(&send(exchange(code, vec![])).await, 400, "invalid_grant");
    let code = light_code(&env, &[("redirect_uri", LIGHT_REDIRECT)]).await;
    assert_error(
        &send(exchange(
            code,
            vec![("redirect_uri", format!("{LIGHT_REDIRECT}/x"))],
        ))
        .await,
        400,
        "invalid_grant",
    );
    let code = light_code(&env, &[("redirect_uri", LIGHT_REDIRECT)]).await;
    assert_eq!(
        send(exchange(
            code,
            vec![("redirect_uri", LIGHT_REDIRECT.into())]
        ))
        .await
        .status,
        200
    );

    // PKCE S256.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let code = light_code(&env, &pkce).await;
    assert_error(&send(exchange(code, vec![])).await, 400, "invalid_grant");
    let code = light_code(&env, &pkce).await;
    let wrong = "x".repeat(43);
    assert_error(
        &send(exchange(code, vec![("code_verifier", wrong)])).await,
        400,
        "invalid_grant",
    );
    let code = light_code(&env, &pkce).await;
    assert_eq!(
        send(exchange(code, vec![("code_verifier", verifier.into())]))
            .await
            .status,
        200
    );
    // A verifier for a code that had no challenge.
    let code = light_code(&env, &[]).await;
    assert_error(
        &send(exchange(code, vec![("code_verifier", verifier.into())])).await,
        400,
        "invalid_grant",
    );

    // A code is bound to its client.
    let code = light_code(&env, &[]).await;
    let reply = token(
        &env,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
        ],
    )
    .await;
    assert_error(&reply, 400, "invalid_grant");
    assert_error(
        &send(exchange("made-up".into(), vec![])).await,
        400,
        "invalid_grant",
    );
}
on_both_stores!(authorization_code_binding_and_pkce);

async fn code_replay_revokes_what_it_issued(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let basic = light_basic();
    let code = light_code(&env, &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ];
    let first = token(&env, Some(&basic), &form).await;
    assert_eq!(first.status, 200);
    let refresh = first.str("refresh_token").to_string();

    // A replay with bad client credentials revokes nothing.
    assert_error(
        &token(&env, Some(&format!("Basic {LIGHT_ID}:wrong")), &form).await,
        401,
        "invalid_client",
    );
    let rotated = token(
        &env,
        Some(&basic),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        rotated.status, 200,
        "the refresh token survives a badly authenticated replay"
    );
    let refresh = rotated.str("refresh_token").to_string();

    // A valid replay fails and revokes the tokens the code produced.
    assert_error(
        &token(&env, Some(&basic), &form).await,
        400,
        "invalid_grant",
    );
    let after = token(
        &env,
        Some(&basic),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_error(&after, 400, "invalid_grant");
}
on_both_stores!(code_replay_revokes_what_it_issued);

async fn refresh_rotation_and_reuse_detection(backend: Backend) {
    let env = OAuthEnv::start(backend, &[]);
    let basic = light_basic();
    let first = token(
        &env,
        Some(&basic),
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "123456"),
            ("scope", "petstore.r"),
        ],
    )
    .await;
    let rt1 = first.str("refresh_token").to_string();

    let refresh = |rt: String, scope: Option<&'static str>| {
        let env = &env;
        let basic = basic.clone();
        async move {
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ];
            if let Some(s) = scope {
                form.push(("scope", s));
            }
            token(env, Some(&basic), &form).await
        }
    };
    // Widening is refused; the same scope is fine.
    assert_error(
        &refresh(rt1.clone(), Some("petstore.r petstore.w")).await,
        400,
        "invalid_scope",
    );
    let second = refresh(rt1.clone(), None).await;
    assert_eq!(second.status, 200, "{}", second.json);
    assert_eq!(second.json["scope"], "petstore.r");
    let claims = verify_light_jwt(second.str("access_token"));
    assert_eq!(claims["user_id"], "admin", "the user carries over");
    let rt2 = second.str("refresh_token").to_string();
    assert_ne!(rt1, rt2);

    // Bound to its client.
    let other = token(
        &env,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
        ],
    )
    .await;
    assert_error(&other, 400, "invalid_grant");

    // Reusing the retired token fails and revokes the family: the current one dies too.
    assert_error(&refresh(rt1, None).await, 400, "invalid_grant");
    assert_error(&refresh(rt2, None).await, 400, "invalid_grant");
}
on_both_stores!(refresh_rotation_and_reuse_detection);

/// Sends the same light-oauth2 token request `n` times at once; returns the statuses.
async fn in_parallel(
    env: &std::sync::Arc<OAuthEnv>,
    n: usize,
    form: [(&'static str, String); 2],
) -> Vec<u16> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (env, form) = (std::sync::Arc::clone(env), form.clone());
        tasks.push(tokio::spawn(async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(&env, Some(&light_basic()), &form).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses
}

async fn parallel_code_redemptions_and_refreshes(backend: Backend) {
    let env = std::sync::Arc::new(OAuthEnv::start(backend, &[]));
    let code = light_code(&env, &[]).await;
    let statuses = in_parallel(
        &env,
        50,
        [("grant_type", "authorization_code".into()), ("code", code)],
    )
    .await;
    // The code is taken atomically: at most one redemption succeeds. The others are replays
    // by the same authenticated client, which RFC 6749 4.1.2 answers by revoking what the code
    // produced, so when one of them lands while the winner is still issuing, the winner's
    // grant is revoked too and no request succeeds.
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );

    let granted = light_admin_password(&env).await;
    let rt = granted.str("refresh_token").to_string();
    let statuses = in_parallel(
        &env,
        20,
        [
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt),
        ],
    )
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
}
on_both_stores!(parallel_code_redemptions_and_refreshes);

async fn brute_force_limits(backend: Backend) {
    let env = OAuthEnv::start(backend, &[("max_failures: 10", "max_failures: 3")]);
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..3 {
        assert_error(
            &token(&env, Some(&format!("Basic {LIGHT_ID}:guess")), &cc).await,
            401,
            "invalid_client",
        );
    }
    // Past the threshold even the right secret waits.
    let reply = token(&env, Some(&light_basic()), &cc).await;
    assert_eq!(reply.status, 429, "{}", reply.json);
    assert_eq!(reply.headers["retry-after"], "300");
}
on_both_stores!(brute_force_limits);

async fn brute_force_per_username(backend: Backend) {
    let env = OAuthEnv::start(backend, &[("max_failures: 10", "max_failures: 3")]);
    let login = |pass: &'static str| {
        [
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", pass),
        ]
    };
    for _ in 0..3 {
        assert_error(
            &token(&env, None, &login("guess")).await,
            400,
            "invalid_grant",
        );
    }
    assert_eq!(token(&env, None, &login("12345678")).await.status, 429);
}
on_both_stores!(brute_force_per_username);

async fn brute_force_per_address(backend: Backend) {
    let env = OAuthEnv::start(backend, &[("max_failures: 10", "max_failures: 3")]);
    // Three different usernames from one address: the address is blocked, for every user.
    for user in ["alice", "bob", "carol"] {
        let form = [
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", user),
            ("password", "x"),
        ];
        assert_error(&token(&env, None, &form).await, 400, "invalid_grant");
    }
    let form = [
        ("client_id", EQDKP_ID),
        ("grant_type", "password"),
        ("username", "Hillary"),
        ("password", "12345678"),
    ];
    assert_eq!(token(&env, None, &form).await.status, 429);
}
on_both_stores!(brute_force_per_address);

/// Each signing algorithm, selected per key in the config, signs access tokens that verify
/// with the key's public half.
#[tokio::test(flavor = "multi_thread")]
async fn es256_and_eddsa_keys_sign_access_tokens() {
    for (file, alg) in [
        ("demo-es256", Algorithm::ES256),
        ("demo-ed25519", Algorithm::EdDSA),
    ] {
        let name = if alg == Algorithm::ES256 {
            "ES256"
        } else {
            "EdDSA"
        };
        let env = OAuthEnv::start(
            Backend::Memory,
            &[
                ("algorithm: RS256", &format!("algorithm: {name}")),
                ("demo-rs256-100.pem", &format!("{file}.pem")),
            ],
        );
        let reply = light_client_credentials(&env, None).await;
        assert_eq!(reply.status, 200, "{}", reply.json);
        let jwt = reply.str("access_token");
        assert_eq!(jsonwebtoken::decode_header(jwt).expect("header").alg, alg);
        let pem = std::fs::read(common::repo_root().join(format!("conf/keys/{file}.pub.pem")))
            .expect("public key");
        let key = if alg == Algorithm::ES256 {
            DecodingKey::from_ec_pem(&pem).expect("EC key")
        } else {
            DecodingKey::from_ed_pem(&pem).expect("Ed key")
        };
        let mut validation = Validation::new(alg);
        validation.set_audience(&["urn:com.networknt"]);
        let claims = decode::<Value>(jwt, &key, &validation)
            .expect("verifies")
            .claims;
        assert_eq!(claims["client_id"], LIGHT_ID);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_tokens_and_failures_and_logs_hold_no_secrets() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let ok = light_client_credentials(&env, None).await;
    assert_eq!(ok.status, 200);
    token(
        &env,
        Some(&format!("Basic {LIGHT_ID}:wrong-secret-value")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let pw = hillary_token(&env, None).await;
    let code = light_code(&env, &[]).await;
    token(
        &env,
        Some(&light_basic()),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    token(
        &env,
        Some(&light_basic()),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;

    env.gw
        .metrics_containing(&[
            r#"tollgate_oauth_tokens_issued_total{grant="client_credentials"} 1"#,
            r#"tollgate_oauth_tokens_issued_total{grant="password"} 1"#,
            r#"tollgate_oauth_tokens_issued_total{grant="authorization_code"} 1"#,
            r#"tollgate_oauth_token_failures_total{error="invalid_client",grant="client_credentials"} 1"#,
            r#"tollgate_oauth_token_failures_total{error="invalid_grant",grant="authorization_code"} 1"#,
            r#"tollgate_http_requests_total{route="oauth-token",status="200"} 3"#,
        ])
        .await;

    let log = env.gw.log();
    for secret in [
        LIGHT_SECRET,
        "wrong-secret-value",
        "12345678",
        code.as_str(),
        ok.str("access_token"),
        pw.str("access_token"),
        pw.str("refresh_token"),
    ] {
        assert!(!log.contains(secret), "the log holds a secret:\n{log}");
    }
}
