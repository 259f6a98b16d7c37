//! Code redemption and replay, table by table: the record as read and the request in, the
//! decision out.

use super::{check_redemption, decide_replay, Replay};
use crate::config::Client;
use crate::crypto;
use crate::records::{CodeRecord, IssuedTokens, RedeemedCode, Subject};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example/cb";

fn record(challenge: Option<(&str, &str)>, redirect_uri_given: bool) -> CodeRecord {
    CodeRecord {
        client_id: "app".into(),
        redirect_uri: REDIRECT.into(),
        redirect_uri_given,
        scope: vec!["read".into()],
        subject: Subject {
            user_id: "u1".into(),
            user_type: None,
            username: None,
        },
        nonce: None,
        code_challenge: challenge.map(|(c, _)| c.to_string()),
        code_challenge_method: challenge.map(|(_, m)| m.to_string()),
        auth_time: 0,
    }
}

/// The wire code of the check's answer, or `ok`.
fn check(
    record: &CodeRecord,
    client: &str,
    redirect: Option<&str>,
    verifier: Option<&str>,
) -> &'static str {
    match check_redemption(record, &Client::for_tests(client), redirect, verifier) {
        Ok(()) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn a_code_redeems_only_with_its_client_redirect_and_verifier() {
    let s256 = crypto::pkce_s256(VERIFIER);
    let with_pkce = record(Some((&s256, "S256")), true);
    let plain = record(Some((VERIFIER, "plain")), false);
    let bare = record(None, false);
    let other_verifier = "x".repeat(43);
    type Row<'a> = (
        &'a CodeRecord,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let rows: [Row; 14] = [
        (&with_pkce, "app", Some(REDIRECT), Some(VERIFIER), "ok"),
        (
            &with_pkce,
            "other",
            Some(REDIRECT),
            Some(VERIFIER),
            "invalid_grant",
        ),
        (&with_pkce, "app", None, Some(VERIFIER), "invalid_grant"),
        (
            &with_pkce,
            "app",
            Some("https://app.example/cb/"),
            Some(VERIFIER),
            "invalid_grant",
        ),
        (
            &with_pkce,
            "app",
            Some("https://APP.example/cb"),
            Some(VERIFIER),
            "invalid_grant",
        ),
        (&with_pkce, "app", Some(REDIRECT), None, "invalid_grant"),
        (
            &with_pkce,
            "app",
            Some(REDIRECT),
            Some(&other_verifier),
            "invalid_grant",
        ),
        (
            &with_pkce,
            "app",
            Some(REDIRECT),
            Some("short"),
            "invalid_request",
        ),
        (
            &with_pkce,
            "app",
            Some(REDIRECT),
            Some(&s256),
            "invalid_grant",
        ),
        (&plain, "app", None, Some(VERIFIER), "ok"),
        (
            &plain,
            "app",
            Some(REDIRECT),
            Some(&other_verifier),
            "invalid_grant",
        ),
        (&bare, "app", None, None, "ok"),
        (&bare, "app", Some(REDIRECT), None, "ok"),
        (&bare, "app", None, Some(VERIFIER), "invalid_grant"),
    ];
    for (i, (record, client, redirect, verifier, want)) in rows.into_iter().enumerate() {
        assert_eq!(check(record, client, redirect, verifier), want, "row {i}");
    }
}

fn redeemed(challenge: Option<&str>) -> RedeemedCode {
    RedeemedCode {
        client_id: "app".into(),
        issued: IssuedTokens::default(),
        code_challenge: challenge.map(str::to_string),
        code_challenge_method: challenge.map(|_| "S256".to_string()),
    }
}

#[test]
fn only_a_replay_proving_possession_revokes() {
    let s256 = crypto::pkce_s256(VERIFIER);
    let public = Client {
        public: true,
        ..Client::for_tests("app")
    };
    let confidential = Client::for_tests("app");
    let stranger = Client::for_tests("other");
    let rows: [(RedeemedCode, &Client, Option<&str>, Replay); 8] = [
        (
            redeemed(Some(&s256)),
            &public,
            Some(VERIFIER),
            Replay::Revoke,
        ),
        (redeemed(Some(&s256)), &public, None, Replay::Unproven),
        (
            redeemed(Some(&s256)),
            &public,
            Some(&s256),
            Replay::Unproven,
        ),
        (redeemed(Some(&s256)), &confidential, None, Replay::Unproven),
        (
            redeemed(Some(&s256)),
            &stranger,
            Some(VERIFIER),
            Replay::AnotherClient,
        ),
        (redeemed(None), &confidential, None, Replay::Revoke),
        (redeemed(None), &public, None, Replay::Unproven),
        (redeemed(None), &stranger, None, Replay::AnotherClient),
    ];
    for (i, (redeemed, client, verifier, want)) in rows.into_iter().enumerate() {
        assert_eq!(decide_replay(&redeemed, client, verifier), want, "row {i}");
    }
}
