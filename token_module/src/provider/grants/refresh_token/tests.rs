//! The rotation policy, table by table: the family as read, the token presented, the client
//! and the time in; the decision out. No store, no clock but a number.

use std::time::Duration;

use super::{decide, Decision, Presented};
use crate::config::Client;
use crate::crypto;
use crate::records::{IssuedTokens, RefreshFamily, RetryAnswer, RetryTokens};

const NOW: u64 = 1_000_000;

/// A family of `client` whose current token is returned with it; `retired` is the token
/// before it, rotated away at `NOW - 10` with the answer it got sealed for a retry.
struct Fixture {
    family: RefreshFamily,
    current: String,
    retired: String,
    /// A well-formed token of the family that it never handed out.
    guess: String,
}

fn fixture() -> Fixture {
    let id = crypto::family_id();
    let key = crypto::family_key();
    let retired = crypto::refresh_token(&id, &key);
    let current = crypto::refresh_token(&id, &key);
    let guess = crypto::refresh_token(&id, &crypto::family_key());
    let first = RetryTokens {
        access_token: "first-access".into(),
        refresh_token: current.clone(),
        scope: vec!["read".into()],
        resource: None,
    };
    let family = RefreshFamily {
        client_id: "app".into(),
        scope: vec!["read".into(), "write".into()],
        subject: None,
        auth_time: Some(NOW - 100),
        current: crypto::digest_hex(&current),
        expires_at: NOW + 3_600,
        latest: IssuedTokens {
            access_jti: "jti-1".into(),
            access_exp: NOW + 290,
            access_key: None,
            family_id: None,
        },
        earlier: vec![],
        revoked: false,
        retry: RetryAnswer::seal(&retired, NOW - 10, &first),
        key: Some(key),
    };
    Fixture {
        family,
        current,
        retired,
        guess,
    }
}

fn with_grace(seconds: u64) -> Client {
    Client {
        refresh_retry_grace: Duration::from_secs(seconds),
        ..Client::for_tests("app")
    }
}

/// The decision for `token` asking for `scope` and `resource`.
fn decision(
    family: Option<&RefreshFamily>,
    token: &str,
    scope: Option<&str>,
    resource: Option<&str>,
    client: &Client,
    now: u64,
) -> Decision {
    let digest = crypto::digest_hex(token);
    let presented = Presented {
        token,
        digest: &digest,
        scope,
        resource,
    };
    decide(family, &presented, client, now)
}

/// The decision's name and, for a refusal, its wire code.
fn summary(d: &Decision) -> String {
    match d {
        Decision::Rotate { scope, remaining } => {
            format!("rotate {} {}s", scope.join(" "), remaining.as_secs())
        }
        Decision::Replay(first) => format!("replay {}", first.access_token),
        Decision::RetryMismatch(e) => format!("mismatch {}", e.code()),
        Decision::Reuse => "reuse".into(),
        Decision::Refuse(e) => format!("refuse {}", e.code()),
    }
}

#[test]
fn the_current_token_rotates_within_the_family_life_and_scope() {
    let f = fixture();
    let c = Client::for_tests("app");
    let rows: [(Option<&str>, u64, &str); 7] = [
        (None, NOW, "rotate read write 3600s"),
        (Some("read"), NOW, "rotate read 3600s"),
        (Some("write read read"), NOW, "rotate write read 3600s"),
        (Some("admin"), NOW, "refuse invalid_scope"),
        (Some(" "), NOW, "refuse invalid_scope"),
        (None, NOW + 3_599, "rotate read write 1s"),
        (None, NOW + 3_600, "refuse invalid_grant"),
    ];
    for (scope, now, want) in rows {
        let got = summary(&decision(Some(&f.family), &f.current, scope, None, &c, now));
        assert_eq!(got, want, "scope {scope:?} at {now}");
    }
}

#[test]
fn a_family_that_cannot_be_used_refuses_without_revoking() {
    let f = fixture();
    let c = Client::for_tests("app");
    let revoked = RefreshFamily {
        revoked: true,
        ..f.family.clone()
    };
    let tombstone = RefreshFamily::tombstone(NOW + 10);
    let rows: [(Option<&RefreshFamily>, &str, &Client, &str); 5] = [
        (None, &f.current, &c, "refuse invalid_grant"),
        (Some(&revoked), &f.current, &c, "refuse invalid_grant"),
        (Some(&tombstone), &f.current, &c, "refuse invalid_grant"),
        (Some(&f.family), &f.guess, &c, "refuse invalid_grant"),
        (
            Some(&f.family),
            &f.current,
            &Client::for_tests("other"),
            "refuse invalid_grant",
        ),
    ];
    for (i, (family, token, client, want)) in rows.into_iter().enumerate() {
        let got = summary(&decision(family, token, None, None, client, NOW));
        assert_eq!(got, want, "row {i}");
    }
}

#[test]
fn a_retired_token_outside_its_grace_is_a_reuse() {
    let f = fixture();
    let rows: [(u64, u64, &str); 5] = [
        // (grace, now, decision)
        (0, NOW, "reuse"),
        (5, NOW, "reuse"),
        (10, NOW, "replay first-access"),
        (10, NOW + 1, "reuse"),
        (60, NOW + 50, "replay first-access"),
    ];
    for (grace, now, want) in rows {
        let got = summary(&decision(
            Some(&f.family),
            &f.retired,
            Some("read"),
            None,
            &with_grace(grace),
            now,
        ));
        assert_eq!(got, want, "grace {grace}s at {now}");
    }
}

#[test]
fn a_retry_must_ask_what_its_first_use_asked() {
    let f = fixture();
    let c = with_grace(60);
    let rows: [(Option<&str>, Option<&str>, &str); 5] = [
        (Some("read"), None, "replay first-access"),
        (None, None, "mismatch invalid_scope"),
        (Some("read write"), None, "mismatch invalid_scope"),
        (Some("admin"), None, "mismatch invalid_scope"),
        (
            Some("read"),
            Some("https://api.example"),
            "mismatch invalid_target",
        ),
    ];
    for (scope, resource, want) in rows {
        let got = summary(&decision(
            Some(&f.family),
            &f.retired,
            scope,
            resource,
            &c,
            NOW,
        ));
        assert_eq!(got, want, "scope {scope:?} resource {resource:?}");
    }
}

#[test]
fn a_replay_hands_back_the_first_answer_and_what_is_left_of_it() {
    let f = fixture();
    let Decision::Replay(first) = decision(
        Some(&f.family),
        &f.retired,
        Some("read"),
        None,
        &with_grace(60),
        NOW + 40,
    ) else {
        panic!("not a replay");
    };
    assert_eq!(first.refresh_token.as_deref(), Some(f.current.as_str()));
    assert_eq!(
        first.expires_in,
        Some(250),
        "the first token's remaining life"
    );
    assert_eq!(first.record.access_jti, "jti-1");
    assert_eq!(first.auth_time, Some(NOW - 100));
    assert_eq!(first.nonce, None, "never a nonce on refresh");
}

/// Only the retired token's holder can open its answer: a family whose sealed answer names
/// the retired digest but was sealed for another token is a reuse, not a replay.
#[test]
fn a_retry_answer_opens_only_for_its_own_token() {
    let mut f = fixture();
    let other = RetryTokens {
        access_token: "x".into(),
        refresh_token: "y".into(),
        scope: vec!["read".into()],
        resource: None,
    };
    let mut sealed = RetryAnswer::seal("another token", NOW - 10, &other).expect("seal");
    sealed.digest = crypto::digest_hex(&f.retired);
    f.family.retry = Some(sealed);
    let got = summary(&decision(
        Some(&f.family),
        &f.retired,
        Some("read"),
        None,
        &with_grace(60),
        NOW,
    ));
    assert_eq!(got, "reuse");
}

/// Whatever the token and the time, a token the family never handed out never revokes it,
/// and only the current token ever rotates.
#[test]
fn only_the_current_token_rotates_and_only_handed_out_tokens_revoke() {
    let f = fixture();
    let tokens = [&f.current, &f.retired, &f.guess];
    for grace in [0, 60] {
        for now in [NOW - 20, NOW, NOW + 100, NOW + 4_000] {
            for token in tokens {
                let d = decision(Some(&f.family), token, None, None, &with_grace(grace), now);
                match d {
                    Decision::Rotate { .. } => assert_eq!(token, &f.current),
                    Decision::Reuse => assert!(f.family.handed_out(token) && token != &f.current),
                    _ => {}
                }
            }
        }
    }
}
