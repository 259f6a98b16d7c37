//! Route audiences through the real gateway: phantom tokens (the upstream of a route with
//! `auth.upstream_token: jwt` gets a short-lived JWT for the route's audience instead of the
//! client's opaque token), RFC 8707 `resource` tokens that only their audience's routes
//! accept, and discovery listing the scopes routes use.

mod common;

use common::oauth::*;
use common::{client, start_upstream};
use serde_json::Value;

const PROFILE_API: &str = "https://api.example.com/profile";
const REPORTS_API: &str = "https://reports.example.com";

fn env_with_audiences(up: std::net::SocketAddr) -> OAuthEnv {
    let routes = format!(
        "  - path_prefix: /v1/phantom\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [identify], audience: \"{PROFILE_API}\", upstream_token: jwt, upstream_token_ttl_seconds: 120}}\n\
         \x20 - path_prefix: /v1/profile\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [identify]}}\n\
         \x20 - path_prefix: /v1/reports\n    upstreams: [\"{up}\"]\n    auth: {{audience: \"{REPORTS_API}\", method_scopes: {{GET: [petstore.r], POST: [reports.write]}}}}\n\
         {}",
        demo_routes_yaml(up)
    );
    OAuthEnv::start_with(Backend::Memory, &[], routes, "")
}

/// GETs `path` with `token`; the status and the echo upstream's view of the request.
async fn get(env: &OAuthEnv, path: &str, token: &str) -> (u16, Value) {
    env.gw.bearer_get(path, token).await
}

fn upstream_authorization(echo: &Value) -> String {
    echo["headers"]["authorization"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no Authorization upstream: {echo}"))
        .to_string()
}

/// Verifies `jwt` against the gateway's JWKS, for `audience`; returns its header and claims.
async fn verify_with_jwks(
    env: &OAuthEnv,
    jwt: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(env.gw.get_json("/oauth2/jwks").await).expect("a JWK set");
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the upstream token verifies against the JWKS")
        .claims;
    (header, claims)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phantom_token_reaches_the_upstream_instead_of_the_opaque_one() {
    let up = start_upstream("svc").await;
    let env = env_with_audiences(up);
    let issued = hillary_token(&env, Some("identify")).await;
    assert_eq!(issued.status, 200, "{}", issued.json);
    let opaque = issued.str("access_token").to_string();
    assert_eq!(
        opaque.split('.').count(),
        1,
        "the client holds an opaque token"
    );

    let (status, echo) = get(&env, "/v1/phantom/me", &opaque).await;
    assert_eq!(status, 200, "{echo}");
    assert!(
        !echo.to_string().contains(&opaque),
        "the opaque token never reaches the upstream: {echo}"
    );
    let authorization = upstream_authorization(&echo);
    let jwt = authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    let (header, claims) = verify_with_jwks(&env, jwt, PROFILE_API).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["aud"], PROFILE_API);
    assert_eq!(claims["client_id"], EQDKP_ID);
    assert_eq!(claims["scope"], "identify");
    assert_eq!(claims["iss"], "https://localhost:6882");
    let introspected = introspect(&env, &opaque).await;
    assert_eq!(claims["sub"], introspected["sub"]);
    let (iat, exp) = (
        claims["iat"].as_u64().expect("iat"),
        claims["exp"].as_u64().expect("exp"),
    );
    assert!(exp - iat <= 120, "short-lived: {claims}");
    assert!(exp <= introspected["exp"].as_u64().expect("exp"));

    // Cached: the next request carries the same JWT.
    let (_, again) = get(&env, "/v1/phantom/me", &opaque).await;
    assert_eq!(upstream_authorization(&again), authorization);

    // A route without `upstream_token` forwards the client's own token.
    let (status, plain) = get(&env, "/v1/profile", &opaque).await;
    assert_eq!(status, 200);
    assert_eq!(upstream_authorization(&plain), format!("Bearer {opaque}"));

    // Revoked: nothing reaches the upstream any more.
    assert_eq!(revoke_as_eqdkp(&env.gw, &opaque).await, 200);
    assert_eq!(get(&env, "/v1/phantom/me", &opaque).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_token_is_accepted_by_its_audience_routes_only() {
    let up = start_upstream("svc").await;
    let env = env_with_audiences(up);
    let cc = |resource: Option<&'static str>| {
        let env = &env;
        async move {
            let mut form = vec![("grant_type", "client_credentials")];
            form.extend(resource.map(|r| ("resource", r)));
            token(env, Some(&light_basic()), &form).await
        }
    };
    let bound = cc(Some(REPORTS_API)).await;
    assert_eq!(bound.status, 200, "{}", bound.json);
    let bound = bound.str("access_token").to_string();
    assert_eq!(jwt_claims(&bound)["aud"], REPORTS_API);
    assert_eq!(get(&env, "/v1/reports/q1", &bound).await.0, 200);
    let (status, _) = get(&env, "/v1/pets", &bound).await;
    assert_eq!(
        status, 401,
        "another route refuses a token for another audience"
    );
    assert_eq!(get(&env, "/v1/phantom/x", &bound).await.0, 401);

    // Without `resource`: the client's usual audience, accepted where its scopes fit.
    let plain = cc(None).await.str("access_token").to_string();
    assert_eq!(get(&env, "/v1/pets", &plain).await.0, 200);

    // A resource that is no route's audience.
    let unknown = cc(Some("https://elsewhere.example.com")).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.str("error"), "invalid_target");

    // Opaque tokens carry their audience too.
    let mut form = vec![
        ("client_id", EQDKP_ID),
        ("grant_type", "password"),
        ("username", "Hillary"),
        ("password", "12345678"),
        ("resource", PROFILE_API),
    ];
    let opaque = token(&env, None, &form).await;
    assert_eq!(opaque.status, 200, "{}", opaque.json);
    let opaque = opaque.str("access_token").to_string();
    assert_eq!(get(&env, "/v1/phantom/x", &opaque).await.0, 200);
    assert_eq!(get(&env, "/v1/profile", &opaque).await.0, 401);
    form.pop();
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_lists_the_scopes_routes_use() {
    let up = start_upstream("svc").await;
    let env = env_with_audiences(up);
    let doc = env.gw.get_json("/.well-known/openid-configuration").await;
    let scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .expect("scopes_supported")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for scope in ["openid", "identify", "petstore.r", "reports.write"] {
        assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
    }
}

/// A phantom token is for the upstream: replayed at the gateway (by an upstream that got one)
/// it is refused on every route and at userinfo, even for a JWT client whose tokens carry the
/// gateway's own issuer.
#[tokio::test(flavor = "multi_thread")]
async fn a_phantom_token_is_never_accepted_back_as_an_access_token() {
    let up = start_upstream("svc").await;
    const PETS_API: &str = "https://api.example.com/pets";
    let routes = format!(
        "  - path_prefix: /v1/phantom-pets\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [petstore.r], audience: \"{PETS_API}\", upstream_token: jwt}}\n\
         \x20 - path_prefix: /v1/bound-pets\n    upstreams: [\"{up}\"]\n    auth: {{scopes: [petstore.r], audience: \"{PETS_API}\"}}\n\
         {}",
        demo_routes_yaml(up)
    );
    // The light client's tokens carry the gateway's issuer here, as a phantom token does.
    let env = OAuthEnv::start_with(
        Backend::Memory,
        &[("      issuer: urn:com:networknt:oauth2:v1\n", "")],
        routes,
        "",
    );
    let issued = light_client_credentials(&env, None).await;
    assert_eq!(issued.status, 200, "{}", issued.json);
    let access = issued.str("access_token").to_string();
    let (status, echo) = get(&env, "/v1/phantom-pets/1", &access).await;
    assert_eq!(status, 200, "{echo}");
    let phantom = upstream_authorization(&echo)
        .strip_prefix("Bearer ")
        .expect("bearer")
        .to_string();
    let (_, claims) = verify_with_jwks(&env, &phantom, PETS_API).await;
    assert_eq!(
        claims["iss"],
        jwt_claims(&access)["iss"],
        "same issuer as the client's tokens"
    );
    for path in ["/v1/phantom-pets/1", "/v1/bound-pets/1", "/v1/pets"] {
        assert_eq!(get(&env, path, &phantom).await.0, 401, "{path}");
    }
    let userinfo = client()
        .get(env.gw.url("/oauth2/userinfo"))
        .bearer_auth(&phantom)
        .send()
        .await
        .expect("userinfo");
    assert_eq!(userinfo.status(), 401);
}

/// A route audience may not be a client's own token audience: that client's ordinary tokens
/// would pass as bound to the route.
#[test]
fn a_route_audience_must_not_be_a_clients_audience() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.yaml");
    let routes = "  - path_prefix: /v1/x\n    upstreams: [\"127.0.0.1:9\"]\n    auth: {audience: urn:com.networknt}\n";
    std::fs::write(
        &path,
        common::Gateway::config_yaml(
            &common::GatewayOptions {
                routes: routes.to_string(),
                extra_yaml: demo_oauth_yaml(&[]),
                ..Default::default()
            },
            1,
            2,
            3,
        ),
    )
    .expect("write");
    let (code, text) = common::check_config(&path);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("routes[0].auth.audience"), "{text}");
}
