//! The load bench's baseline: the smallest useful Pingora 0.9 proxy — every request to one
//! upstream over pooled connections, nothing looked at, nothing added. `scripts/bench.sh` runs
//! it beside Tollgate (same Pingora, same worker count, same upstream, same core) so each
//! proxy row says what Tollgate costs on top of Pingora itself.
//!
//! With `--forwarded` it also sends the upstream `X-Forwarded-For` and `X-Forwarded-Proto`,
//! written the usual Pingora way: what any gateway that tells upstreams about the client
//! pays for that in Pingora, measured apart from the rest of Tollgate.
//!
//! ```text
//! cargo run --release -p gateway --example bare_pingora -- 127.0.0.1:16883 127.0.0.1:18080 1
//! curl http://127.0.0.1:16883/v1/open/x
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;

/// The allocator Tollgate's binary uses, so the comparison measures the proxy code alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
    /// Add `X-Forwarded-For` and `X-Forwarded-Proto`.
    forwarded: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> pingora::Result<()> {
        if self.forwarded {
            if let Some(addr) = session.client_addr().and_then(|a| a.as_inet()) {
                upstream_request.insert_header("X-Forwarded-For", addr.ip().to_string())?;
            }
            upstream_request.insert_header("X-Forwarded-Proto", "http")?;
        }
        Ok(())
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS] [--forwarded]";
    let listen = args.next().expect(usage);
    let upstream: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let threads: usize = args.next().map_or(1, |t| t.parse().expect(usage));
    let forwarded = match args.next().as_deref() {
        None => false,
        Some("--forwarded") => true,
        Some(_) => panic!("{usage}"),
    };
    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream,
            forwarded,
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    let adds = if forwarded {
        ", adding X-Forwarded-*"
    } else {
        ""
    };
    eprintln!("bare pingora proxy on {listen} -> {upstream}, {threads} thread(s){adds}");
    server.run_forever();
}
