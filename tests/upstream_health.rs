//! Upstream health and discovery through the real gateway: an upstream killed mid-test is
//! ejected while no idempotent request fails, and takes traffic again once it is back; a
//! connect failure ejects an address without health checks; an upstream name is resolved
//! again (by a DNS server the test runs) and traffic follows its new address.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, metric_value, Gateway, GatewayOptions};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An upstream that can die: killing it closes its listener and every connection it has.
struct Killable {
    addr: SocketAddr,
    name: &'static str,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Killable {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let mut up = Self {
            addr,
            name,
            task: None,
        };
        up.serve(listener);
        up
    }

    fn serve(&mut self, listener: TcpListener) {
        let name = self.name;
        self.task = Some(tokio::spawn(async move {
            // Connections live in the accept task's set: aborting the task drops them all.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<Incoming>| async move {
                            // `/slow` answers late: a kill meanwhile cuts a request in flight.
                            if req.uri().path().ends_with("/slow") {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            let body = format!("{{\"upstream\":\"{name}\"}}");
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn revive(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot bind {} again: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }
}

/// Sends one GET; the upstream that answered, or the failure.
async fn who_answers(http: &reqwest::Client, url: &str) -> Result<String, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["upstream"].as_str().unwrap_or("?").to_string())
}

fn healthy(metrics: &str, up: SocketAddr) -> Option<f64> {
    metric_value(
        metrics,
        &format!("tollgate_upstream_healthy{{route=\"/v1\",upstream=\"{up}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_is_ejected_without_failed_requests_and_comes_back() {
    let mut a = Killable::start("a").await;
    let b = Killable::start("b").await;
    let gw = Gateway::start(GatewayOptions {
        routes: format!(
            "  - path_prefix: /v1\n    upstreams: [\"{}\", \"{}\"]\n    health_check: {{interval_ms: 200, timeout_ms: 500, unhealthy_after: 1, healthy_after: 1}}\n",
            a.addr, b.addr
        ),
        ..Default::default()
    });
    let http = client();
    let url = gw.url("/v1/x");
    let mut failures = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        match who_answers(&http, &url).await {
            Ok(up) => {
                seen.insert(up);
            }
            Err(e) => failures.push(e),
        }
    }
    assert!(seen.contains("a") && seen.contains("b"), "{seen:?}");

    // Kill a while requests are in flight on it and while more keep coming: none fails
    // (each is sent again to b), and a is reported down.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let http = http.clone();
            let url = gw.url("/v1/slow");
            tokio::spawn(async move { who_answers(&http, &url).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.kill();
    for answered in slow {
        match answered.await.expect("request task") {
            Ok(up) => assert_eq!(up, "b", "a answered after it was killed"),
            Err(e) => failures.push(e),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Err(e) = who_answers(&http, &url).await {
            failures.push(e);
        }
        if healthy(&gw.metrics().await, a.addr) == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "a was never reported unhealthy");
    }
    let mut after = Vec::new();
    for _ in 0..20 {
        match who_answers(&http, &url).await {
            Ok(up) => after.push(up),
            Err(e) => failures.push(e),
        }
    }
    assert!(
        after.iter().all(|u| u == "b"),
        "traffic went to the dead upstream: {after:?}"
    );
    assert_eq!(healthy(&gw.metrics().await, b.addr), Some(1.0));

    // Back: it passes its checks and takes traffic again.
    a.revive().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match who_answers(&http, &url).await {
            Ok(up) if up == "a" => break,
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
        assert!(Instant::now() < deadline, "a never took traffic again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Health is published after each round of checks.
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthy(&gw.metrics().await, a.addr) != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "a is never reported healthy again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failures.is_empty(),
        "idempotent requests failed: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_eject_an_address_without_health_checks() {
    let up = Killable::start("up").await;
    // An address nothing listens on: bound once, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("bound");
    let gw = Gateway::start(GatewayOptions {
        routes: format!(
            "  - path_prefix: /v1\n    upstreams: [\"{dead}\", \"{}\"]\n    eject_after_failures: 1\n    ejection_ms: 600000\n",
            up.addr
        ),
        ..Default::default()
    });
    let http = client();
    for _ in 0..20 {
        assert_eq!(
            who_answers(&http, &gw.url("/v1/x")).await.as_deref(),
            Ok("up")
        );
    }
    // One connect to the dead address, then it was left alone.
    let log = gw.log();
    assert_eq!(log.matches("trying another one").count(), 1, "{log}");
    assert_eq!(log.matches("upstream ejected").count(), 1, "{log}");
}

/// A DNS server answering every A query with the address in `answer`.
async fn fake_dns(answer: Arc<Mutex<Ipv4Addr>>) -> SocketAddr {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("bound");
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                break;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
            reply.metadata.recursion_desired = query.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.metadata.response_code = ResponseCode::NoError;
            let ip = *answer.lock().expect("answer");
            for q in &query.queries {
                reply.add_query(q.clone());
                if q.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(q.name().clone(), 1, RData::A(A(ip))));
                }
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_resolved_again_and_traffic_follows_its_new_address() {
    // Two upstreams on one port, at 127.0.0.1 and 127.0.0.2.
    let (first, second) = loop {
        let first = common::upstream::spawn("127.0.0.1:0".parse().expect("addr"), "first", None)
            .await
            .expect("bind");
        let other = SocketAddr::from(([127, 0, 0, 2], first.port()));
        if let Ok(second) = common::upstream::spawn(other, "second", None).await {
            break (first, second);
        }
    };
    let answer = Arc::new(Mutex::new(Ipv4Addr::new(127, 0, 0, 1)));
    let dns = fake_dns(Arc::clone(&answer)).await;
    let gw = Gateway::start(GatewayOptions {
        routes: format!(
            "  - path_prefix: /v1\n    upstreams: [\"svc.tollgate.test:{}\"]\n    dns_refresh_ms: 200\n",
            first.port()
        ),
        server_yaml: format!("  dns_resolver: \"{dns}\"\n"),
        ..Default::default()
    });
    let http = client();
    let url = gw.url("/v1/x");
    let until = |want: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if who_answers(&http, &url).await.as_deref() == Ok(want) {
                    return;
                }
                assert!(Instant::now() < deadline, "{want} never answered");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until("first").await;
    *answer.lock().expect("answer") = Ipv4Addr::new(127, 0, 0, 2);
    until("second").await;
    // And it stays there.
    for _ in 0..10 {
        assert_eq!(who_answers(&http, &url).await.as_deref(), Ok("second"));
    }
    let _ = second;
}

/// An upstream that answers the first request of each connection and drops the connection
/// when a second one comes on it (as when it closes an idle keep-alive connection just as
/// the proxy reuses it).
async fn closes_reused_connections() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                // The first request: read its head (no body), answer, keep the connection.
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"upstream":"fresh"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
                // The second: dropped unanswered.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_on_a_dropped_pooled_connection_is_sent_again_to_the_same_address() {
    let up = closes_reused_connections().await;
    let gw = Gateway::start(GatewayOptions {
        routes: format!("  - path_prefix: /v1\n    upstreams: [\"{up}\"]\n"),
        ..Default::default()
    });
    let http = client();
    for _ in 0..10 {
        assert_eq!(
            who_answers(&http, &gw.url("/v1/x")).await.as_deref(),
            Ok("fresh")
        );
    }
}
