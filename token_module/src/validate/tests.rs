use super::*;

fn verified(jti: &str, exp: u64) -> Arc<VerifiedToken> {
    Arc::new(VerifiedToken {
        jti: jti.into(),
        client_id: "c".into(),
        scope: vec![],
        subject: None,
        iat: 0,
        exp,
        nbf: None,
        iss: None,
        aud: None,
        format: TokenFormat::Jwt,
        resource: None,
    })
}

/// An entry answers for its own token only: a token one character off, or longer by one,
/// misses; removal and expiry end it; another cache (another process) keys it otherwise.
#[test]
fn the_token_cache_answers_for_the_same_token_only() {
    let clock = Arc::new(crate::clock::ManualClock::new(0));
    let cache = TokenCache::new(10, clock.clone());
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    let get = |token: &str, now| cache.get(cache.key(token), now);
    cache.insert(cache.key(token), verified("j1", 100), 100);
    assert_eq!(get(token, 10).map(|t| t.jti.clone()), Some("j1".into()));
    assert!(get(&token.replace("c2ln", "c2lm"), 10).is_none());
    assert!(get(&format!("{token}x"), 10).is_none());
    assert!(get(&token[..token.len() - 1], 10).is_none());
    assert!(get(token, 100).is_none(), "expired");
    assert_ne!(
        cache.key(token),
        TokenCache::new(10, clock.clone()).key(token)
    );
    assert_ne!(cache.key("ab"), cache.key("ba"));
    cache.remove(token);
    assert!(get(token, 10).is_none());
    cache.insert(cache.key(token), verified("j1", 100), 100);
    clock.advance(100);
    assert!(
        get(token, 10).is_none(),
        "gone when the clock passes its expiry"
    );
}
