//! The path, method, host and credential an upstream acts on are the ones Tollgate matched and
//! authorized: every spelling of a protected path needs a token, the upstream sees the normal
//! form, no spelling of a write method passes with a read-only token, and one request carries
//! one credential. Through the real gateway with the demo's route table (`/v1` public,
//! `/v1/pets` protected) in front of a real echo upstream; odd spellings go over raw sockets
//! because HTTP client libraries would normalise them first.

mod common;

use std::net::SocketAddr;

use common::oauth::*;
use common::{client, raw_request, start_upstream};
use serde_json::Value;

/// The demo routes, plus a route without a `"*"` method entry and a route for one host.
async fn routes() -> String {
    let up = start_upstream("svc").await;
    format!(
        "{demo}\
         \x20 - path_prefix: /v2/pets\n    upstreams: [\"{up}\"]\n    auth:\n      scopes: [petstore.r]\n      method_scopes: {{POST: [petstore.w]}}\n\
         \x20 - path_prefix: /hosted\n    host: Api.Example.com\n    upstreams: [\"{up}\"]\n",
        demo = demo_routes_yaml(up)
    )
}

async fn demo_env() -> OAuthEnv {
    OAuthEnv::start_with(Backend::Memory, &[], routes().await, "")
}

/// What came back from a raw request: status, and the body as JSON (`Null` when it is not).
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

impl Raw {
    fn upstream_path(&self) -> &str {
        self.body["path"].as_str().unwrap_or("(not proxied)")
    }

    fn reached_upstream(&self) -> bool {
        self.body.get("upstream").is_some()
    }
}

/// Sends `method target` over HTTP/1.1 with `headers` (each `Name: value`) and reads the reply.
fn send(addr: SocketAddr, method: &str, target: &str, headers: &[&str]) -> Raw {
    let mut request = format!("{method} {target} HTTP/1.1\r\n");
    // An absolute-form target names its host itself.
    if target.starts_with('/')
        && !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str("Host: localhost\r\n");
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let reply = raw_request(addr, &request);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status for {method} {target}: {reply:?}"));
    Raw {
        status,
        head: head.to_string(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

async fn read_only_token(env: &OAuthEnv) -> String {
    light_client_credentials(env, Some("petstore.r"))
        .await
        .str("access_token")
        .to_string()
}

async fn read_write_token(env: &OAuthEnv) -> String {
    light_client_credentials(env, Some("petstore.r petstore.w"))
        .await
        .str("access_token")
        .to_string()
}

/// Every spelling of the protected path: without a token 401 (or 400 where the spelling is
/// refused), never the public route's 200.
#[tokio::test(flavor = "multi_thread")]
async fn protected_spellings_need_a_token() {
    let env = demo_env().await;
    let addr = env.gw.http;
    assert_eq!(
        send(addr, "GET", "/v1/other", &[]).status,
        200,
        "the public route"
    );
    for (target, want) in [
        ("/v1/pets", 401),
        ("/v1/%70ets", 401),
        ("/v1/pet%73", 401),
        ("/%76%31/%70%65%74%73/7", 401),
        ("/v1//pets", 401),
        ("//v1///pets", 401),
        ("http://other.example/v1/pets", 401),
        ("http://other.example/v1/%70ets?x=1", 401),
        ("/v1/pets;x=1", 400),
        ("/v1/pets/..;/admin", 400),
        ("/v1/pets%2f7", 400),
        ("/v1/pets%2F7", 400),
        ("/v1/pets%5c7", 400),
        ("/v1/pets%00", 400),
        ("/v1/./pets", 400),
        ("/v1/%2e%2e/v1/pets", 400),
        ("/v1/%2e%2E/v1/pets", 400),
        ("/v1/%2570ets", 400),
        // Double encodings however spelled, and delimiters a second decoding would see.
        ("/v1/%25%37%30ets", 400),
        ("/v1/%257%30ets", 400),
        ("/v1/%25%32%65%25%32%65/admin", 400),
        ("/v1/pets%3Bx=1", 400),
        ("/v1/pets%3F/x", 400),
        // Spellings frameworks match without case, trailing dots or format suffixes.
        ("/v1/PETS", 400),
        ("/v1/Pets/7", 400),
        ("/V1/pets", 400),
        ("/v1/pets.", 400),
        ("/v1/pets.json", 400),
        ("/v1/pets%20", 400),
        ("/v1/%C0%AF", 400),
    ] {
        let r = send(addr, "GET", target, &[]);
        assert_eq!(r.status, want, "{target}: {}", r.head);
        assert!(!r.reached_upstream(), "{target} reached the upstream");
        if want == 400 {
            assert_eq!(r.body["error"], "invalid_request", "{target}");
        } else {
            assert!(
                r.head
                    .to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{target}"
            );
        }
    }
}

/// With a valid token the upstream receives exactly the path that was matched and checked,
/// in normal form, with the query as sent.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_sees_the_normal_path() {
    let env = demo_env().await;
    let auth = bearer(&read_only_token(&env).await);
    for (target, path, query) in [
        ("/v1/pets", "/v1/pets", ""),
        ("/v1/%70ets", "/v1/pets", ""),
        ("/v1/pet%73/7?q=%70&r=a%2Fb", "/v1/pets/7", "q=%70&r=a%2Fb"),
        ("/v1//pets//7", "/v1/pets/7", ""),
        ("http://other.example/v1/%70ets?x=1", "/v1/pets", "x=1"),
        ("/v1/pets/caf%c3%a9", "/v1/pets/caf%C3%A9", ""),
    ] {
        let r = send(env.gw.http, "GET", target, &[&auth]);
        assert_eq!(r.status, 200, "{target}: {}", r.head);
        assert_eq!(r.upstream_path(), path, "{target}");
        assert_eq!(r.body["query"], query, "{target}");
        assert_eq!(
            r.body["headers"]["x-client-id"][0], LIGHT_ID,
            "{target}: identity headers set, so the protected route was matched"
        );
    }
    // The public route is normalised the same way.
    let r = send(env.gw.http, "GET", "/v1/%61%62c//d", &[]);
    assert_eq!((r.status, r.upstream_path()), (200, "/v1/abc/d"));
}

/// Another spelling of a write method is refused, and a method the route has no scopes for
/// needs the `"*"` entry's scopes, or is not allowed.
#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_a_write_method_passes_with_a_read_only_token() {
    let env = demo_env().await;
    let read = bearer(&read_only_token(&env).await);
    let write = bearer(&read_write_token(&env).await);
    let addr = env.gw.http;
    assert_eq!(send(addr, "GET", "/v1/pets", &[&read]).status, 200);
    for method in ["post", "Post", "delete", "Delete", "pUt", "patch"] {
        let r = send(addr, method, "/v1/pets", &[&read]);
        assert_eq!(r.status, 400, "{method}: {}", r.head);
        assert!(!r.reached_upstream(), "{method}");
        // A write token does not make the spelling acceptable either.
        let r = send(addr, method, "/v1/pets", &[&write]);
        assert_eq!(r.status, 400, "{method} with a write token: {}", r.head);
    }
    // Standard and non-standard writes need petstore.w (the demo's "*" entry).
    for method in ["POST", "DELETE", "PURGE", "FOO", "OPTIONS"] {
        let r = send(addr, method, "/v1/pets", &[&read]);
        assert_eq!(r.status, 403, "{method}: {}", r.head);
        assert!(!r.reached_upstream(), "{method}");
        let r = send(addr, method, "/v1/pets", &[&write]);
        assert_eq!(r.status, 200, "{method} with a write token: {}", r.head);
        assert_eq!(r.body["method"], method);
    }
    // Without a "*" entry a method that is neither listed nor standard is not allowed.
    let r = send(addr, "PURGE", "/v2/pets", &[&write]);
    assert_eq!(r.status, 405, "{}", r.head);
    assert!(!r.reached_upstream());
    let allow = r
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("allow: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    assert!(
        allow.contains("get") && allow.contains("post") && !allow.contains("purge"),
        "{allow}"
    );
    assert_eq!(send(addr, "GET", "/v2/pets", &[&read]).status, 200);
    assert_eq!(
        send(addr, "PATCH", "/v2/pets", &[&read]).status,
        200,
        "standard methods take `scopes`"
    );
}

/// One credential per request: two `Authorization` headers are refused on every route, and
/// the upstream receives the single value that was validated.
#[tokio::test(flavor = "multi_thread")]
async fn one_credential_per_request() {
    let env = demo_env().await;
    let token = read_only_token(&env).await;
    let forged = "Authorization: Bearer forged.eyJzdWIiOiJhZG1pbiJ9.sig";
    for target in ["/v1/pets", "/v1/other", "/oauth2/userinfo"] {
        let r = send(env.gw.http, "GET", target, &[&bearer(&token), forged]);
        assert_eq!(r.status, 400, "{target}: {}", r.head);
        assert_eq!(r.body["error"], "invalid_request", "{target}");
        assert!(!r.reached_upstream(), "{target}");
    }
    let r = send(env.gw.http, "GET", "/v1/pets", &[&bearer(&token)]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["headers"]["authorization"],
        serde_json::json!([format!("Bearer {token}")])
    );
}

/// `Host` is compared without case, trailing dot or port; an absolute-form target's
/// authority is the host.
#[tokio::test(flavor = "multi_thread")]
async fn hosts_compare_without_case_port_or_trailing_dot() {
    let env = demo_env().await;
    let addr = env.gw.http;
    for host in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "api.example.com.",
        "Api.Example.Com.:8080",
    ] {
        let r = send(addr, "GET", "/hosted/x", &[&format!("Host: {host}")]);
        assert_eq!(
            (r.status, r.upstream_path()),
            (200, "/hosted/x"),
            "{host}: {}",
            r.head
        );
    }
    for host in ["other.example", "api.example.com.evil", "api.example.co"] {
        let r = send(addr, "GET", "/hosted/x", &[&format!("Host: {host}")]);
        assert_eq!(r.status, 404, "{host}: {}", r.head);
    }
    let r = send(addr, "GET", "http://API.example.com.:80/hosted/%78", &[]);
    assert_eq!(
        (r.status, r.upstream_path()),
        (200, "/hosted/x"),
        "{}",
        r.head
    );
    assert_eq!(r.body["headers"]["host"][0], "API.example.com.:80");
    let r = send(addr, "GET", "http://other.example/hosted/x", &[]);
    assert_eq!(r.status, 404, "{}", r.head);
}

/// HTTP/2 pseudo-headers follow the same rules.
#[tokio::test(flavor = "multi_thread")]
async fn http2_follows_the_same_rules() {
    let env = demo_env().await;
    let token = read_only_token(&env).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(common::demo_ca()).expect("CA"))
                .expect("CA"),
        )
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let send2 = |method: &str, path: &str, auth: &[&str]| {
        let mut req = h2.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            env.gw.https_url(path),
        );
        for a in auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        async move {
            let resp = req.send().await.expect("h2 request");
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(send2("GET", "/v1/%70ets", &[]).await.0, 401);
    assert_eq!(send2("GET", "/v1//pets", &[]).await.0, 401);
    let (status, body) = send2("GET", "/v1/%70ets", &[&token]).await;
    assert_eq!((status, body["path"].as_str()), (200, Some("/v1/pets")));
    assert_eq!(send2("post", "/v1/pets", &[&token]).await.0, 400);
    assert_eq!(send2("GET", "/v1/pets%2f7", &[]).await.0, 400);
    assert_eq!(send2("GET", "/v1/pets", &[&token, "forged"]).await.0, 400);
    assert_eq!(send2("PURGE", "/v1/pets", &[&token]).await.0, 403);
    // The plain client agrees: the TLS listener is the same gateway.
    let resp = client()
        .get(env.gw.https_url("/v1/pet%73"))
        .send()
        .await
        .expect("h1 request");
    assert_eq!(resp.status().as_u16(), 401);
}

/// With `path_parameters: keep` a parameter is forwarded but never changes the route; with
/// `merge_slashes: false` repeated slashes are refused; with `escaped_slashes: keep` an
/// encoded slash is forwarded as sent and matched as opaque bytes.
#[tokio::test(flavor = "multi_thread")]
async fn the_options_decide_ambiguous_forms() {
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[],
        routes().await,
        "",
        "  merge_slashes: false\n  path_parameters: keep\n  escaped_slashes: keep\n  path_case: insensitive\n",
    );
    let addr = env.gw.http;
    let auth = bearer(&read_only_token(&env).await);
    // Case ignored in matching: another case is the protected route, a suffix still refused.
    assert_eq!(send(addr, "GET", "/V1/Pets", &[]).status, 401);
    let r = send(addr, "GET", "/V1/Pets", &[&auth]);
    assert_eq!((r.status, r.upstream_path()), (200, "/V1/Pets"));
    assert_eq!(send(addr, "GET", "/v1/Pets.json", &[]).status, 400);
    // Decoded once more, `%3B` is a parameter: matched as one.
    assert_eq!(send(addr, "GET", "/v1/pets%3Bx", &[]).status, 401);
    for target in ["/v1/pets;x=1", "/v1;a/pets;b/7", "/v1/%70ets;x"] {
        let r = send(addr, "GET", target, &[]);
        assert_eq!(r.status, 401, "{target}: {}", r.head);
    }
    let r = send(addr, "GET", "/v1/pets;x=1/7?q", &[&auth]);
    assert_eq!(
        (r.status, r.upstream_path()),
        (200, "/v1/pets;x=1/7"),
        "{}",
        r.head
    );
    let r = send(addr, "GET", "/v1/%70ets;%78", &[&auth]);
    assert_eq!(
        (r.status, r.upstream_path()),
        (200, "/v1/pets;x"),
        "{}",
        r.head
    );
    assert_eq!(send(addr, "GET", "/v1/pets/..;/admin", &[]).status, 400);
    assert_eq!(send(addr, "GET", "/v1//pets", &[]).status, 400);
    assert_eq!(send(addr, "GET", "/v1/;x/pets", &[]).status, 400);
    // An encoded slash is kept and opaque: `pets%2F7` is not the segment `pets`.
    let r = send(addr, "GET", "/v1/pets%2f7", &[]);
    assert_eq!(
        (r.status, r.upstream_path()),
        (200, "/v1/pets%2F7"),
        "{}",
        r.head
    );
    assert_eq!(send(addr, "GET", "/v1/..%2Fv1/pets", &[]).status, 400);
    assert_eq!(send(addr, "GET", "/v1/x;%2F../pets", &[]).status, 400);
}

/// Case-sensitive upstreams everywhere (`path_case: sensitive`): paths match exactly and no
/// spelling is refused for its case.
#[tokio::test(flavor = "multi_thread")]
async fn case_sensitive_tables_match_exactly() {
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[],
        routes().await,
        "",
        "  path_case: sensitive\n",
    );
    let r = send(env.gw.http, "GET", "/v1/PETS", &[]);
    assert_eq!(
        (r.status, r.upstream_path()),
        (200, "/v1/PETS"),
        "{}",
        r.head
    );
    assert_eq!(send(env.gw.http, "GET", "/v1/pets", &[]).status, 401);
}

/// HTTP/2 `:authority` is the host, compared like `Host`.
#[tokio::test(flavor = "multi_thread")]
async fn http2_authority_is_the_host() {
    let env = demo_env().await;
    let port = env.gw.https.port();
    for (host, want) in [
        ("api.example.com", 200),
        ("api.example.com.", 200),
        ("other.example", 404),
    ] {
        // The demo certificate names localhost only: this test is about routing, not TLS.
        let h2 = reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .resolve(host, env.gw.https)
            .http2_prior_knowledge()
            .build()
            .expect("client");
        let resp = h2
            .get(format!("https://{host}:{port}/hosted/%78"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status().as_u16(), want, "{host}");
        if want == 200 {
            let body: Value = resp.json().await.expect("echo");
            assert_eq!(body["path"], "/hosted/x");
        }
    }
}

/// Oversize request heads are refused before anything else looks at them: 414 for a long
/// target, 431 for too many or too large header fields (defaults: 8192 bytes, 100 fields,
/// 32 KiB); requests just under the limits pass.
#[tokio::test(flavor = "multi_thread")]
async fn oversize_request_heads_are_refused() {
    let env = demo_env().await;
    let addr = env.gw.http;
    let r = send(addr, "GET", &format!("/v1/{}", "a".repeat(8200)), &[]);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (414, Some("uri_too_long")),
        "{}",
        r.head
    );
    let r = send(addr, "GET", &format!("/v1/{}", "a".repeat(8000)), &[]);
    assert_eq!(r.status, 200, "{}", r.head);

    // Host and Connection come on top of these.
    let fields = |n: usize| {
        (0..n)
            .map(|i| format!("X-Field-{i}: v"))
            .collect::<Vec<_>>()
    };
    let many = fields(99);
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = send(addr, "GET", "/v1/x", &refs);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (431, Some("request_header_fields_too_large")),
        "{}",
        r.head
    );
    assert!(!r.reached_upstream());
    let some = fields(90);
    let refs: Vec<&str> = some.iter().map(String::as_str).collect();
    assert_eq!(send(addr, "GET", "/v1/x", &refs).status, 200);

    let big = format!("X-Big: {}", "b".repeat(33_000));
    assert_eq!(send(addr, "GET", "/v1/x", &[&big]).status, 431);
    let fits = format!("X-Big: {}", "b".repeat(30_000));
    assert_eq!(send(addr, "GET", "/v1/x", &[&fits]).status, 200);
}
