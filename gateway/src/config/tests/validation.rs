//! `validate`, key by key: each row edits the valid base and names the key refused and words
//! of the message. No row needs a file: the base's own files do not exist.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

const MAX: u64 = u64::MAX;

fn check(rows: Vec<Refusal>) {
    let file = Path::new(NOWHERE);
    for row in rows {
        let what = format!("{:?}", row.edits);
        assert_refused(
            &what,
            validated(file, &row.edits),
            file,
            row.key,
            row.fragment,
        );
    }
}

#[test]
fn the_base_is_valid_without_any_of_its_files() {
    let valid = validated(Path::new(NOWHERE), &[]).expect("valid");
    let base = Path::new("/nonexistent/tollgate");
    let pets = &valid.routes[1];
    assert_eq!(
        pets.tls.as_ref().and_then(|t| t.ca.as_deref()),
        Some(base.join("ca.pem").as_path()),
        "a relative path is joined to the file's directory, not read"
    );
    assert_eq!(pets.host.as_deref(), Some("api.example.com"));
    assert_eq!(
        pets.upstreams,
        [UpstreamAddress {
            host: "127.0.0.1".into(),
            port: 2,
            weight: 2
        }]
    );
    let limit = pets.rate_limit.as_ref().expect("a limit");
    assert_eq!(
        (limit.policy.as_str(), limit.window),
        ("pets", Duration::from_secs(1))
    );
    let oauth = &valid.oauth.as_ref().expect("oauth").0;
    assert_eq!(
        oauth.issuer.as_deref(),
        Some("http://localhost:6882"),
        "the default issuer is settled from the listeners"
    );
    assert_eq!(
        valid.oauth_rate_limit.as_ref().map(|l| l.policy.as_str()),
        Some("oauth")
    );
}

/// Names are not resolved and files not looked at: what only build can find out passes.
#[test]
fn validation_leaves_names_and_files_alone() {
    let edits = [
        ("routes[0].upstreams", json!(["no-such-host.invalid:80"])),
        (
            "listeners[0].tls",
            json!({"cert": "nowhere.pem", "key": "nowhere.key"}),
        ),
        ("server.upgrade_sock", json!("/tmp/upgrade.sock")),
        ("server.pid_file", json!("/tmp/tollgate.pid")),
        ("server.access_log", json!("no/such/dir/access.log")),
        ("admin.token_file", json!("no-such-token")),
        ("oauth.keys", json!([])),
        ("oauth.clients[0].grants", json!(["implicit"])),
    ];
    let valid = validated(Path::new(NOWHERE), &edits).expect("valid");
    assert_eq!(
        valid.routes[0].upstreams[0].to_string(),
        "no-such-host.invalid:80"
    );
    assert_eq!(
        valid.server.access_log,
        Destination::File("/nonexistent/tollgate/no/such/dir/access.log".into())
    );
}

/// Secret and password hashes stay out of `Debug` (a validated configuration lives as long
/// as its snapshot).
#[test]
fn debug_output_leaves_out_hashes() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
    let edits = [
        ("oauth.clients[0].public", json!(false)),
        ("oauth.clients[0].secret_hash", json!(hash)),
        (
            "oauth.users",
            json!([{"username": "ann", "password_hash": hash}]),
        ),
    ];
    let shown = format!(
        "{:?}",
        validated(Path::new(NOWHERE), &edits).expect("valid")
    );
    assert!(!shown.contains("argon2id"), "{shown}");
    assert!(
        shown.contains("clients: [\"c\"]") && shown.contains("users: [\"ann\"]"),
        "{shown}"
    );
}

#[test]
fn the_store_url_override_is_validated_and_named() {
    let text = text(&[]);
    let file = parse::parse_file(&text, Path::new(NOWHERE)).expect("parsed");
    let refused = validate(file, Path::new(NOWHERE), Some("mysql://db"));
    let key = format!("store.url (from {STORE_URL_ENV})");
    assert_refused(
        "override",
        refused,
        Path::new(NOWHERE),
        &key,
        "unsupported scheme",
    );
    let file = parse::parse_file(&text, Path::new(NOWHERE)).expect("parsed");
    let valid = validate(file, Path::new(NOWHERE), Some("redis://127.0.0.1:6379/0"));
    assert_eq!(
        valid.expect("valid").store.url,
        token_module::StoreUrl::Redis("redis://127.0.0.1:6379/0".into())
    );
}

#[test]
fn broken_yaml_names_the_line() {
    let refused = parse::parse_file("routes: [\n", Path::new(NOWHERE));
    let e = refused.expect_err("refused");
    assert_eq!(
        (e.file.as_path(), e.key.as_str()),
        (Path::new(NOWHERE), "routes")
    );
    assert!(e.message.contains("at line 1, column 9"), "{e}");
}

#[test]
fn the_file_format_refuses_unknown_keys_and_wrong_types() {
    check(vec![
        at("listners", json!([]), "unknown field `listners`"),
        at("routes[0].timeout", json!(3), "unknown field `timeout`"),
        at("oauth.sessions", json!(3), "unknown field `sessions`"),
        at("server.workers", json!(3), "unknown field `workers`"),
        under(
            "listeners[0].tls",
            json!({"cert": "c", "key": "k", "alpn": true}),
            "listeners[0].tls.alpn",
            "unknown field `alpn`",
        ),
        at(
            "listeners[0].tls",
            json!({"cert": "c"}),
            "missing field `key`",
        ),
        at("bearer.fail_open", json!(true), "unknown field `fail_open`"),
        at("server.threads", json!("many"), "invalid type"),
        at(
            "server.escaped_slashes",
            json!("decode"),
            "unknown variant `decode`",
        ),
        at(
            "server.path_parameters",
            json!("strip"),
            "unknown variant `strip`",
        ),
        at(
            "server.path_case",
            json!("loose"),
            "unknown variant `loose`",
        ),
        at(
            "server.forwarded_header",
            json!("x-real-ip"),
            "unknown variant `x-real-ip`",
        ),
        at(
            "server.upstream_forwarded_header",
            json!("via"),
            "unknown variant `via`",
        ),
        at(
            "routes[1].rate_limit.key",
            json!("ip"),
            "unknown variant `ip`",
        ),
        at(
            "routes[0]",
            json!({"upstreams": ["127.0.0.1:1"]}),
            "missing field `path_prefix`",
        ),
    ]);
}

#[test]
fn server_settings() {
    check(vec![
        at("server.threads", json!(0), "between 1 and 1024"),
        at("server.threads", json!(1025), "between 1 and 1024"),
        at(
            "server.grace_period_seconds",
            json!(99_999_999),
            "at most 3600",
        ),
        at(
            "server.graceful_shutdown_timeout_seconds",
            json!(3601),
            "at most 3600",
        ),
        at(
            "server.log_format",
            json!("xml"),
            "`xml` is not `text` or `json`",
        ),
        at("server.log_level", json!("info,[["), "is not a log filter"),
        at("server.max_uri_bytes", json!(255), "at least 256"),
        at("server.max_uri_bytes", json!(MAX), "at most 1048576"),
        at("server.max_header_count", json!(7), "at least 8"),
        at("server.max_header_count", json!(1001), "at most 1000"),
        at("server.max_header_bytes", json!(1023), "at least 1024"),
        at(
            "server.max_header_bytes",
            json!(2_000_000),
            "at most 1048576",
        ),
        at("server.header_timeout_ms", json!(99), "at least 100"),
        at("server.header_timeout_ms", json!(600_001), "at most 600000"),
        at(
            "server.keepalive_timeout_ms",
            json!(3_600_001),
            "at most 3600000",
        ),
        at("server.body_timeout_ms", json!(0), "at least 100"),
        at(
            "server.trusted_proxies",
            json!(["10.0.0.0/8", "10.0.0.0/33"]),
            "`10.0.0.0/33` is not an address or CIDR block",
        ),
        at(
            "server.dns_resolver",
            json!("localhost"),
            "not an ip:port address",
        ),
    ]);
}

#[test]
fn listeners_admin_store_bearer() {
    check(vec![
        at("listeners", json!([]), "at least one listener is required"),
        at("listeners[0].address", json!("localhost"), "ip:port"),
        at("listeners[0].max_connections", json!(0), "at least 1"),
        at(
            "listeners[0].max_connections",
            json!(1_000_001),
            "at most 1000000",
        ),
        at(
            "admin.address",
            json!("nonsense"),
            "`nonsense` is not an ip:port address",
        ),
        under(
            "admin.address",
            json!("0.0.0.0:9090"),
            "admin.token_file",
            "loopback",
        ),
        at("store.url", json!("mysql://db"), "unsupported scheme"),
        at("store.url", json!("redis://"), "names no host"),
        at("store.timeout_ms", json!(0), "at least 1"),
        at("store.timeout_ms", json!(100_000_000), "at most 60000"),
        at(
            "bearer.identity_headers.user_id",
            json!("X User"),
            "`X User` is not a header name",
        ),
        at(
            "bearer.identity_headers.user_type",
            json!(""),
            "is not a header name",
        ),
        at(
            "bearer.identity_headers.client_id",
            json!("a:b"),
            "is not a header name",
        ),
        at(
            "bearer.identity_headers.scopes",
            json!("a b"),
            "is not a header name",
        ),
        at("oauth_rate_limit.requests", json!(0), "at least 1"),
        at(
            "oauth_rate_limit.window_seconds",
            json!(86_401),
            "at most 86400",
        ),
    ]);
}

#[test]
fn route_prefixes_and_methods() {
    check(vec![
        at("routes[0].path_prefix", json!("api"), "must start with `/`"),
        at(
            "routes[1].path_prefix",
            json!("/v1/%70ets"),
            "not in normal form; write `/v1/pets`",
        ),
        at(
            "routes[0].path_prefix",
            json!("/v1//pets"),
            "write `/v1/pets`",
        ),
        at(
            "routes[0].path_prefix",
            json!("/v1/../admin"),
            "`.` or `..` segment",
        ),
        at(
            "routes[0].path_prefix",
            json!("/v1/pets;x"),
            "`;` parameter",
        ),
        all(
            vec![
                ("server.escaped_slashes", json!("keep")),
                ("routes[0].path_prefix", json!("/a%2fb")),
            ],
            "routes[0].path_prefix",
            "write `/a%2Fb`",
        ),
        under(
            "routes[0].methods",
            json!(["GET", "GE T"]),
            "routes[0].methods[1]",
            "`GE T` is not an HTTP method",
        ),
        under(
            "routes[0].keep_headers",
            json!(["x-custom"]),
            "routes[0].keep_headers[0]",
            "`x-custom` is not a header Tollgate removes",
        ),
    ]);
}

#[test]
fn route_upstreams_and_timeouts() {
    check(vec![
        at("routes[0].upstreams", json!([]), "at least one upstream"),
        under(
            "routes[1].upstreams",
            json!(["nonsense"]),
            "routes[1].upstreams[0]",
            "`nonsense` is not host:port",
        ),
        under(
            "routes[0].upstreams",
            json!(["127.0.0.1:1", "host:http"]),
            "routes[0].upstreams[1]",
            "`host:http` is not host:port",
        ),
        under(
            "routes[0].upstreams",
            json!([":80"]),
            "routes[0].upstreams[0]",
            "`:80` is not host:port",
        ),
        at("routes[1].upstreams[0].weight", json!(0), "at least 1"),
        at("routes[1].upstreams[0].weight", json!(1001), "at most 1000"),
        at(
            "routes[0].eject_after_failures",
            json!(1001),
            "at most 1000",
        ),
        at("routes[0].ejection_ms", json!(0), "at least 1"),
        at("routes[0].dns_refresh_ms", json!(99), "at least 100"),
        at(
            "routes[1].health_check.interval_ms",
            json!(99),
            "at least 100",
        ),
        at("routes[1].health_check.timeout_ms", json!(9), "at least 10"),
        at(
            "routes[1].health_check.healthy_after",
            json!(0),
            "at least 1",
        ),
        at(
            "routes[1].health_check.unhealthy_after",
            json!(101),
            "at most 100",
        ),
        at(
            "routes[1].health_check.http_path",
            json!("healthz"),
            "`healthz` is not an absolute path",
        ),
        at("routes[0].connect_timeout_ms", json!(0), "at least 1"),
        at("routes[0].read_timeout_ms", json!(MAX), "at most 3600000"),
        at(
            "routes[0].write_timeout_ms",
            json!(3_600_001),
            "at most 3600000",
        ),
    ]);
}

#[test]
fn route_auth_limits_and_cors() {
    check(vec![
        under(
            "oauth",
            Value::Null,
            "routes[1].auth",
            "bearer tokens need the `oauth` section",
        ),
        under(
            "routes[1].auth.method_scopes",
            json!({"GE T": ["x"]}),
            "routes[1].auth.method_scopes.GE T",
            "is not an HTTP method",
        ),
        under(
            "routes[1].auth.method_scopes",
            json!({"GET": ["a"], "get": ["b"]}),
            "routes[1].auth.method_scopes.get",
            "`GET` is listed twice",
        ),
        at(
            "routes[1].auth.audience",
            json!(""),
            "non-empty string without spaces",
        ),
        at(
            "routes[1].auth.audience",
            json!("a b"),
            "non-empty string without spaces",
        ),
        all(
            vec![
                ("routes[1].auth.audience", Value::Null),
                ("routes[1].auth.upstream_token", json!("jwt")),
            ],
            "routes[1].auth.upstream_token",
            "`jwt` needs the route's `audience`",
        ),
        at(
            "routes[1].auth.upstream_token",
            json!("phantom"),
            "`phantom` is not `forward` or `jwt`",
        ),
        all(
            vec![
                ("routes[1].auth.upstream_token", json!("jwt")),
                ("routes[1].auth.upstream_token_ttl_seconds", json!(0)),
            ],
            "routes[1].auth.upstream_token_ttl_seconds",
            "at least 1",
        ),
        at("routes[1].rate_limit.requests", json!(0), "at least 1"),
        at(
            "routes[1].rate_limit.requests",
            json!(MAX),
            "at most 1000000000",
        ),
        at(
            "routes[1].rate_limit.window_seconds",
            json!(0),
            "at least 1",
        ),
        at(
            "routes[1].cors.allowed_origins",
            json!([]),
            "at least one origin",
        ),
        under(
            "routes[1].cors.allowed_origins",
            json!(["https://a.example", "*"]),
            "routes[1].cors.allowed_origins[1]",
            "*",
        ),
        under(
            "routes[1].cors.allowed_methods",
            json!(["GE T"]),
            "routes[1].cors.allowed_methods[0]",
            "is not an HTTP method",
        ),
        under(
            "routes[1].cors.allowed_headers",
            json!(["a b"]),
            "routes[1].cors.allowed_headers[0]",
            "`a b` is not a header name",
        ),
        under(
            "routes[1].cors.expose_headers",
            json!(["a:b"]),
            "routes[1].cors.expose_headers[0]",
            "`a:b` is not a header name",
        ),
        at(
            "routes[1].cors.max_age_seconds",
            json!(86_401),
            "at most 86400",
        ),
    ]);
}
