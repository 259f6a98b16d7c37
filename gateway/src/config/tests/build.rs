//! `build`, on real files in a temporary directory: each row passes validation and is
//! refused by build, at the key named, as `tollgate --check` reports it.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;

/// A directory holding the files the base names: `key.pem` (an RS256 signing key), `ca.pem`
/// (a CA certificate), `cert.pem` and `tls-key.pem` (a server certificate and its key).
pub(super) struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
        for (from, to) in [
            ("keys/demo-rs256-100.pem", "key.pem"),
            ("demo-tls/ca.pem", "ca.pem"),
            ("demo-tls/cert.pem", "cert.pem"),
            ("demo-tls/key.pem", "tls-key.pem"),
        ] {
            std::fs::copy(conf.join(from), dir.path().join(to)).expect("copy a fixture file");
        }
        Self { dir }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The configuration file's path (never written: build reads what it names).
    pub(super) fn source(&self) -> PathBuf {
        self.path("gateway.yaml")
    }

    /// The base with `edits`, validated; its upgrade socket and pid file in this directory.
    pub(super) fn valid(&self, edits: Edits<'_>) -> ValidConfig {
        let own = |name: &str| json!(self.path(name).display().to_string());
        let mut all = vec![
            ("server.upgrade_sock", own("upgrade.sock")),
            ("server.pid_file", own("tollgate.pid")),
        ];
        all.extend(edits.iter().cloned());
        validated(&self.source(), &all).expect("valid")
    }

    pub(super) fn build(
        &self,
        edits: Edits<'_>,
        previous: Option<&GatewayConfig>,
    ) -> Result<GatewayConfig, ConfigError> {
        let previous = previous.map(|p| Previous {
            routes: &p.routes,
            oauth_rate_limit: p.oauth_rate_limit.as_ref(),
        });
        GatewayConfig::build(&self.valid(edits), previous)
    }
}

#[test]
fn the_base_builds() {
    let fixture = Fixture::new();
    let built = fixture.build(&[], None).expect("built");
    assert_eq!(built.routes.len(), 2);
    let oauth = built.oauth.expect("oauth");
    assert_eq!(oauth.issuer, "http://localhost:6882");
    assert_eq!(oauth.resources, ["https://pets.example"], "route audiences");
    assert_eq!(oauth.route_scopes, ["pets.r", "pets.w"], "route scopes");
    assert!(built.oauth_rate_limit.is_some());
    let tls = fixture.build(
        &[(
            "listeners[0].tls",
            json!({"cert": "cert.pem", "key": "tls-key.pem"}),
        )],
        None,
    );
    assert!(tls.is_ok(), "{tls:?}");
}

#[test]
fn the_admin_secret_is_read() {
    let fixture = Fixture::new();
    std::fs::write(fixture.path("admin.token"), "0123456789abcdef\n").expect("write");
    let built = fixture
        .build(&[("admin.token_file", json!("admin.token"))], None)
        .expect("built");
    assert_eq!(
        built.admin_token,
        Some(AdminToken("0123456789abcdef".into()))
    );
}

/// Every row passes validation and is refused by build.
fn check(fixture: &Fixture, rows: Vec<Refusal>) {
    for row in rows {
        let what = format!("{:?}", row.edits);
        assert!(
            validated(&fixture.source(), &row.edits).is_ok(),
            "{what}: validation passes"
        );
        let built = fixture.build(&row.edits, None);
        assert_refused(&what, built, &fixture.source(), row.key, row.fragment);
    }
}

#[test]
fn files_that_are_missing_or_wrong() {
    let fixture = Fixture::new();
    std::fs::write(fixture.path("short.token"), "0123456789\n").expect("write");
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    std::fs::write(fixture.path("garbage.pem"), garbage).expect("write");
    std::fs::create_dir(fixture.path("dir.pem")).expect("mkdir");
    check(
        &fixture,
        vec![
            under(
                "listeners[0].tls",
                json!({"cert": "nowhere.pem", "key": "tls-key.pem"}),
                "listeners[0].tls.cert",
                "not found",
            ),
            under(
                "listeners[0].tls",
                json!({"cert": "cert.pem", "key": "nowhere.key"}),
                "listeners[0].tls.key",
                "not found",
            ),
            under(
                "listeners[0].tls",
                json!({"cert": "dir.pem", "key": "tls-key.pem"}),
                "listeners[0].tls.cert",
                "not found",
            ),
            at("routes[1].tls.ca", json!("nowhere.pem"), "not found"),
            at("routes[1].tls.ca", json!("key.pem"), "holds no certificate"),
            at(
                "routes[1].tls.ca",
                json!("garbage.pem"),
                "malformed certificate",
            ),
            at("admin.token_file", json!("nowhere.token"), "not found"),
            at(
                "admin.token_file",
                json!("short.token"),
                "at least 16 characters",
            ),
            at(
                "server.access_log",
                json!("no/such/dir/access.log"),
                "does not exist",
            ),
        ],
    );
}

#[test]
fn names_that_do_not_resolve() {
    let fixture = Fixture::new();
    check(
        &fixture,
        vec![under(
            "routes[0].upstreams",
            json!(["127.0.0.1:1", "no-such-host.invalid:80"]),
            "routes[0].upstreams[1]",
            "`no-such-host.invalid:80` does not resolve",
        )],
    );
    // With a DNS server of its own a name is first asked when the gateway runs.
    let built = fixture.build(
        &[
            ("server.dns_resolver", json!("127.0.0.1:53")),
            ("routes[0].upstreams", json!(["no-such-host.invalid:80"])),
        ],
        None,
    );
    assert!(built.is_ok(), "{built:?}");
}

#[test]
fn private_files_in_world_writable_directories() {
    let fixture = Fixture::new();
    check(
        &fixture,
        vec![
            at(
                "server.upgrade_sock",
                json!("/tmp/tollgate_upgrade.sock"),
                "world-writable",
            ),
            at(
                "server.pid_file",
                json!("/tmp/tollgate.pid"),
                "world-writable",
            ),
        ],
    );
}

#[test]
fn the_oauth_section() {
    let fixture = Fixture::new();
    let key = |path: &str| json!([{"kid": "a", "private_key": path, "active": true}]);
    check(
        &fixture,
        vec![
            at(
                "oauth.keys",
                json!([]),
                "exactly one key must be `active: true`",
            ),
            under(
                "oauth.keys",
                key("missing.pem"),
                "oauth.keys[0].private_key",
                "missing.pem",
            ),
            under(
                "oauth.keys",
                key("ca.pem"),
                "oauth.keys[0].private_key",
                "ca.pem",
            ),
            all(
                vec![
                    ("oauth.clients[0].public", json!(false)),
                    ("oauth.clients[0].secret_hash", json!("hunter2")),
                ],
                "oauth.clients[0].secret_hash",
                "PHC",
            ),
            under(
                "oauth.clients[0].grants",
                json!(["implicit"]),
                "oauth.clients[0].grants[0]",
                "`implicit` is not a supported grant",
            ),
            under(
                "oauth.clients[0].grants",
                json!(["client_authenticated_user"]),
                "oauth.clients[0].grants[0]",
                "trusted",
            ),
            at(
                "oauth.clients[0].access_token_ttl_seconds",
                json!(MAX),
                "at most 604800",
            ),
            at(
                "oauth.clients[0].token_profile",
                json!("rfc7519"),
                "rfc7519",
            ),
            at("oauth.refresh_token_ttl_seconds", json!(MAX), "at most"),
            at("oauth.code_ttl_seconds", json!(86_400), "at most 3600"),
            at("oauth.leeway_seconds", json!(100_000), "at most 300"),
            under(
                "oauth.brute_force",
                json!({"max_failures": 10, "account_max_failures": 5}),
                "oauth.brute_force.account_max_failures",
                "at least brute_force.max_failures",
            ),
            at("oauth.issuer", json!("localhost"), "http(s) URL"),
            under(
                "oauth.clients[0].audience",
                json!("https://pets.example"),
                "routes[1].auth.audience",
                "is the audience of client `c`'s tokens",
            ),
        ],
    );
}

const MAX: u64 = u64::MAX;
