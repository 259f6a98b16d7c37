//! The sign-in page in a real browser: a headless Chromium, driven through chromedriver,
//! signs a user in at the authorization endpoint and lands on the client's redirect URI (the
//! page's Content-Security-Policy must let the form's answer go there: Chromium applies
//! `form-action` to that redirect), the code redeems with its PKCE verifier, consent is
//! asked, remembered and refusable, a session spares the next sign-in, `prompt=login` asks
//! again and logout ends the session. The "client" is an echo server on another origin.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::net::SocketAddr;

use browser::Browser;
use common::oauth::*;
use common::{client, start_upstream};
use serde_json::Value;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// RFC 7636 appendix B: the S256 challenge of [`VERIFIER`].
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Two public clients of the app at `app`: a first-party one (never asks for consent) and a
/// partner that asks once (the demo configuration describes `petstore.r` as "See your pets").
fn clients_yaml(app: SocketAddr) -> String {
    format!(
        "  clients:\n\
         \x20   - client_id: web-app\n      name: Pet Store\n      public: true\n      grants: [authorization_code, refresh_token]\n      scopes: [openid, profile, petstore.r]\n      redirect_uris: [\"http://{app}/cb\"]\n      post_logout_redirect_uris: [\"http://{app}/bye\"]\n\
         \x20   - client_id: partner-app\n      name: Partner App\n      public: true\n      consent: once\n      grants: [authorization_code]\n      scopes: [openid, profile, petstore.r]\n      redirect_uris: [\"http://{app}/cb\"]\n"
    )
}

async fn env_and_app() -> (OAuthEnv, SocketAddr) {
    let app = start_upstream("client-app").await;
    let clients = clients_yaml(app);
    let env = OAuthEnv::start(Backend::Memory, &[("  clients:\n", clients.as_str())]);
    (env, app)
}

fn authorize_url(
    env: &OAuthEnv,
    client_id: &str,
    app: SocketAddr,
    state: &str,
    scope: &str,
) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &format!("http://{app}/cb"))
        .append_pair("state", state)
        .append_pair("scope", scope)
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256")
        .finish();
    env.gw.https_url(&format!("/oauth2/authorize?{query}"))
}

/// Redeems `code` for `client_id` with the PKCE verifier; the token response.
async fn redeem(env: &OAuthEnv, client_id: &str, app: SocketAddr, code: &str) -> Value {
    let redirect = format!("http://{app}/cb");
    let resp = client()
        .post(env.token_url())
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("token response")
}

async fn sign_in(browser: &Browser, username: &str, password: &str) {
    browser.fill("username", username).await;
    browser.fill("password", password).await;
    browser.press("sign_in").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_signs_in_with_chromium_and_the_session_spares_the_next_sign_in() {
    let (env, app) = env_and_app().await;
    let browser = Browser::start().await;
    let cb = format!("http://{app}/cb");

    browser
        .goto(&authorize_url(
            &env,
            "web-app",
            app,
            "first",
            "openid petstore.r",
        ))
        .await;
    let page = browser.source().await;
    assert!(page.contains("Sign in to continue to Pet Store"), "{page}");
    browser.screenshot("sign-in").await;
    sign_in(&browser, "admin", "wrong-password").await;
    let page = browser.source().await;
    assert!(
        page.contains("The username or password is incorrect"),
        "{page}"
    );
    sign_in(&browser, "admin", "123456").await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("state").map(String::as_str), Some("first"));
    let code = back.get("code").expect("a code").clone();
    let first = redeem(&env, "web-app", app, &code).await;
    let first_auth_time =
        jwt_claims(first["id_token"].as_str().expect("id_token"))["auth_time"].clone();
    assert!(first_auth_time.is_u64(), "{first}");

    // Within the session: straight back to the client, the sign-in's time in the id_token.
    browser
        .goto(&authorize_url(&env, "web-app", app, "second", "openid"))
        .await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("state").map(String::as_str), Some("second"));
    let second = redeem(&env, "web-app", app, &back["code"]).await;
    let claims = jwt_claims(second["id_token"].as_str().expect("id_token"));
    assert_eq!(
        claims["auth_time"], first_auth_time,
        "auth_time from the session"
    );

    // response_mode=form_post: the answer is posted to the client, not put in its URL.
    let form_post = format!(
        "{}&response_mode=form_post",
        authorize_url(&env, "web-app", app, "posted", "openid")
    );
    browser.goto(&form_post).await;
    browser.wait_for(&cb).await;
    let echoed: Value = serde_json::from_str(
        browser
            .client
            .find(fantoccini::Locator::Css("body"))
            .await
            .expect("body")
            .text()
            .await
            .expect("text")
            .trim(),
    )
    .expect("the client app's echo");
    assert_eq!(echoed["method"], "POST", "{echoed}");
    let posted: std::collections::HashMap<String, String> =
        form_urlencoded::parse(echoed["body"].as_str().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    assert_eq!(posted.get("state").map(String::as_str), Some("posted"));
    redeem(&env, "web-app", app, &posted["code"]).await;

    // prompt=login asks again, and says who is signed in.
    let again = format!(
        "{}&prompt=login",
        authorize_url(&env, "web-app", app, "third", "openid")
    );
    browser.goto(&again).await;
    assert!(
        browser.shows("sign_in").await,
        "prompt=login shows the form"
    );
    assert!(browser.source().await.contains("Signed in as"));

    // Logout ends the session and goes back to the client's registered URI.
    let logout = env.gw.https_url(&format!(
        "/oauth2/logout?client_id=web-app&state=bye-state&post_logout_redirect_uri=http://{app}/bye"
    ));
    browser.goto(&logout).await;
    let bye = browser.wait_for(&format!("http://{app}/bye")).await;
    assert_eq!(bye.get("state").map(String::as_str), Some("bye-state"));
    browser
        .goto(&authorize_url(&env, "web-app", app, "fourth", "openid"))
        .await;
    assert!(browser.shows("sign_in").await, "signed out: the form again");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_is_asked_remembered_and_refusable() {
    let (env, app) = env_and_app().await;
    let browser = Browser::start().await;
    let cb = format!("http://{app}/cb");

    // Cancel on the sign-in page tells the client the user said no.
    browser
        .goto(&authorize_url(
            &env,
            "partner-app",
            app,
            "cancelled",
            "openid petstore.r",
        ))
        .await;
    browser.press("cancel").await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(back.get("state").map(String::as_str), Some("cancelled"));

    browser
        .goto(&authorize_url(
            &env,
            "partner-app",
            app,
            "asked",
            "openid petstore.r",
        ))
        .await;
    sign_in(&browser, "Hillary", "12345678").await;
    assert!(browser.shows("allow").await, "the consent page");
    let page = browser.source().await;
    for text in [
        "Partner App",
        "Know who you are",
        "See your pets",
        "Signed in as",
    ] {
        assert!(page.contains(text), "`{text}` on the consent page:\n{page}");
    }
    browser.screenshot("consent").await;
    browser.press("allow").await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("state").map(String::as_str), Some("asked"));
    redeem(&env, "partner-app", app, &back["code"]).await;

    // Remembered: the same scopes need neither sign-in nor consent.
    browser
        .goto(&authorize_url(
            &env,
            "partner-app",
            app,
            "remembered",
            "openid petstore.r",
        ))
        .await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("state").map(String::as_str), Some("remembered"));
    assert!(back.contains_key("code"), "{back:?}");

    // More scopes: asked again, and refused.
    browser
        .goto(&authorize_url(
            &env,
            "partner-app",
            app,
            "more",
            "openid profile petstore.r",
        ))
        .await;
    assert!(browser.shows("deny").await, "asked again for more");
    browser.press("deny").await;
    let back = browser.wait_for(&cb).await;
    assert_eq!(back.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(back.get("state").map(String::as_str), Some("more"));
    browser.close().await;
}
