//! Token lifecycle defects found by attacking the running gateway: a revocation racing a
//! refresh, code replays that prove nothing, Redis eviction, RFC 9068 access tokens, lockouts
//! used as a denial of service, and the small ones.

mod common;

use common::oauth::*;
use common::{client, metric_value};
use serde_json::Value;

async fn form_post(env: &OAuthEnv, path: &str, auth: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = client()
        .post(env.gw.url(path))
        .header("authorization", auth)
        .form(form)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn introspect(env: &OAuthEnv, token: &str) -> Value {
    let (status, body) = form_post(env, "/oauth2/introspect", &light_basic(), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn refresh(env: &OAuthEnv, refresh_token: &str) -> TokenReply {
    token(
        env,
        Some(&light_basic()),
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
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
        let (rt0, at0) = (first.str("refresh_token").to_string(), first.str("access_token").to_string());
        let basic = light_basic();
        let revoke_form = [("token", rt0.as_str()), ("token_type_hint", "refresh_token")];
        let revoke = form_post(&env, "/oauth2/revoke", &basic, &revoke_form);
        let (refreshed, (revoked, _)) = tokio::join!(refresh(&env, &rt0), revoke);
        assert_eq!(revoked, 200, "round {round}");
        assert_eq!(introspect(&env, &at0).await["active"], false, "round {round}: first access token");
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
        assert_eq!(introspect(&env, &rt0).await["active"], false, "round {round}");
    }
    eprintln!("the refresh won {refresh_won} of 40 rounds");
    let _ = metric_value;
}
