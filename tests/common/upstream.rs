//! A real HTTP/1.1 upstream for tests and the demo: it echoes what it received as JSON.
//!
//! - any request: `200` (or the status in an `x-echo-status` request header) with
//!   `{"upstream", "method", "path", "query", "headers", "body", "body_len", "sni"}` and the
//!   response headers `x-upstream: <name>` and `x-echo-response: yes`;
//! - `GET …/big/<n>`: `n` bytes, streamed in 64 KiB chunks without a length, byte `i` being
//!   `i % 251`;
//! - `GET …/slow/<ms>`: the echo, after waiting `ms` milliseconds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub type EchoBody = BoxBody<Bytes, Infallible>;

/// The byte at offset `i` of a `/big/<n>` body.
pub fn big_body_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// Serves the echo on `listener` until the task is dropped. With `tls`, connections are
/// TLS and the echo reports the SNI each client sent.
pub async fn serve(listener: TcpListener, name: String, tls: Option<TlsAcceptor>) {
    let name = Arc::new(name);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Small responses go out at once (no Nagle delay against the proxy's delayed ACKs).
        let _ = stream.set_nodelay(true);
        let name = Arc::clone(&name);
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(TokioIo::new(stream), name, None).await,
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = stream.get_ref().1.server_name().map(str::to_string);
                    serve_connection(TokioIo::new(stream), name, sni).await
                }
            }
        });
    }
}

async fn serve_connection<I>(io: TokioIo<I>, name: Arc<String>, sni: Option<String>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(Arc::clone(&name), sni.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

/// Binds `addr` and serves the echo in a background task; returns the bound address.
pub async fn spawn(
    addr: SocketAddr,
    name: &str,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, name.to_string(), tls));
    Ok(bound)
}

async fn handle(
    name: Arc<String>,
    sni: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<EchoBody>, Infallible> {
    let path = req.uri().path().to_string();
    if let Some(n) = path
        .rsplit_once("/big/")
        .and_then(|(_, n)| n.parse::<usize>().ok())
    {
        return Ok(big_response(&name, n));
    }
    if let Some(ms) = path
        .rsplit_once("/slow/")
        .and_then(|(_, n)| n.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let status = req
        .headers()
        .get("x-echo-status")
        .and_then(|v| v.to_str().ok()?.parse::<u16>().ok())
        .unwrap_or(200);
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let entry = headers
            .entry(k.as_str())
            .or_insert_with(|| serde_json::Value::Array(vec![]));
        if let serde_json::Value::Array(values) = entry {
            values.push(String::from_utf8_lossy(v.as_bytes()).into_owned().into());
        }
    }
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let echo = serde_json::json!({
        "upstream": name.as_str(),
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body_len": body.len(),
        "body": if body.len() <= 64 * 1024 { String::from_utf8_lossy(&body).into_owned() } else { String::new() },
        "sni": sni,
    });
    let resp = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-upstream", name.as_str())
        .header("x-echo-response", "yes")
        .body(Full::new(Bytes::from(echo.to_string())).boxed());
    Ok(resp.unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())))
}

fn big_response(name: &str, n: usize) -> Response<EchoBody> {
    const CHUNK: usize = 64 * 1024;
    let chunks = (0..n).step_by(CHUNK).map(move |start| {
        let end = (start + CHUNK).min(n);
        let data: Vec<u8> = (start..end).map(big_body_byte).collect();
        Ok::<_, Infallible>(Frame::data(Bytes::from(data)))
    });
    let body = StreamBody::new(stream::iter(chunks)).boxed();
    Response::builder()
        .header("content-type", "application/octet-stream")
        .header("x-upstream", name)
        .body(body)
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
