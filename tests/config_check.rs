//! `tollgate --check`: every shipped config validates, and each kind of mistake is reported
//! with the file and the key at fault and exit code 1.

mod common;

use common::{check_config, repo_root};

#[test]
fn every_shipped_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("conf")).expect("conf/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let (code, out) = check_config(&path);
            assert_eq!(code, 0, "{}: {out}", path.display());
            assert!(out.contains("is valid"), "{out}");
            checked += 1;
        }
    }
    assert!(checked >= 1, "conf/ holds at least the demo config");
}

/// Writes `yaml` to a temp file and checks it; returns the output and the file's path.
fn check_yaml(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = repo_root().join("conf/keys/demo-rs256-100.pem");
    let yaml = yaml.replace("KEY", &key.display().to_string());
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, &yaml).expect("write");
    let (code, out) = check_config(&path);
    (code, out, path.display().to_string())
}

#[test]
fn mistakes_name_the_file_and_the_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown top-level key", "listners: []\n", &["unknown field `listners`"]),
        (
            "unknown key in a route",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n    timeout: 3\n",
            &["routes[0]", "unknown field `timeout`"],
        ),
        (
            "route without upstreams",
            "routes:\n  - path_prefix: /a\n    upstreams: []\n",
            &["routes[0].upstreams", "at least one upstream"],
        ),
        (
            "unresolvable upstream",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n  - path_prefix: /b\n    upstreams: [nonsense]\n",
            &["routes[1].upstreams[0]", "nonsense"],
        ),
        (
            "prefix without slash",
            "routes:\n  - path_prefix: api\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].path_prefix", "must start with `/`"],
        ),
        (
            "bad method",
            "routes:\n  - path_prefix: /a\n    methods: [\"GE T\"]\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].methods[0]"],
        ),
        ("bad listener address", "listeners:\n  - address: localhost\n", &["listeners[0].address", "ip:port"]),
        (
            "missing certificate",
            "listeners:\n  - address: 127.0.0.1:1\n    tls: {cert: nowhere.pem, key: nowhere.key}\n",
            &["listeners[0].tls.cert", "not found"],
        ),
        ("bad store url", "store:\n  url: mysql://db\n", &["store.url", "unsupported scheme"]),
        ("zero store timeout", "store:\n  timeout_ms: 0\n", &["store.timeout_ms"]),
        ("bad log format", "server:\n  log_format: xml\n", &["server.log_format"]),
        ("wrong type", "server:\n  threads: many\n", &["server.threads", "invalid type"]),
        ("not YAML", "routes: [\n", &["broken.yaml"]),
        (
            "prefix not in normal form",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n  - name: pets\n    path_prefix: /v1/%70ets\n    upstreams: [127.0.0.1:1]\n",
            &["routes[1].path_prefix", "not in normal form", "/v1/pets"],
        ),
        (
            "prefix with repeated slashes",
            "routes:\n  - path_prefix: /v1//pets\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].path_prefix", "write `/v1/pets`"],
        ),
        (
            "prefix with a dot segment",
            "routes:\n  - path_prefix: /v1/../admin\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].path_prefix", "`.` or `..` segment"],
        ),
        (
            "prefix with a parameter",
            "routes:\n  - path_prefix: /v1/pets;x\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].path_prefix", "`;` parameter"],
        ),
        (
            "prefix with lower-case hex",
            "server:\n  escaped_slashes: keep\nroutes:\n  - path_prefix: /a%2fb\n    upstreams: [127.0.0.1:1]\n",
            &["routes[0].path_prefix", "write `/a%2Fb`"],
        ),
        (
            "absurd route timeout",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n    read_timeout_ms: 18446744073709551615\n",
            &["routes[0].read_timeout_ms", "at most 3600000"],
        ),
        ("absurd store timeout", "store:\n  timeout_ms: 100000000\n", &["store.timeout_ms", "at most 60000"]),
        ("absurd grace period", "server:\n  grace_period_seconds: 99999999\n", &["server.grace_period_seconds", "at most"]),
        ("bad escaped_slashes", "server:\n  escaped_slashes: decode\n", &["server.escaped_slashes", "unknown variant `decode`"]),
        ("bad path_parameters", "server:\n  path_parameters: strip\n", &["server.path_parameters", "unknown variant `strip`"]),
        (
            "a protected route without the oauth section",
            "routes:\n  - path_prefix: /a\n    upstreams: [127.0.0.1:1]\n    auth: {scopes: [x]}\n",
            &["routes[0].auth", "oauth"],
        ),
        (
            "a bad identity header name",
            "bearer:\n  identity_headers: {user_id: \"X User\"}\n",
            &["bearer.identity_headers.user_id"],
        ),
        (
            "oauth without keys",
            "oauth:\n  keys: []\n  clients: []\n",
            &["oauth.keys", "active"],
        ),
        (
            "oauth key file missing",
            "oauth:\n  keys: [{kid: a, private_key: missing.pem, active: true}]\n  clients: []\n",
            &["oauth.keys[0].private_key", "missing.pem"],
        ),
        (
            "plaintext secret",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients:\n    - {client_id: c, secret_hash: hunter2, grants: [client_credentials], scopes: [a]}\n",
            &["oauth.clients[0].secret_hash", "PHC"],
        ),
        (
            "unknown grant",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients:\n    - {client_id: c, public: true, grants: [implicit], scopes: [a]}\n",
            &["oauth.clients[0].grants[0]", "implicit"],
        ),
        (
            "custom grant for an untrusted client",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients:\n    - {client_id: c, public: true, grants: [client_authenticated_user], scopes: [a]}\n",
            &["oauth.clients[0].grants[0]", "trusted"],
        ),
        (
            "absurd access-token lifetime",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients:\n    - {client_id: c, public: true, grants: [authorization_code], redirect_uris: [\"https://c/cb\"], scopes: [a], access_token_ttl_seconds: 18446744073709551615}\n",
            &["oauth.clients[0].access_token_ttl_seconds", "at most 604800"],
        ),
        (
            "absurd refresh-token lifetime",
            "oauth:\n  refresh_token_ttl_seconds: 18446744073709551615\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients: []\n",
            &["oauth.refresh_token_ttl_seconds", "at most"],
        ),
        (
            "absurd code lifetime",
            "oauth:\n  code_ttl_seconds: 86400\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients: []\n",
            &["oauth.code_ttl_seconds", "at most 3600"],
        ),
        (
            "absurd leeway",
            "oauth:\n  leeway_seconds: 100000\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients: []\n",
            &["oauth.leeway_seconds", "at most 300"],
        ),
        (
            "unknown token profile",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients:\n    - {client_id: c, public: true, grants: [authorization_code], redirect_uris: [\"https://c/cb\"], scopes: [a], token_profile: rfc7519}\n",
            &["oauth.clients[0].token_profile", "rfc7519"],
        ),
        (
            "account threshold under the address threshold",
            "oauth:\n  brute_force: {max_failures: 10, account_max_failures: 5}\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients: []\n",
            &["oauth.brute_force.account_max_failures"],
        ),
        (
            "upgrade socket in a world-writable directory",
            "server:\n  upgrade_sock: /tmp/tollgate_upgrade.sock\n",
            &["server.upgrade_sock", "world-writable"],
        ),
        (
            "pid file in a world-writable directory",
            "server:\n  pid_file: /tmp/tollgate.pid\n",
            &["server.pid_file", "world-writable"],
        ),
        (
            "a kept header that is not removed anyway",
            "routes:\n  - {path_prefix: /a, upstreams: [\"127.0.0.1:1\"], keep_headers: [x-custom]}\n",
            &["routes[0].keep_headers[0]", "x-custom"],
        ),
        (
            "admin listener on all interfaces without a reload secret",
            "admin:\n  address: 0.0.0.0:9090\n",
            &["admin.token_file", "loopback"],
        ),
        (
            "unknown oauth key",
            "oauth:\n  keys: [{kid: a, private_key: KEY, active: true}]\n  clients: []\n  sessions: 3\n",
            &["oauth", "unknown field `sessions`"],
        ),
    ];
    for (what, yaml, expected) in cases {
        let (code, out, path) = check_yaml(yaml);
        assert_eq!(code, 1, "{what}: exit code; output: {out}");
        assert!(out.contains(&path), "{what}: names the file: {out}");
        for needle in *expected {
            assert!(
                out.contains(needle),
                "{what}: expected `{needle}` in: {out}"
            );
        }
    }
}

#[test]
fn a_missing_file_is_reported() {
    let (code, out) = check_config(std::path::Path::new("/nonexistent/tollgate.yaml"));
    assert_eq!(code, 1);
    assert!(
        out.contains("/nonexistent/tollgate.yaml") && out.contains("cannot read"),
        "{out}"
    );
}
