//! Everything that expires or reopens with time, on the manual clock: codes, the brute-force
//! window, the "not revoked" reuse window across two instances, the verified-token cache,
//! and the times an id_token carries across a refresh. No test here sleeps.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::*;

const EQDKP_SECRET: &str = "C7LxkuPm0a7JozCd16cyiKLA31UHqbwdUZPxX8auDDO3uiiFqa1Q7SRObHtLsd2k9pmYZqmAqKBlkf3ThCtScMSTzhz9DSfjW7GP0DAfNaWO0ZXNT8SzNqWO6yTfwVq7";

/// The claims of a JWT, unverified (the provider just signed it).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn a_code_expires_with_its_ttl() {
    let env = env();
    let verifier = "v".repeat(43);
    let late = env.spa_code(&verifier).await;
    let in_time = env.spa_code(&verifier).await;
    // The demo's codes live 600 s.
    env.clock.advance(599);
    assert_eq!(
        env.redeem_spa(&in_time, &verifier).await.status,
        200,
        "one second before"
    );
    env.clock.advance(1);
    let reply = env.redeem_spa(&late, &verifier).await;
    assert_eq!((reply.status, reply.str("error")), (400, "invalid_grant"));
}

#[tokio::test]
async fn the_failure_window_reopens_on_the_clock() {
    let env = env();
    let cc = [("grant_type", "client_credentials")];
    let wrong = format!("Basic {LIGHT_ID}:guess");
    for _ in 0..10 {
        env.token_from(ip(9), Some(&wrong), &cc).await;
    }
    let window = env.provider.config().failure_window;
    env.clock.advance_by(window - Duration::from_secs(1));
    let blocked = env.token_from(ip(9), Some(LIGHT_BASIC), &cc).await;
    assert_eq!(blocked.status, 429, "still inside the window");
    env.clock.advance(1);
    let served = env.token_from(ip(9), Some(LIGHT_BASIC), &cc).await;
    assert_eq!(served.status, 200, "{}", served.json);
}

/// Two instances on one store: a revocation through one is refused there at once, and at the
/// other once its "not revoked" answer is older than `denylist_cache` — not before, not after.
#[tokio::test]
async fn another_instance_sees_a_revocation_within_its_reuse_window() {
    let clock = Arc::new(ManualClock::new(START));
    let store: Arc<MemoryStore> =
        Arc::new(MemoryStore::with_clock("test:", Arc::clone(&clock) as _));
    let a = env_on(store.clone(), Arc::clone(&clock), |_| {});
    let b = env_on(store, Arc::clone(&clock), |_| {});
    let reuse = a.provider.config().denylist_cache;
    assert!(!reuse.is_zero(), "the demo reuses answers");
    let token = &a.light_access_token().await;
    assert_eq!(b.valid(token).await, Ok(()), "B caches its answer");
    assert_eq!(a.revoke(token).await, 200);
    assert!(a.valid(token).await.is_err(), "A refuses at once");
    assert_eq!(b.valid(token).await, Ok(()), "B reuses its answer");
    clock.advance_by(reuse - Duration::from_millis(1));
    assert_eq!(b.valid(token).await, Ok(()), "until the window ends");
    clock.advance_by(Duration::from_millis(1));
    assert!(b.valid(token).await.is_err(), "B asks the store again");
}

/// The verified-token cache answers no longer than the token lives: a cached JWT is refused
/// the moment its leeway ends, like one seen for the first time.
#[tokio::test]
async fn a_cached_token_expires_like_a_fresh_one() {
    let env = env();
    let token = env.light_access_token().await;
    let (_, cached) = env.provider.verify_jwt(&token).expect("valid");
    assert!(!cached);
    let (_, cached) = env.provider.verify_jwt(&token).expect("valid");
    assert!(cached, "the second check is the cache's");
    let leeway = env.provider.config().leeway.as_secs();
    env.clock.advance(600 + leeway - 1);
    assert!(env.provider.verify_jwt(&token).is_ok());
    env.clock.advance(1);
    assert!(env.provider.verify_jwt(&token).is_err());
}

/// A refresh issues a new id_token: new `iat`, the same `sub` and `auth_time` (the user
/// signed in once), no `nonce`.
#[tokio::test]
async fn a_refreshed_id_token_keeps_auth_time_and_moves_iat() {
    let env = env();
    let first = env
        .token(
            None,
            &[
                ("client_id", EQDKP_ID),
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", "123456"),
                ("scope", "openid"),
                ("nonce", "n-1"),
            ],
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.json);
    let before = claims(first.str("id_token"));
    assert_eq!(before["auth_time"], START);
    assert_eq!(before["nonce"], "n-1");
    env.clock.advance(100);
    let refreshed = env
        .token(
            None,
            &[
                ("client_id", EQDKP_ID),
                ("client_secret", EQDKP_SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.json);
    let after = claims(refreshed.str("id_token"));
    assert_eq!(after["iat"], START + 100);
    assert_eq!(
        (&after["sub"], &after["auth_time"]),
        (&before["sub"], &before["auth_time"])
    );
    assert!(after.get("nonce").is_none());
}

/// The embedded store's entries live exactly their TTL by its clock; a counter's window
/// restarts after it.
#[tokio::test]
async fn the_memory_store_expires_by_its_clock() {
    use crate::store::Store;
    let clock = Arc::new(ManualClock::new(START));
    let store = MemoryStore::with_clock("", Arc::clone(&clock) as _);
    let second = Duration::from_secs(1);
    store.put("k", b"v", second).await.expect("put");
    assert_eq!(store.incr("n", second).await.expect("incr"), 1);
    assert_eq!(store.incr("n", second).await.expect("incr"), 2);
    clock.advance_by(Duration::from_millis(999));
    assert!(store.get("k").await.expect("get").is_some());
    clock.advance_by(Duration::from_millis(1));
    assert_eq!(store.get("k").await.expect("get"), None);
    assert!(store.put_if_absent("k", b"w", second).await.expect("nx"));
    assert_eq!(
        store.incr("n", second).await.expect("incr"),
        1,
        "a new window"
    );
}
