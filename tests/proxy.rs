//! Proxying through the real gateway to real upstreams: what goes up and comes back, route
//! selection, upstream failures, and the TLS listener.

mod common;

use common::{client, start_tls_upstream, start_upstream, Gateway, GatewayOptions};
use serde_json::Value;

fn route(prefix: &str, upstreams: &[std::net::SocketAddr], extra: &str) -> String {
    let list: Vec<String> = upstreams.iter().map(|u| u.to_string()).collect();
    format!(
        "  - path_prefix: {prefix}\n    upstreams: [{}]\n{extra}",
        list.join(", ")
    )
}

fn gateway(routes: &[String]) -> Gateway {
    Gateway::start(GatewayOptions {
        routes: routes.concat(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn proxies_method_path_query_headers_and_body_both_ways() {
    let up = start_upstream("echo").await;
    let gw = gateway(&[route("/v1", &[up], "")]);
    let http = client();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = http
            .request(method.clone(), gw.url("/v1/items/7?a=1&b=two%20words"))
            .header("x-custom", "custom-value")
            .header("x-echo-status", "201")
            .body(format!("body of {method}"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 201, "{method}: status passes back");
        assert_eq!(
            resp.headers()["x-echo-response"],
            "yes",
            "{method}: response headers pass back"
        );
        let echo: Value = resp.json().await.expect("json");
        assert_eq!(echo["method"], method.as_str());
        assert_eq!(echo["path"], "/v1/items/7");
        assert_eq!(echo["query"], "a=1&b=two%20words");
        assert_eq!(echo["headers"]["x-custom"][0], "custom-value");
        assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1");
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "http");
        assert_eq!(echo["body"], format!("body of {method}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_10_mb_each_way() {
    const TEN_MB: usize = 10 * 1024 * 1024;
    let up = start_upstream("echo").await;
    let gw = gateway(&[route("/v1", &[up], "")]);
    let http = client();

    let mut resp = http
        .get(gw.url(&format!("/v1/big/{TEN_MB}")))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let mut received = 0usize;
    let mut chunks = 0usize;
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        for (i, byte) in chunk.iter().enumerate() {
            assert_eq!(
                *byte,
                common::upstream::big_body_byte(received + i),
                "byte {}",
                received + i
            );
        }
        received += chunk.len();
        chunks += 1;
    }
    assert_eq!(received, TEN_MB);
    assert!(
        chunks > 1,
        "the body arrived in pieces, not buffered into one"
    );

    let upload = vec![b'x'; TEN_MB];
    let resp = http
        .post(gw.url("/v1/upload"))
        .body(upload)
        .send()
        .await
        .expect("upload");
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["body_len"], TEN_MB);
}

#[tokio::test(flavor = "multi_thread")]
async fn longest_prefix_then_host_then_method_selects_the_route() {
    let (root, v1, pets, host, post) = (
        start_upstream("root").await,
        start_upstream("v1").await,
        start_upstream("pets").await,
        start_upstream("host").await,
        start_upstream("post").await,
    );
    let gw = gateway(&[
        route("/", &[root], ""),
        route("/v1", &[v1], ""),
        route("/v1/pets", &[pets], ""),
        route("/v1", &[host], "    host: api.example.test\n"),
        route("/v1", &[post], "    methods: [post]\n"),
    ]);
    let http = client();
    let served_by = |resp: reqwest::Response| {
        resp.headers()
            .get("x-upstream")
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    let cases = [
        ("GET", None, "/v1/pets/3", "pets"),
        ("GET", None, "/v1/pets", "pets"),
        ("GET", None, "/v1/petshop", "v1"),
        ("GET", None, "/v1", "v1"),
        ("GET", None, "/other", "root"),
        ("GET", Some("api.example.test:8443"), "/v1/x", "host"),
        ("POST", None, "/v1/x", "post"),
    ];
    for (method, host, path, want) in cases {
        let mut req = http.request(method.parse().expect("method"), gw.url(path));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(
            served_by(resp).as_deref(),
            Some(want),
            "{method} {host:?} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_requests_get_404_and_dot_segments_400() {
    let up = start_upstream("echo").await;
    let gw = gateway(&[route("/v1", &[up], "    methods: [GET]\n")]);
    let http = client();
    for (method, path) in [("GET", "/v2"), ("GET", "/v1x"), ("DELETE", "/v1/a")] {
        let resp = http
            .request(method.parse().expect("m"), gw.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 404, "{method} {path}");
        assert!(resp.headers().get("x-upstream").is_none());
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "not_found");
    }
    // Sent raw: HTTP clients would normalise the dot segments away before sending.
    for path in ["/v1/../admin", "/v1/%2e%2e/admin", "/v1/./x", "/v1/%2E"] {
        let resp = common::raw_request(
            gw.http,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains("invalid_request"), "{path}: {resp}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_skips_an_upstream_that_refuses_connections() {
    let (a, b) = (start_upstream("a").await, start_upstream("b").await);
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("addr");
    let gw = gateway(&[route("/v1", &[dead, a, b], "")]);
    let http = client();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..9 {
        let resp = http
            .post(gw.url("/v1/x"))
            .body("payload")
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            200,
            "a refused connect moves on to the next upstream"
        );
        let echo: Value = resp.json().await.expect("json");
        assert_eq!(echo["body"], "payload", "the body survives the retry");
        *seen
            .entry(echo["upstream"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    assert!(
        seen.get("a").copied().unwrap_or(0) >= 3 && seen.get("b").copied().unwrap_or(0) >= 3,
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_gives_502_and_slow_upstream_504() {
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .expect("addr");
    let slow = start_upstream("slow").await;
    let gw = gateway(&[
        route("/down", &[dead], ""),
        route("/slow", &[slow], "    read_timeout_ms: 300\n"),
    ]);
    let http = client();
    let resp = http.get(gw.url("/down/x")).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "bad_gateway");

    let resp = http
        .get(gw.url("/slow/slow/2000"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    let resp = http
        .get(gw.url("/slow/slow/10"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.status(),
        200,
        "a quick answer within the read timeout passes"
    );
}

/// `server.upstream_forwarded_header`: one RFC 7239 `Forwarded` header (over plain HTTP and
/// TLS), or none; the styles not written are removed, and what came is appended to only from
/// a trusted proxy, so a client cannot tell the upstream what the gateway did not vouch for.
#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_gets_the_forwarding_header_style_configured() {
    let up = start_upstream("echo").await;
    let with_server = |style: &str, more: &str| {
        Gateway::start(GatewayOptions {
            routes: route("/v1", &[up], ""),
            server_yaml: format!("  upstream_forwarded_header: {style}\n{more}"),
            ..Default::default()
        })
    };
    let with = |style: &str| with_server(style, "");
    let http = client();
    const SPOOFED: &[(&str, &str)] = &[
        ("forwarded", "for=192.0.2.1"),
        ("x-forwarded-for", "192.0.2.2"),
        ("x-forwarded-proto", "https"),
    ];
    let echo = |url: String, sent: &'static [(&'static str, &'static str)]| {
        let http = http.clone();
        async move {
            let mut req = http.get(url);
            for (name, value) in sent {
                req = req.header(*name, *value);
            }
            let resp = req.send().await.expect("request");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };

    let gw = with("forwarded");
    let got = echo(gw.url("/v1/a"), &[]).await;
    assert_eq!(got["headers"]["forwarded"][0], "for=127.0.0.1;proto=http");
    let got = echo(gw.https_url("/v1/a"), SPOOFED).await;
    assert_eq!(
        got["headers"]["forwarded"][0], "for=127.0.0.1;proto=https",
        "not appended to what an untrusted client sent"
    );
    assert!(got["headers"]["x-forwarded-for"].is_null(), "{got}");
    assert!(got["headers"]["x-forwarded-proto"].is_null(), "{got}");

    let gw = with("none");
    let got = echo(gw.url("/v1/a"), SPOOFED).await;
    for name in ["forwarded", "x-forwarded-for", "x-forwarded-proto"] {
        assert!(got["headers"][name].is_null(), "{name}: {got}");
    }

    let gw = with("x-forwarded-for");
    let got = echo(gw.url("/v1/a"), SPOOFED).await;
    assert_eq!(got["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(got["headers"]["x-forwarded-proto"][0], "http");
    assert!(got["headers"]["forwarded"].is_null(), "{got}");

    // Behind a trusted proxy, what it sent is kept and appended to.
    let trusted = "  trusted_proxies: [127.0.0.0/8]\n";
    let gw = with_server("x-forwarded-for", trusted);
    let got = echo(gw.url("/v1/a"), SPOOFED).await;
    assert_eq!(got["headers"]["x-forwarded-for"][0], "192.0.2.2, 127.0.0.1");
    let gw = with_server("forwarded", trusted);
    let got = echo(gw.https_url("/v1/a"), SPOOFED).await;
    assert_eq!(
        got["headers"]["forwarded"][0],
        "for=192.0.2.1, for=127.0.0.1;proto=https"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_serves_the_demo_certificate() {
    let up = start_upstream("echo").await;
    let gw = gateway(&[route("/v1", &[up], "")]);
    // The client verifies the chain against the demo CA and the name `localhost`.
    let resp = client()
        .get(gw.https_url("/v1/secure?x=1"))
        .send()
        .await
        .expect("TLS request");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(echo["query"], "x=1");

    // A client that trusts only the system roots refuses the demo certificate.
    let strict = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    assert!(strict.get(gw.https_url("/v1/secure")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_tls_sends_sni_and_verifies_the_certificate() {
    let up = start_tls_upstream("tls").await;
    let ca = common::demo_ca().display().to_string();
    let tls_route = |prefix: &str, tls: &str| {
        format!("  - path_prefix: {prefix}\n    upstreams: [\"{up}\"]\n    tls: {tls}\n")
    };
    let gw = gateway(&[
        tls_route("/named", &format!("{{sni: localhost, ca: \"{ca}\"}}")),
        tls_route("/by-ip", &format!("{{ca: \"{ca}\"}}")),
        tls_route(
            "/wrong-name",
            &format!("{{sni: other.example, ca: \"{ca}\"}}"),
        ),
        tls_route("/untrusted", "{sni: localhost}"),
        tls_route("/unverified", "{sni: other.example, verify: false}"),
    ]);
    let http = client();
    let resp = http.get(gw.url("/named/a")).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(
        echo["sni"], "localhost",
        "the configured SNI reaches the upstream"
    );
    let resp = http
        .get(gw.url("/unverified/a"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "verify: false accepts any certificate");
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["sni"], "other.example");
    let resp = http.get(gw.url("/by-ip/a")).send().await.expect("request");
    assert_eq!(
        resp.status(),
        200,
        "without sni the address is verified against the certificate"
    );
    for path in ["/wrong-name/a", "/untrusted/a"] {
        let resp = http.get(gw.url(path)).send().await.expect("request");
        assert_eq!(
            resp.status(),
            502,
            "{path}: a certificate that does not verify is refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_listener_reports_health_readiness_and_metrics() {
    let up = start_upstream("echo").await;
    let gw = gateway(&[route("/v1", &[up], "").replacen("  - ", "  - name: echo-route\n    ", 1)]);
    let http = client();
    assert_eq!(
        http.get(gw.url("/v1/a"))
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    assert_eq!(
        http.get(gw.url("/nowhere"))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );

    let health = http
        .get(gw.admin_url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let ready = http
        .get(gw.admin_url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    gw.metrics_containing(&[
        r#"tollgate_http_requests_total{route="echo-route",status="200"} 1"#,
        r#"tollgate_http_requests_total{route="unmatched",status="404"} 1"#,
        r#"tollgate_http_request_duration_seconds_count{route="echo-route"} 1"#,
    ])
    .await;
}
