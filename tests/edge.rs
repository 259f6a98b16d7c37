//! Tollgate facing clients that misbehave on purpose: heads trickled a byte at a time
//! (slowloris) on plain and TLS connections, idle keep-alive connections, stalled bodies, and
//! more connections than a listener takes. Real sockets against the real gateway.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, metric_value, start_upstream, Gateway, GatewayOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HEAD: &str = "GET /v1/pets HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\n\r\n";

async fn gateway(server_yaml: &str, http_listener_yaml: &str) -> Gateway {
    let up = start_upstream("svc").await;
    Gateway::start(GatewayOptions {
        routes: format!("  - path_prefix: /v1\n    upstreams: [\"{up}\"]\n"),
        server_yaml: server_yaml.to_string(),
        http_listener_yaml: http_listener_yaml.to_string(),
        ..Default::default()
    })
}

/// What a trickling client saw: how long the gateway let it go on, how many head bytes it
/// got out, and what came back.
#[derive(Debug)]
struct Trickled {
    lasted: Duration,
    sent: usize,
    reply: String,
}

/// Sends `HEAD` one byte per `every` on `stream` until the gateway closes the connection
/// (or the whole head went out), then reads what the gateway answered.
async fn trickle<S>(mut stream: S, every: Duration) -> Trickled
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut sent = 0;
    for byte in HEAD.as_bytes() {
        if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
            break;
        }
        sent += 1;
        // A read that ends means the gateway closed the connection.
        let mut buf = [0u8; 512];
        if let Ok(read) = tokio::time::timeout(every, stream.read(&mut buf)).await {
            let reply = match read {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) => String::new(),
            };
            return Trickled {
                lasted: started.elapsed(),
                sent,
                reply,
            };
        }
    }
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    Trickled {
        lasted: started.elapsed(),
        sent,
        reply: String::from_utf8_lossy(&reply).into_owned(),
    }
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(tls_connector_config())
}

fn tls_connector_config() -> Arc<tokio_rustls::rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(common::demo_ca()).expect("demo CA") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_is_cut_at_the_header_deadline_while_others_are_served() {
    // A 2 s deadline; the head takes 50 s at one byte per second.
    let gw = gateway("  header_timeout_ms: 2000\n", "").await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(gw.http)
            .await
            .expect("connect");
        slow.push(tokio::spawn(trickle(
            Box::new(tcp) as Box<dyn AsyncStream>,
            Duration::from_secs(1),
        )));
    }
    let connector = tls_connector();
    for _ in 0..4 {
        let tcp = tokio::net::TcpStream::connect(gw.https)
            .await
            .expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        slow.push(tokio::spawn(trickle(
            Box::new(tls) as Box<dyn AsyncStream>,
            Duration::from_secs(1),
        )));
    }
    // Meanwhile, everyone else is served.
    let http = client();
    for _ in 0..20 {
        let resp = http.get(gw.url("/v1/pets")).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in slow {
        let t = task.await.expect("trickler");
        assert!(
            t.sent < HEAD.len() && t.lasted < Duration::from_secs(20),
            "a trickled head was not cut at the deadline: {t:?}"
        );
        assert!(
            t.reply.starts_with("HTTP/1.1 408"),
            "the client that sent part of a head is told why: {t:?}"
        );
    }
}

trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// Reads one response (head and `Content-Length` body) off a blocking stream.
fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("read a response");
        assert!(n > 0, "connection closed before a full response");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// Whether the gateway closes `stream` within `within` (a read returns end of stream or
/// an error); `false` if the connection is still open then.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 64];
    !matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_close_and_later_heads_get_the_deadline() {
    let gw = gateway(
        "  header_timeout_ms: 2000\n  keepalive_timeout_ms: 3000\n",
        "",
    )
    .await;
    let addr: SocketAddr = gw.http;
    tokio::task::spawn_blocking(move || {
        // An idle keep-alive connection is closed after keepalive_timeout_ms.
        let mut idle = TcpStream::connect(addr).expect("connect");
        idle.write_all(HEAD.as_bytes()).expect("write");
        assert!(read_response(&mut idle).starts_with("HTTP/1.1 200"));
        let waited = Instant::now();
        assert!(closed_within(&mut idle, Duration::from_secs(20)));
        assert!(
            waited.elapsed() >= Duration::from_millis(2500),
            "closed before the keep-alive timeout: {:?}",
            waited.elapsed()
        );

        // A later head on a kept-alive connection is bounded too (Pingora alone would wait
        // 60 s per read): part of a head, a pause, a little more, then silence.
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(HEAD.as_bytes()).expect("write");
        assert!(read_response(&mut slow).starts_with("HTTP/1.1 200"));
        slow.write_all(b"GET /v1").expect("write");
        std::thread::sleep(Duration::from_millis(1000));
        slow.write_all(b"/pets").expect("write");
        let mut rest = String::new();
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let _ = slow.read_to_string(&mut rest);
        assert!(rest.starts_with("HTTP/1.1 408"), "got {rest:?}");
    })
    .await
    .expect("client thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_ends_the_request() {
    let gw = gateway("  body_timeout_ms: 1500\n", "").await;
    let addr = gw.http;
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(
            b"POST /v1/pets HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nten bytes.",
        )
        .expect("write");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("client thread");
    assert!(reply.starts_with("HTTP/1.1 408"), "got {reply:?}");
    assert!(reply.contains("request_timeout"), "got {reply:?}");
    // A body that keeps coming is not cut, however slow in total.
    let addr = gw.http;
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(b"POST /v1/pets HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
            .expect("write");
        for byte in b"abcd" {
            std::thread::sleep(Duration::from_millis(700));
            s.write_all(&[*byte]).expect("write");
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .expect("client thread");
    assert!(reply.starts_with("HTTP/1.1 200"), "got {reply:?}");
    assert!(reply.contains(r#""body":"abcd""#), "got {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_holds_its_connection_cap() {
    let gw = gateway("", "    max_connections: 3\n").await;
    let addr = gw.http;
    let label = format!("{{listener=\"{addr}\"}}");
    // The harness's own readiness probes were connections too; wait until they are gone.
    let open = format!("tollgate_connections_open{label}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_value(&gw.metrics().await, &open).unwrap_or(0.0) > 0.0 {
        assert!(Instant::now() < deadline, "the probes stay open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /v1/pets HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .expect("write");
            assert!(read_response(&mut s).starts_with("HTTP/1.1 200"));
            s
        })
        .collect();
    // The fourth is closed without an answer, and counted.
    let mut refused = TcpStream::connect(addr).expect("the kernel still accepts");
    let _ = refused.write_all(b"GET /v1/pets HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut out = Vec::new();
    refused
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = refused.read_to_end(&mut out);
    assert!(
        out.is_empty(),
        "served past the cap: {:?}",
        String::from_utf8_lossy(&out)
    );
    let metrics = gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            &format!("tollgate_connections_refused_total{label}")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(metric_value(&metrics, &open), Some(3.0));
    // A freed place is taken again.
    drop(held);
    let http = client();
    let mut served = false;
    for _ in 0..50 {
        if let Ok(resp) = http.get(gw.url("/v1/pets")).send().await {
            served = resp.status() == 200;
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "no connection accepted after the held ones closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed() {
    let gw = gateway("  keepalive_timeout_ms: 1500\n", "").await;
    let mut config = (*tls_connector_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.https)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // The connection preface and an empty SETTINGS frame, then nothing: no stream is opened,
    // as when a HEADERS frame trickles in.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // the server's SETTINGS, its ACK, a GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

/// HTTP/2 bodies at the OAuth endpoints are read within `server.body_timeout_ms`: 100
/// streams that send their headers (claiming a body) and never a DATA frame are each
/// answered 408 at the deadline, and nothing waits longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http2_bodies_at_the_oauth_endpoints_end_at_the_deadline() {
    use common::oauth::{Backend, OAuthEnv};
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[],
        String::new(),
        "",
        "  body_timeout_ms: 1500\n",
    );
    let mut config = (*tls_connector_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(env.gw.https)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (mut h2, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let started = Instant::now();
    let mut pending = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..100 {
        h2 = h2.ready().await.expect("a stream");
        let request = http::Request::post("https://localhost/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-length", "1000")
            .body(())
            .expect("request");
        let (response, body) = h2.send_request(request, false).expect("send");
        pending.push(response);
        bodies.push(body); // kept open, never written
    }
    let statuses = tokio::time::timeout(Duration::from_secs(30), async {
        let mut statuses = Vec::new();
        for response in pending {
            statuses.push(response.await.map(|r| r.status().as_u16()).unwrap_or(0));
        }
        statuses
    })
    .await
    .expect("every stream answered");
    assert!(statuses.iter().all(|s| *s == 408), "{statuses:?}");
    assert!(started.elapsed() >= Duration::from_millis(1400));
    drop(bodies);
}
