//! The load bench's baseline: the smallest useful Pingora 0.9 proxy — every request to one
//! upstream over pooled connections, nothing looked at, nothing added. `scripts/bench.sh` runs
//! it beside Tollgate (same Pingora, same worker count, same upstream, same core) so each
//! proxy row says what Tollgate costs on top of Pingora itself.
//!
//! ```text
//! cargo run --release -p gateway --example bare_pingora -- 127.0.0.1:16883 127.0.0.1:18080 1
//! curl http://127.0.0.1:16883/v1/open/x
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;

/// The allocator Tollgate's binary uses, so the comparison measures the proxy code alone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
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
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]";
    let listen = args.next().expect(usage);
    let upstream: SocketAddr = args.next().and_then(|a| a.parse().ok()).expect(usage);
    let threads: usize = args.next().map_or(1, |t| t.parse().expect(usage));
    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("bare pingora proxy on {listen} -> {upstream}, {threads} thread(s)");
    server.run_forever();
}
