//! The authorization endpoint over real HTTP: redirect URI checks, RFC 6749 4.1.2.1 errors,
//! the CSRF-protected sign-in form, and HTTP Basic sign-in.

mod common;

use common::client;
use common::oauth::*;

fn get(env: &OAuthEnv, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
    client().get(env.gw.url("/oauth2/authorize")).query(params)
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_clients_and_redirect_uris_get_a_page_never_a_redirect() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    for params in [
        vec![("response_type", "code"), ("client_id", "nobody")],
        vec![("response_type", "code")],
        vec![
            ("response_type", "code"),
            ("client_id", LIGHT_ID),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", LIGHT_ID),
            ("redirect_uri", "http://localhost:8080/authorization/"),
        ],
    ] {
        let resp = get(&env, &params)
            .basic_auth("admin", Some("123456"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 400, "{params:?}");
        assert!(resp.headers().get("location").is_none(), "{params:?}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors_go_back_to_the_client_with_state() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[], "invalid_request"),
        (
            &[("response_type", "code"), ("scope", "admin")],
            "invalid_scope",
        ),
        (
            &[
                ("response_type", "code"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
            ],
            "invalid_request",
        ),
        (
            &[
                ("response_type", "code"),
                (
                    "code_challenge",
                    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                ),
                ("code_challenge_method", "S512"),
            ],
            "invalid_request",
        ),
    ];
    for (extra, error) in cases {
        let mut params = vec![("client_id", LIGHT_ID), ("state", "st&te")];
        params.extend_from_slice(extra);
        let (status, query) = authorize(&env, &params, "admin", "123456").await;
        assert_eq!(status, 302, "{extra:?}");
        assert_eq!(
            query.get("error").map(String::as_str),
            Some(error),
            "{extra:?}"
        );
        assert_eq!(query.get("state").map(String::as_str), Some("st&te"));
        assert!(!query.contains_key("code"));
    }
    // The EQdkp client registered one redirect URI; the answer goes there.
    let (status, query) = authorize(
        &env,
        &[
            ("client_id", EQDKP_ID),
            ("response_type", "code"),
            ("state", "1"),
        ],
        "Hillary",
        "12345678",
    )
    .await;
    assert_eq!(status, 302);
    assert!(query.contains_key("code"));
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_keeps_the_registered_uri_exactly() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let resp = get(
        &env,
        &[
            ("response_type", "code"),
            ("client_id", LIGHT_ID),
            ("redirect_uri", LIGHT_REDIRECT),
            ("state", "abc"),
        ],
    )
    .basic_auth("admin", Some("123456"))
    .send()
    .await
    .expect("request");
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("http://localhost:8080/authorization?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=abc"), "{location}");
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_sign_in_failure_is_a_401_challenge() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let resp = get(&env, &[("response_type", "code"), ("client_id", LIGHT_ID)])
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    assert!(resp.headers().get("location").is_none());
}

fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a csrf_token field") + marker.len();
    html[start..].split('"').next().expect("value").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sign_in_form_is_csrf_protected() {
    let env = OAuthEnv::start(Backend::Memory, &[]);
    let params = [
        ("response_type", "code"),
        ("client_id", LIGHT_ID),
        ("state", "<script>"),
        ("scope", "petstore.r"),
    ];
    let resp = get(&env, &params).send().await.expect("form");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie_pair = cookie.split(';').next().expect("pair").to_string();
    let html = resp.text().await.expect("html");
    assert!(!html.contains("<script>"), "parameters are escaped");
    assert!(html.contains("&lt;script&gt;"));
    let csrf = csrf_from(&html);
    assert_eq!(cookie_pair, format!("tollgate_csrf={csrf}"));

    let post = |form: Vec<(&'static str, String)>, cookie: Option<String>| {
        let url = env.gw.url("/oauth2/authorize");
        async move {
            let mut req = client().post(url).form(&form);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            req.send().await.expect("post")
        }
    };
    let form = |user: &str, pass: &str, csrf: &str| {
        let mut f: Vec<(&'static str, String)> =
            params.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.push(("username", user.into()));
        f.push(("password", pass.into()));
        f.push(("csrf_token", csrf.into()));
        f
    };
    // Without the cookie, or with another token: refused.
    assert_eq!(
        post(form("admin", "123456", &csrf), None).await.status(),
        403
    );
    assert_eq!(
        post(form("admin", "123456", "forged"), Some(cookie_pair.clone()))
            .await
            .status(),
        403
    );
    // Wrong password: the form again, with a message.
    let resp = post(form("admin", "nope", &csrf), Some(cookie_pair.clone())).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.expect("html").contains("incorrect"));
    // Right password: the code goes to the client.
    let resp = post(form("admin", "123456", &csrf), Some(cookie_pair)).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with(&format!("{LIGHT_REDIRECT}?code=")),
        "{location}"
    );
    assert!(location.contains("state=%3Cscript%3E"), "{location}");
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("code");
    let reply = token(
        &env,
        Some(&light_basic()),
        &[("grant_type", "authorization_code"), ("code", code)],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["scope"], "petstore.r");
}
