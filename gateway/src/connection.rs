//! Connection-level limits that Pingora 0.9 does not have: a deadline for a whole request head
//! (Pingora bounds each read, so a client that trickles one byte at a time never times out),
//! an idle limit between keep-alive requests, and a cap on concurrent connections per listener.
//!
//! [`EdgeApp`] sits in front of the proxy: it admits each accepted connection under its
//! listener's cap and wraps its stream in a [`DeadlineStream`]. The stream enforces the head
//! deadline while the request phases of the proxy tell it, through [`head_received`] and
//! [`response_sent`], when a head was parsed and when a response was done.
//!
//! HTTP/2 connections are not wrapped: Pingora's own idle limit (`h2_idle_timeout`, set from
//! `server.keepalive_timeout_ms`) closes a connection without an open stream, which bounds a
//! `HEADERS` frame that trickles in; a stalled request body is bounded by the route's read
//! timeout (the upstream waits for the body and Pingora stops waiting for the upstream).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::SocketDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionTimeouts;
use crate::live::Live;
use crate::metrics::Metrics;

/// Sent when a request head missed its deadline after some of it arrived: the gateway's
/// 408, written by the error module like every other error.
static REQUEST_TIMEOUT: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| crate::error::GatewayError::RequestTimeout.into_http1_bytes());

/// What the request phases tell the stream (see [`head_received`], [`response_sent`]).
const NO_NEWS: u8 = 0;
const HEAD_PARSED: u8 = 1;
const RESPONSE_SENT: u8 = 2;

/// Where a connection stands, as the stream sees it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head to start or to finish: past `deadline` the connection
    /// is closed. `started` is set once a byte of the head arrived; `kept_alive` when an
    /// earlier response was sent on this connection.
    Head {
        deadline: Instant,
        started: bool,
        kept_alive: bool,
    },
    /// A head was parsed: the request is being served (body reads are bounded by Pingora's
    /// read timeout, which [`head_received`] sets).
    Serving,
}

/// A client stream whose request heads must arrive within a deadline. Everything but
/// reading is passed through unchanged.
#[derive(Debug)]
pub struct DeadlineStream {
    inner: Stream,
    timeouts: ConnectionTimeouts,
    phase: Phase,
    /// Written by the request phases, read (and cleared) by the next read.
    news: AtomicU8,
    /// The timer of the current deadline, made on the first read that has to wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl DeadlineStream {
    fn new(inner: Stream, timeouts: ConnectionTimeouts) -> Self {
        Self {
            inner,
            timeouts,
            phase: Phase::Head {
                deadline: Instant::now() + timeouts.header,
                started: false,
                kept_alive: false,
            },
            news: AtomicU8::new(NO_NEWS),
            timer: None,
        }
    }

    /// Takes what the request phases said since the last read.
    fn take_news(&mut self) {
        match self.news.swap(NO_NEWS, Ordering::Relaxed) {
            HEAD_PARSED => self.phase = Phase::Serving,
            RESPONSE_SENT => {
                self.phase = Phase::Head {
                    deadline: Instant::now() + self.timeouts.keepalive,
                    started: false,
                    kept_alive: true,
                }
            }
            _ => {}
        }
    }

    /// Whether `deadline` passed, arming the timer to wake this task when it does.
    ///
    /// The deadline moves later with every request on a keep-alive connection; moving the
    /// timer each time would cost a timer-wheel update per request. Instead a timer set
    /// for an earlier instant is left alone: when it fires early, the deadline is checked
    /// and the timer set again. Only a deadline earlier than the timer moves it.
    fn expired(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        false
    }
}

impl AsyncRead for DeadlineStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.take_news();
        let Phase::Head {
            deadline,
            started,
            kept_alive,
        } = this.phase
        else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !started && buf.filled().len() > before {
                    // A keep-alive connection's next head gets the whole header timeout
                    // from its first byte; a new connection's deadline counts from accept.
                    this.phase = Phase::Head {
                        deadline: if kept_alive {
                            Instant::now() + this.timeouts.header
                        } else {
                            deadline
                        },
                        started: true,
                        kept_alive,
                    };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if !this.expired(cx, deadline) {
                    return Poll::Pending;
                }
                if started {
                    // Best effort: a client that is still there learns why; one that reads
                    // nothing must not hold the connection, so this never waits.
                    let inner = Pin::new(&mut this.inner);
                    if let Poll::Ready(Ok(_)) = inner.poll_write(cx, &REQUEST_TIMEOUT) {
                        let _ = Pin::new(&mut this.inner).poll_flush(cx);
                    }
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request head did not arrive in time",
                )))
            }
        }
    }
}

impl AsyncWrite for DeadlineStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for DeadlineStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for DeadlineStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for DeadlineStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for DeadlineStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for DeadlineStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The downstream stream of an HTTP/1 session, if the gateway wrapped it.
fn deadline_stream(session: &Session) -> Option<&DeadlineStream> {
    session
        .stream()
        .and_then(|s| s.as_ref().as_any().downcast_ref::<DeadlineStream>())
}

/// Request phase: the head was parsed. Lifts the head deadline and bounds each read of the
/// body by `timeouts.body`.
pub fn head_received(session: &mut Session, timeouts: &ConnectionTimeouts) {
    if let Some(stream) = deadline_stream(session) {
        stream.news.store(HEAD_PARSED, Ordering::Relaxed);
        session.set_read_timeout(Some(timeouts.body));
    }
}

/// Logging phase: the response is done; the connection now waits for the next head, at most
/// `keepalive` for it to start.
pub fn response_sent(session: &Session) {
    if let Some(stream) = deadline_stream(session) {
        stream.news.store(RESPONSE_SENT, Ordering::Relaxed);
    }
}

/// The concurrent-connection cap of one listener.
pub struct ListenerCap {
    pub address: SocketAddr,
    pub open: Arc<Semaphore>,
    /// The listener's label in metrics.
    pub label: String,
}

impl ListenerCap {
    pub fn new(address: SocketAddr, max_connections: usize) -> Self {
        Self {
            address,
            open: Arc::new(Semaphore::new(max_connections)),
            label: address.to_string(),
        }
    }

    /// Whether a connection accepted at `local` came through this listener.
    fn accepted(&self, local: &SocketAddr) -> bool {
        self.address.port() == local.port()
            && (self.address.ip().is_unspecified() || self.address.ip() == local.ip())
    }
}

/// Counts a connection in `tollgate_connections_open` while it lives.
struct OpenConnection(prometheus::IntGauge);

impl OpenConnection {
    fn new(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The server application of the client-facing listeners: admits each connection under its
/// listener's cap, then hands it to the proxy (`A`).
pub struct EdgeApp<A> {
    pub proxy: Arc<A>,
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub caps: Vec<ListenerCap>,
}

impl<A> EdgeApp<A> {
    fn cap_for(&self, stream: &Stream) -> Option<&ListenerCap> {
        let digest = stream.get_socket_digest()?;
        let local = digest.local_addr()?.as_inet()?;
        self.caps.iter().find(|cap| cap.accepted(local))
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for EdgeApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut permit = None;
        if let Some(cap) = self.cap_for(&stream) {
            match Arc::clone(&cap.open).try_acquire_owned() {
                Ok(p) => permit = Some((p, cap.label.as_str())),
                Err(_) => {
                    // Refused before anything was read: the client sees the connection
                    // close and may retry; nothing of a request was lost.
                    self.metrics
                        .connections_refused
                        .with_label_values(&[&cap.label])
                        .inc();
                    return None;
                }
            }
        }
        let _open = permit.as_ref().map(|(_, label)| {
            OpenConnection::new(self.metrics.connections_open.with_label_values(&[label]))
        });
        let stream: Stream = if stream.selected_alpn_proto() == Some(ALPN::H2) {
            stream
        } else {
            let timeouts = self.live.load().connection_timeouts;
            Box::new(DeadlineStream::new(stream, timeouts))
        };
        ServerApp::process_new(&self.proxy, stream, shutdown).await
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(self.proxy.as_ref()).await
    }
}
