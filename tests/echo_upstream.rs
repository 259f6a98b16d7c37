//! The demo upstream: the test suite's echo server as a program, so the demo configuration
//! has something to proxy to. `scripts/run.sh` starts it on 127.0.0.1:8080.
//!
//! ```text
//! cargo run -p gateway --example echo_upstream -- 127.0.0.1:8080
//! curl -k https://localhost:6882/v1/pets?limit=2
//! ```

#[path = "common/upstream.rs"]
#[allow(dead_code)] // the harness uses more of it than the demo
mod upstream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{addr}` is not ip:port"),
        )
    })?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("echo upstream listening on {addr}");
    upstream::serve(listener, "demo".to_string(), None).await;
    Ok(())
}
