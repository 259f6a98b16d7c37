//! OpenID Connect and the token lifecycle, over real HTTP against the real gateway: an
//! independent client library (`openidconnect`) drives discovery, the code flow with PKCE,
//! id_token checks through the JWKS, refresh, userinfo, introspection and revocation; then key
//! rotation, the revocation denylist, and the endpoints' error cases.

mod common;

use common::oauth::*;
use common::{client, Gateway, GatewayOptions};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod, CoreGrantType,
    CoreIdTokenClaims, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken,
    CoreSubjectIdentifierType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthenticationFlow, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, ProviderMetadata, RedirectUrl, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Discovery with the RFC 7009 / 7662 endpoints the core metadata type leaves out.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct LifecycleEndpoints {
    revocation_endpoint: String,
    introspection_endpoint: String,
}
impl AdditionalProviderMetadata for LifecycleEndpoints {}
type Metadata = ProviderMetadata<
    LifecycleEndpoints,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The demo config without an explicit issuer: the gateway then uses its TLS listener,
/// `https://localhost:<port>`, which is what the client library will discover.
fn env_with_default_issuer(replacements: &[(&str, &str)]) -> OAuthEnv {
    let mut all = vec![("  issuer: https://localhost:6882\n", "")];
    all.extend_from_slice(replacements);
    OAuthEnv::start(Backend::Memory, &all)
}

fn library_http_client() -> openidconnect::reqwest::Client {
    let ca = std::fs::read(common::demo_ca()).expect("demo CA");
    openidconnect::reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(openidconnect::reqwest::Certificate::from_pem(&ca).expect("CA"))
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standard_oidc_client_completes_every_flow() {
    let env = env_with_default_issuer(&[]);
    let http = library_http_client();
    let issuer =
        IssuerUrl::new(format!("https://localhost:{}", env.gw.https.port())).expect("issuer");

    let metadata = Metadata::discover_async(issuer.clone(), &http)
        .await
        .expect("discovery and JWKS");
    let extra = metadata.additional_metadata().clone();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(EQDKP_ID.into()),
        Some(ClientSecret::new(EQDKP_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(EQDKP_REDIRECT.into()).expect("redirect"))
    .set_revocation_url(RevocationUrl::new(extra.revocation_endpoint).expect("revocation"))
    .set_introspection_url(
        IntrospectionUrl::new(extra.introspection_endpoint).expect("introspection"),
    );

    // The code flow with PKCE and a nonce; the user signs in with HTTP Basic.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let resp = client_for_sign_in()
        .get(url.as_str())
        .basic_auth("Hillary", Some("12345678"))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let callback = openidconnect::url::Url::parse(&location).expect("callback URL");
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some(csrf.secret().as_str()));
    let code = param("code").expect("code");

    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an id_token for scope openid");
    let verifier = client.id_token_verifier();
    let claims: &CoreIdTokenClaims = id_token
        .claims(&verifier, &nonce)
        .expect("signature (via JWKS), iss, aud, nonce");
    assert_eq!(claims.subject().as_str(), "Hillary");
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("hillary@example.com")
    );
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token.signing_key(&verifier).expect("key"),
    )
    .expect("hash");
    assert_eq!(claims.access_token_hash(), Some(&expected_hash), "at_hash");
    let auth_time = claims.auth_time().expect("auth_time");

    // userinfo
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .expect("userinfo endpoint known")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(
        info.email().map(|e| e.as_str()),
        Some("hillary@example.com")
    );

    // Refresh: a new id_token with the same sub and auth_time, and no nonce.
    let refresh = tokens.refresh_token().expect("refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .expect("refresh");
    let new_id = refreshed.id_token().expect("id_token on refresh");
    let no_nonce = |n: Option<&Nonce>| {
        if n.is_none() {
            Ok(())
        } else {
            Err("a nonce on refresh".to_string())
        }
    };
    let new_claims = new_id
        .claims(&verifier, no_nonce)
        .expect("refreshed id_token verifies");
    assert_eq!(new_claims.subject(), claims.subject());
    assert_eq!(new_claims.auth_time(), Some(auth_time));
    assert!(new_claims.issue_time() >= claims.issue_time());

    // Introspection, then revocation.
    let intro = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspect");
    assert!(intro.active());
    assert_eq!(intro.client_id().map(|c| c.as_str()), Some(EQDKP_ID));
    assert_eq!(intro.username(), Some("Hillary"));
    client
        .revoke_token(CoreRevocableToken::from(refreshed.access_token().clone()))
        .expect("revocation endpoint known")
        .request_async(&http)
        .await
        .expect("revoke");
    let intro = client
        .introspect(refreshed.access_token())
        .request_async(&http)
        .await
        .expect("introspect");
    assert!(!intro.active(), "revoked");
    let new_refresh = refreshed
        .refresh_token()
        .expect("rotated refresh token")
        .clone();
    client
        .revoke_token(CoreRevocableToken::from(new_refresh.clone()))
        .expect("revocation endpoint known")
        .request_async(&http)
        .await
        .expect("revoke refresh");
    assert!(client
        .exchange_refresh_token(&new_refresh)
        .expect("token endpoint")
        .request_async(&http)
        .await
        .is_err());
}

fn client_for_sign_in() -> reqwest::Client {
    client()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_jwks_documents() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let http = client();
    let resp = http
        .get(env.gw.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap_or("")
        .contains("max-age"));
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["issuer"], "https://localhost:6882");
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("jwks_uri", "/oauth2/jwks"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("introspection_endpoint", "/oauth2/introspect"),
    ] {
        assert_eq!(
            doc[field],
            format!("https://localhost:6882{path}"),
            "{field}"
        );
    }
    for (field, value) in [
        ("grant_types_supported", "client_credentials"),
        ("grant_types_supported", "refresh_token"),
        ("response_types_supported", "code"),
        ("scopes_supported", "openid"),
        ("scopes_supported", "petstore.w"),
        ("claims_supported", "email"),
        ("id_token_signing_alg_values_supported", "RS256"),
        (
            "token_endpoint_auth_methods_supported",
            "client_secret_basic",
        ),
        ("code_challenge_methods_supported", "S256"),
    ] {
        assert!(
            doc[field]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == value)),
            "{field} holds {value}: {doc}"
        );
    }

    for path in ["/oauth2/jwks", "/.well-known/jwks.json"] {
        let resp = http.get(env.gw.url(path)).send().await.expect("jwks");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["cache-control"]
            .to_str()
            .unwrap_or("")
            .starts_with("public"));
        let jwks: Value = resp.json().await.expect("json");
        let key = &jwks["keys"][0];
        assert_eq!(
            (
                key["kid"].as_str(),
                key["kty"].as_str(),
                key["alg"].as_str(),
                key["use"].as_str()
            ),
            (Some("100"), Some("RSA"), Some("RS256"), Some("sig"))
        );
        assert_eq!(key["e"], "AQAB");
        assert!(key["n"].as_str().is_some_and(|n| n.len() > 300));
        assert!(key.get("d").is_none(), "no private member");
    }
    // A token verifies with the key as published.
    let reply = light_client_credentials(&env, None).await;
    let jwks: Value = http
        .get(env.gw.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let n = jwks["keys"][0]["n"].as_str().expect("n");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(n, "AQAB").expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["urn:com.networknt"]);
    jsonwebtoken::decode::<Value>(reply.str("access_token"), &key, &validation)
        .expect("verifies with the JWKS key");
}

#[tokio::test(flavor = "multi_thread")]
async fn id_token_claims_for_password_grant_and_refresh() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let login = |scope: &'static str| {
        [
            ("client_id", EQDKP_ID),
            ("grant_type", "password"),
            ("username", "Hillary"),
            ("password", "12345678"),
            ("scope", scope),
            ("nonce", "n-0S6_WzA2Mj"),
        ]
    };
    let reply = token(&env, None, &login("openid email profile")).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    let id = jwt_claims(reply.str("id_token"));
    assert_eq!(id["iss"], "https://localhost:6882");
    assert_eq!(id["aud"], EQDKP_ID);
    assert_eq!(id["sub"], "Hillary");
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["name"], "Hillary");
    assert_eq!(id["email"], "hillary@example.com");
    assert!(id["at_hash"].is_string() && id["auth_time"].is_u64() && id["nbf"].is_u64());
    assert_eq!(
        id["exp"].as_u64().unwrap_or(0) - id["iat"].as_u64().unwrap_or(0),
        3600
    );
    let header = jsonwebtoken::decode_header(reply.str("id_token")).expect("header");
    assert_eq!(
        (header.alg, header.kid.as_deref()),
        (jsonwebtoken::Algorithm::RS256, Some("100"))
    );

    // Only the claims the scopes allow; no id_token without openid.
    let reply = token(&env, None, &login("openid")).await;
    let id = jwt_claims(reply.str("id_token"));
    assert!(id.get("email").is_none() && id.get("name").is_none());
    let reply = token(&env, None, &login("email")).await;
    assert!(reply.json.get("id_token").is_none());

    // Refresh keeps sub, aud and auth_time, drops the nonce.
    let first = token(&env, None, &login("openid email")).await;
    let before = jwt_claims(first.str("id_token"));
    let refreshed = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", first.str("refresh_token")),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let after = jwt_claims(refreshed.str("id_token"));
    assert_eq!(
        (&after["sub"], &after["aud"], &after["auth_time"]),
        (&before["sub"], &before["aud"], &before["auth_time"])
    );
    // That `iat` moves while `auth_time` stays is shown on the manual clock in-process.
    assert!(after.get("nonce").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn hs256_id_tokens_for_a_client_that_asks_for_them() {
    let env = OAuthEnv::start(
        Backend::Memory,
        &[(
            "      token_type: Bearer\n",
            "      token_type: Bearer\n      id_token_hs256: true\n",
        )],
    );
    let (_, query) = authorize(
        &env,
        &[
            ("response_type", "code"),
            ("client_id", EQDKP_ID),
            ("scope", "openid email"),
        ],
        "Hillary",
        "12345678",
    )
    .await;
    let reply = token(
        &env,
        None,
        &[
            ("client_id", EQDKP_ID),
            ("client_secret", EQDKP_SECRET),
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
        ],
    )
    .await;
    let id_token = reply.str("id_token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[EQDKP_ID]);
    let key = jsonwebtoken::DecodingKey::from_secret(EQDKP_SECRET.as_bytes());
    let claims = jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .expect("HS256 with the client secret")
        .claims;
    assert_eq!(claims["sub"], "Hillary");
    // Without a presented secret (the secretless password grant) the active key signs.
    let reply = hillary_token(&env, Some("openid")).await;
    assert_eq!(
        jsonwebtoken::decode_header(reply.str("id_token"))
            .expect("header")
            .alg,
        jsonwebtoken::Algorithm::RS256
    );
}

fn gateway_with_keys(keys: &[(&str, &str, bool)]) -> OAuthEnv {
    let gw = Gateway::start(GatewayOptions {
        extra_yaml: with_keys(keys),
        ..Default::default()
    });
    OAuthEnv { gw, redis: None }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_demoted_keys_verifying_until_removed() {
    let env = gateway_with_keys(&[("100", "demo-rs256-100.pem", true)]);
    let old = light_client_credentials(&env, None)
        .await
        .str("access_token")
        .to_string();
    drop(env);

    // 101 signs now; 100 only verifies.
    let env = gateway_with_keys(&[
        ("100", "demo-rs256-100.pem", false),
        ("101", "demo-rs256-101.pem", true),
    ]);
    let new = light_client_credentials(&env, None)
        .await
        .str("access_token")
        .to_string();
    assert_eq!(
        jsonwebtoken::decode_header(&new)
            .expect("header")
            .kid
            .as_deref(),
        Some("101")
    );
    assert_eq!(
        introspect(&env, &old).await["active"],
        true,
        "a demoted key's tokens still validate"
    );
    assert_eq!(introspect(&env, &new).await["active"], true);
    let jwks = env.gw.get_json("/oauth2/jwks").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, ["100", "101"]);
    drop(env);

    // 100 removed: its tokens stop validating.
    let env = gateway_with_keys(&[("101", "demo-rs256-101.pem", true)]);
    assert_eq!(
        introspect(&env, &old).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(introspect(&env, &new).await["active"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_and_introspection_rules() {
    let env = OAuthEnv::start(Backend::Redis, &[]);
    let light = light_basic();

    // Introspection needs client authentication.
    let (status, body) = form_post(&env, "/oauth2/introspect", None, &[("token", "x")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // Unknown tokens: inactive, and revoking them is fine.
    assert_eq!(
        introspect(&env, "not-a-token").await,
        serde_json::json!({"active": false})
    );
    assert_eq!(
        form_post(
            &env,
            "/oauth2/revoke",
            Some(&light),
            &[("token", "not-a-token")]
        )
        .await
        .0,
        200
    );

    // A JWT access token: introspected fully, then revoked through the denylist.
    let jwt = token(
        &env,
        Some(&light),
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "123456"),
        ],
    )
    .await;
    let access = jwt.str("access_token").to_string();
    let info = introspect(&env, &access).await;
    for field in [
        "scope",
        "client_id",
        "username",
        "token_type",
        "exp",
        "iat",
        "nbf",
        "sub",
        "aud",
        "iss",
        "jti",
    ] {
        assert!(info.get(field).is_some(), "{field} in {info}");
    }
    assert_eq!(
        (
            info["active"].as_bool(),
            info["username"].as_str(),
            info["iss"].as_str()
        ),
        (
            Some(true),
            Some("admin"),
            Some("urn:com:networknt:oauth2:v1")
        )
    );
    // Another client cannot revoke it.
    let other = [
        ("client_id", EQDKP_ID),
        ("client_secret", EQDKP_SECRET),
        ("token", access.as_str()),
    ];
    assert_eq!(form_post(&env, "/oauth2/revoke", None, &other).await.0, 200);
    assert_eq!(
        introspect(&env, &access).await["active"],
        true,
        "left alone"
    );
    assert_eq!(
        form_post(
            &env,
            "/oauth2/revoke",
            Some(&light),
            &[("token", &access), ("token_type_hint", "access_token")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        introspect(&env, &access).await,
        serde_json::json!({"active": false})
    );
    let jti = jwt_claims(&access)["jti"]
        .as_str()
        .expect("jti")
        .to_string();
    let redis = env.redis.as_ref().expect("redis");
    assert_eq!(
        redis.cli(&["EXISTS", &format!("tollgate:deny:{jti}")]),
        "1",
        "on the denylist"
    );

    // Refresh tokens: revoking one revokes its family.
    let refresh = jwt.str("refresh_token").to_string();
    assert_eq!(
        introspect(&env, &refresh).await["token_type"],
        "refresh_token"
    );
    assert_eq!(
        form_post(&env, "/oauth2/revoke", Some(&light), &[("token", &refresh)])
            .await
            .0,
        200
    );
    assert_eq!(
        introspect(&env, &refresh).await,
        serde_json::json!({"active": false})
    );
    let reply = token(
        &env,
        Some(&light),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(reply.status, 400);

    // An opaque access token is deleted.
    let opaque = hillary_token(&env, None).await;
    let opaque_token = opaque.str("access_token").to_string();
    let info = introspect(&env, &opaque_token).await;
    assert_eq!(
        (
            info["active"].as_bool(),
            info["client_id"].as_str(),
            info["token_type"].as_str()
        ),
        (Some(true), Some(EQDKP_ID), Some("Bearer"))
    );
    let form = [
        ("client_id", EQDKP_ID),
        ("client_secret", EQDKP_SECRET),
        ("token", opaque_token.as_str()),
    ];
    assert_eq!(form_post(&env, "/oauth2/revoke", None, &form).await.0, 200);
    assert_eq!(
        introspect(&env, &opaque_token).await,
        serde_json::json!({"active": false})
    );

    // Store down: 503, never a false 200.
    let mut env = env;
    let fresh = token(&env, Some(&light), &[("grant_type", "client_credentials")])
        .await
        .str("access_token")
        .to_string();
    env.redis.as_mut().expect("redis").kill();
    let (status, body) =
        form_post(&env, "/oauth2/revoke", Some(&light), &[("token", &fresh)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_answers_by_rfc_6750() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let http = client();
    let url = env.gw.url("/oauth2/userinfo");
    let resp = http.get(&url).send().await.expect("userinfo");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"tollgate\""
    );

    let resp = http
        .get(&url)
        .bearer_auth("garbage")
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap_or("")
        .contains("error=\"invalid_token\""));

    let no_openid = hillary_token(&env, Some("email")).await;
    let resp = http
        .get(&url)
        .bearer_auth(no_openid.str("access_token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap_or("")
        .contains("error=\"insufficient_scope\""));

    let with_openid = hillary_token(&env, Some("openid profile")).await;
    for post in [false, true] {
        let req = if post {
            http.post(&url)
        } else {
            http.get(&url)
        };
        let resp = req
            .bearer_auth(with_openid.str("access_token"))
            .send()
            .await
            .expect("userinfo");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["sub"], "Hillary");
        assert_eq!(body["name"], "Hillary");
        assert!(body.get("email").is_none(), "email scope not granted");
    }
    // An id_token is not an access token.
    let id = hillary_token(&env, Some("openid")).await;
    let resp = http
        .get(&url)
        .bearer_auth(id.str("id_token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), 401);
}
