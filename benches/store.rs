//! Criterion benches of the store operations the grants use, on the in-memory store and on a
//! real `redis-server` the bench starts on an ephemeral loopback port (and stops).
//!
//! `cargo bench -p token_module --bench store`

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use token_module::{MemoryStore, RedisStore, Store, StoreUrl};

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Option<(Redis, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let redis = Redis(child);
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((redis, port));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn bench_store(c: &mut Criterion, name: &str, store: Arc<dyn Store>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ttl = Duration::from_secs(60);
    let value = vec![b'v'; 300]; // about a refresh-family record
    rt.block_on(store.put("family", &value, ttl)).expect("put");
    let mut group = c.benchmark_group(format!("store/{name}"));
    group.bench_function("put", |b| {
        b.to_async(&rt).iter(|| store.put("k", &value, ttl))
    });
    group.bench_function("get", |b| b.to_async(&rt).iter(|| store.get("family")));
    group.bench_function("put+take (a code)", |b| {
        b.to_async(&rt).iter(|| async {
            store.put("code", &value, ttl).await.expect("put");
            store.take("code").await.expect("take")
        })
    });
    group.bench_function("compare_and_swap (a rotation)", |b| {
        b.to_async(&rt)
            .iter(|| store.compare_and_swap("family", &value, &value, ttl))
    });
    group.bench_function("incr (a failure count)", |b| {
        b.to_async(&rt).iter(|| store.incr("fails", ttl))
    });
    group.finish();
}

fn stores(c: &mut Criterion) {
    bench_store(c, "memory", Arc::new(MemoryStore::new("bench:")));
    match start_redis() {
        Some((_redis, port)) => {
            let url = StoreUrl::parse(&format!("redis://127.0.0.1:{port}/0")).expect("url");
            let store = RedisStore::new(&url, "bench:", Duration::from_secs(1)).expect("store");
            bench_store(c, "redis", Arc::new(store));
        }
        None => eprintln!("store bench: redis-server is not installed (scripts/setup.sh --test installs it); skipping Redis"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
