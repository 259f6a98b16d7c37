//! The reload report's comparison: validated values, `PartialEq`, section by section.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::super::diff::Changes;
use super::*;

fn valid(edits: Edits<'_>) -> ValidConfig {
    validated(Path::new(NOWHERE), edits).expect("valid")
}

/// The report's lists for `edits` from the base: `section:kind` entries of named sections
/// (`routes:changed pets`), then the settings, then `upgrade:` the settings that need one.
fn report(edits: Edits<'_>) -> Vec<String> {
    let changes = diff(&valid(&[]), &valid(edits));
    let mut lines = Vec::new();
    for (section, c) in &changes.changed {
        for (kind, names) in [
            ("added", &c.added),
            ("removed", &c.removed),
            ("changed", &c.changed),
        ] {
            lines.extend(names.iter().map(|n| format!("{section}:{kind} {n}")));
        }
    }
    lines.extend(changes.settings.iter().map(|s| s.to_string()));
    lines.extend(
        changes
            .needs_upgrade
            .iter()
            .map(|s| format!("upgrade: {s}")),
    );
    lines
}

#[test]
fn the_same_file_changes_nothing() {
    assert_eq!(report(&[]), Vec::<String>::new());
    let nothing = diff(&valid(&[]), &valid(&[]));
    assert_eq!(nothing.changed, BTreeMap::<&str, Changes>::new());
}

#[test]
fn what_each_edit_reports() {
    let user = json!([{"username": "ann", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}]);
    let rows: Vec<(&str, Vec<Edit>, Vec<&str>)> = vec![
        (
            "a route's timeout",
            vec![("routes[1].read_timeout_ms", json!(5))],
            vec!["routes:changed pets"],
        ),
        (
            "a route's upstream",
            vec![("routes[0].upstreams", json!(["127.0.0.1:9"]))],
            vec!["routes:changed open"],
        ),
        (
            "a route's CA file",
            vec![("routes[1].tls.ca", json!("other-ca.pem"))],
            vec!["routes:changed pets"],
        ),
        (
            "a renamed route",
            vec![("routes[0].name", json!("shut"))],
            vec!["routes:added shut", "routes:removed open"],
        ),
        (
            "a new route",
            vec![(
                "routes[2]",
                json!({"name": "new", "path_prefix": "/new", "upstreams": ["127.0.0.1:3"]}),
            )],
            vec!["routes:added new"],
        ),
        (
            "a client's scopes",
            vec![("oauth.clients[0].scopes", json!(["pets.r", "pets.w"]))],
            vec!["clients:changed c"],
        ),
        (
            "a new user",
            vec![("oauth.users", user)],
            vec!["users:added ann"],
        ),
        (
            "a new key",
            vec![("oauth.keys[1]", json!({"kid": "b", "private_key": "b.pem"}))],
            vec!["keys:added b"],
        ),
        (
            "a key file",
            vec![("oauth.keys[0].private_key", json!("other.pem"))],
            vec!["keys:changed a"],
        ),
        (
            "an OAuth lifetime",
            vec![("oauth.code_ttl_seconds", json!(60))],
            vec!["oauth"],
        ),
        (
            "the issuer",
            vec![("oauth.issuer", json!("https://id.example"))],
            vec!["oauth"],
        ),
        // The default issuer follows the first listener: the OAuth settings change with it.
        (
            "a listener",
            vec![("listeners[0].address", json!("127.0.0.1:7000"))],
            vec!["oauth", "upgrade: listeners"],
        ),
        (
            "no oauth",
            vec![("oauth", Value::Null), ("routes[1].auth", Value::Null)],
            vec![
                "clients:removed c",
                "keys:removed a",
                "routes:changed pets",
                "oauth",
            ],
        ),
        (
            "the bearer settings",
            vec![("bearer.denylist_fail_open", json!(true))],
            vec!["bearer"],
        ),
        (
            "an identity header",
            vec![("bearer.identity_headers.scopes", json!("X-Granted"))],
            vec!["bearer"],
        ),
        (
            "the OAuth rate limit",
            vec![("oauth_rate_limit.requests", json!(5))],
            vec!["oauth_rate_limit"],
        ),
        (
            "the access log",
            vec![("server.access_log", json!("off"))],
            vec!["server.access_log"],
        ),
        (
            "a connection timeout",
            vec![("server.body_timeout_ms", json!(1000))],
            vec!["server.connection_timeouts"],
        ),
        (
            "the DNS server",
            vec![("server.dns_resolver", json!("127.0.0.1:53"))],
            vec!["server.dns_resolver"],
        ),
        (
            "the log level",
            vec![("server.log_level", json!("debug"))],
            vec!["server.log_level"],
        ),
        (
            "the path case",
            vec![("server.path_case", json!("sensitive"))],
            vec!["server.path_case"],
        ),
        (
            "the path rules",
            vec![("server.merge_slashes", json!(false))],
            vec!["server.path_rules"],
        ),
        (
            "a request limit",
            vec![("server.max_header_count", json!(50))],
            vec!["server.request_limits"],
        ),
        (
            "the trusted proxies",
            vec![("server.trusted_proxies", json!(["10.0.0.0/8"]))],
            vec!["server.trusted_proxies"],
        ),
        (
            "the upstream forwarding",
            vec![("server.upstream_forwarded_header", json!("none"))],
            vec!["server.upstream_forwarded_header"],
        ),
        (
            "the admin address",
            vec![("admin.address", json!("127.0.0.1:9091"))],
            vec!["upgrade: admin.address"],
        ),
        (
            "the admin secret's file",
            vec![("admin.token_file", json!("admin.token"))],
            vec!["upgrade: admin.token_file"],
        ),
        (
            "the error log",
            vec![("server.error_log", json!("/var/log/tollgate.log"))],
            vec!["upgrade: server.error_log"],
        ),
        (
            "the grace period",
            vec![("server.grace_period_seconds", json!(1))],
            vec!["upgrade: server.grace_period_seconds"],
        ),
        (
            "the shutdown timeout",
            vec![("server.graceful_shutdown_timeout_seconds", json!(1))],
            vec!["upgrade: server.graceful_shutdown_timeout_seconds"],
        ),
        (
            "the log format",
            vec![("server.log_format", json!("json"))],
            vec!["upgrade: server.log_format"],
        ),
        (
            "the pid file",
            vec![("server.pid_file", json!("/run/t/t.pid"))],
            vec!["upgrade: server.pid_file"],
        ),
        (
            "the upgrade socket",
            vec![("server.upgrade_sock", json!("/run/t/u.sock"))],
            vec!["upgrade: server.upgrade_sock"],
        ),
        (
            "threads and the store",
            vec![
                ("server.threads", json!(3)),
                ("store.timeout_ms", json!(700)),
            ],
            vec!["upgrade: server.threads", "upgrade: store"],
        ),
    ];
    for (what, edits, expected) in rows {
        assert_eq!(report(&edits), expected, "{what}");
    }
}
