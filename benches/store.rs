//! Criterion benches of the store operations the grants use, on the in-memory store and on a
//! real `redis-server` the bench starts on a loopback port (and stops), with the tests' own
//! spawner.
//!
//! `cargo bench -p token_module --bench store`

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use token_module::{MemoryStore, RedisStore, Store, StoreUrl};

/// The tests' redis-server spawner, shared so that both start it the same way.
#[path = "../tests/common/processes.rs"]
mod processes;

/// A redis-server for the bench, or `None` when it is not installed.
fn start_redis() -> Option<processes::RedisServer> {
    let installed = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    installed.then(processes::RedisServer::start)
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
        Some(redis) => {
            let url = StoreUrl::parse(&redis.url()).expect("url");
            let store = RedisStore::new(&url, "bench:", Duration::from_secs(1)).expect("store");
            bench_store(c, "redis", Arc::new(store));
        }
        None => eprintln!("store bench: redis-server is not installed (scripts/setup.sh --test installs it); skipping Redis"),
    }
}

criterion_group!(benches, stores);
criterion_main!(benches);
