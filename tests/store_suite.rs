//! One suite for every `Store` implementation: the in-memory store, a real `redis-server`, and
//! a real three-node Redis Cluster, each started by the harness on ephemeral ports.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::RedisServer;
use token_module::clock::ManualClock;
use token_module::{MemoryStore, RedisStore, Store, StoreUrl};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Runs every check against stores made by `open(prefix)`.
/// How the suite lets time pass: the memory store's clock is moved, Redis's time is real.
enum Time {
    Real,
    Manual(Arc<ManualClock>),
}

impl Time {
    async fn pass(&self, by: Duration) {
        match self {
            Time::Real => tokio::time::sleep(by).await,
            Time::Manual(clock) => clock.advance_by(by),
        }
    }
}

async fn store_suite(open: impl Fn(&str) -> Arc<dyn Store>, time: Time) {
    let store = open("suite:");
    let ttl = Duration::from_secs(60);
    store.ping().await.expect("ping");

    // put / get / replace / delete
    assert_eq!(store.get("missing").await.expect("get"), None);
    store.put("k", b"v1", ttl).await.expect("put");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"v1"[..])
    );
    store.put("k", b"v2", ttl).await.expect("put");
    assert_eq!(
        store.get("k").await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    assert!(store.delete("k").await.expect("delete"));
    assert!(!store.delete("k").await.expect("delete"));
    assert_eq!(store.get("k").await.expect("get"), None);

    // binary values survive
    let binary: Vec<u8> = (0..=255).collect();
    store.put("bin", &binary, ttl).await.expect("put");
    assert_eq!(store.get("bin").await.expect("get"), Some(binary));

    // TTLs. An entry that must still be alive when it is read back lives at least a second
    // (a loaded machine can take a while between two calls); one wait then sees them all
    // expire.
    let short = Duration::from_secs(1);
    store.put("short", b"x", short).await.expect("put");
    assert!(store.get("short").await.expect("get").is_some());
    assert!(store.put_if_absent("once", b"a", short).await.expect("nx"));
    assert!(!store.put_if_absent("once", b"b", ttl).await.expect("nx"));
    assert_eq!(
        store.get("once").await.expect("get").as_deref(),
        Some(&b"a"[..])
    );
    store.put("expiring", b"old", ttl).await.expect("put");
    assert!(store
        .compare_and_swap("expiring", b"old", b"new", short)
        .await
        .expect("cas"));
    // incr: a fixed window starting at the first increment
    for want in 1..=3 {
        assert_eq!(store.incr("fails", short).await.expect("incr"), want);
    }
    time.pass(Duration::from_millis(1500)).await;
    assert_eq!(store.get("short").await.expect("get"), None);
    assert_eq!(store.take("short").await.expect("take"), None);
    assert!(store
        .put_if_absent("once", b"c", ttl)
        .await
        .expect("nx after expiry"));
    assert_eq!(
        store.get("expiring").await.expect("get"),
        None,
        "the swap sets the new TTL"
    );
    assert_eq!(
        store.incr("fails", short).await.expect("incr"),
        1,
        "window restarts"
    );

    // take is get-and-delete
    store.put("code", b"c", ttl).await.expect("put");
    assert_eq!(
        store.take("code").await.expect("take").as_deref(),
        Some(&b"c"[..])
    );
    assert_eq!(store.take("code").await.expect("take"), None);

    // compare_and_swap
    store.put("family", b"gen1", ttl).await.expect("put");
    assert!(!store
        .compare_and_swap("family", b"gen0", b"gen2", ttl)
        .await
        .expect("cas"));
    assert!(store
        .compare_and_swap("family", b"gen1", b"gen2", ttl)
        .await
        .expect("cas"));
    assert_eq!(
        store.get("family").await.expect("get").as_deref(),
        Some(&b"gen2"[..])
    );
    assert!(!store
        .compare_and_swap("absent", b"x", b"y", ttl)
        .await
        .expect("cas"));
    assert_eq!(
        store.get("absent").await.expect("get"),
        None,
        "a failed swap creates nothing"
    );
    // atomicity under concurrency: exactly one winner each
    store.put("race-take", b"once", ttl).await.expect("put");
    store.put("race-cas", b"gen1", ttl).await.expect("put");
    let mut tasks = Vec::new();
    for i in 0..32u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let took = store.take("race-take").await.expect("take").is_some();
            let swapped = store
                .compare_and_swap("race-cas", b"gen1", &[b'g', i], ttl)
                .await
                .expect("cas");
            let won_nx = store.put_if_absent("race-nx", &[i], ttl).await.expect("nx");
            store.incr("race-incr", ttl).await.expect("incr");
            (took, swapped, won_nx)
        }));
    }
    let mut wins = (0, 0, 0);
    for t in tasks {
        let (a, b, c) = t.await.expect("task");
        wins = (wins.0 + a as u32, wins.1 + b as u32, wins.2 + c as u32);
    }
    assert_eq!(
        wins,
        (1, 1, 1),
        "(take, compare_and_swap, put_if_absent) winners"
    );
    assert_eq!(
        store.incr("race-incr", ttl).await.expect("incr"),
        33,
        "no increment lost"
    );

    // take_if: deletes only what the caller read, once among concurrent callers
    store
        .put("checked-code", b"record", ttl)
        .await
        .expect("put");
    assert!(!store
        .take_if("checked-code", b"other")
        .await
        .expect("take_if"));
    assert!(store.get("checked-code").await.expect("get").is_some());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .take_if("checked-code", b"record")
                .await
                .expect("take_if")
        }));
    }
    let mut takers = 0;
    for t in tasks {
        takers += u32::from(t.await.expect("task"));
    }
    assert_eq!(takers, 1, "take_if winners");
    assert_eq!(store.get("checked-code").await.expect("get"), None);
    assert!(!store.take_if("absent", b"x").await.expect("take_if"));

    // decr: a refund of incr, never below zero and never creating a counter
    store.decr("no-counter").await.expect("decr");
    assert_eq!(store.get("no-counter").await.expect("get"), None);
    assert_eq!(store.incr("refunds", ttl).await.expect("incr"), 1);
    assert_eq!(store.incr("refunds", ttl).await.expect("incr"), 2);
    store.decr("refunds").await.expect("decr");
    store.decr("refunds").await.expect("decr");
    store.decr("refunds").await.expect("decr");
    assert_eq!(store.incr("refunds", ttl).await.expect("incr"), 1);

    // counts: several counters of one hash slot in one call
    assert_eq!(store.incr("c:{tag}:a", ttl).await.expect("incr"), 1);
    assert_eq!(store.incr("c:{tag}:b", ttl).await.expect("incr"), 1);
    assert_eq!(store.incr("c:{tag}:b", ttl).await.expect("incr"), 2);
    assert_eq!(
        store
            .counts(&["c:{tag}:a", "c:{tag}:b", "c:{tag}:none"])
            .await
            .expect("counts"),
        [1, 2, 0]
    );

    // key prefixes keep deployments apart
    let other = open("other:");
    store.put("shared-name", b"mine", ttl).await.expect("put");
    assert_eq!(other.get("shared-name").await.expect("get"), None);
    other.put("shared-name", b"theirs", ttl).await.expect("put");
    assert_eq!(
        store.get("shared-name").await.expect("get").as_deref(),
        Some(&b"mine"[..])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_passes_the_suite() {
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let base = MemoryStore::with_clock("", Arc::clone(&clock) as _);
    store_suite(
        move |prefix| Arc::new(base.with_prefix(prefix)),
        Time::Manual(clock),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_store_passes_the_suite() {
    let redis = RedisServer::start();
    let url = StoreUrl::parse(&redis.url()).expect("url");
    store_suite(
        move |prefix| Arc::new(RedisStore::new(&url, prefix, TIMEOUT).expect("store")),
        Time::Real,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_cluster_store_passes_the_suite() {
    let cluster = common::RedisCluster::start(3);
    let url = StoreUrl::parse(&cluster.url()).expect("url");
    assert!(matches!(url, StoreUrl::Cluster(ref nodes) if nodes.len() == 3));
    store_suite(
        move |prefix| Arc::new(RedisStore::new(&url, prefix, TIMEOUT).expect("store")),
        Time::Real,
    )
    .await;
}
