//! Live reconfiguration through the real binary: the file is edited, `POST /reload` (or
//! SIGHUP, or `tollgate reload`) applies it without a restart, a broken file changes nothing,
//! and settings only a new process can take are reported.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::oauth::*;
use common::{client, metric_value, start_upstream, Gateway, GatewayOptions};
use serde_json::Value;

const LIGHT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$sNOgHGTaxNm565IDw3NiBA$bWoE1f/c2ihIgFpIsjhZ3fo83BEtRoCL4tM9QdtPJwQ";

/// The options of these tests: a protected route to `up`, `routes` more, the demo OAuth
/// section with `replacements`, and `server` keys.
fn options(
    up: SocketAddr,
    routes: &str,
    replacements: &[(&str, &str)],
    server: &str,
) -> GatewayOptions {
    GatewayOptions {
        routes: format!(
            "  - {{name: pets, path_prefix: /v1/pets, upstreams: [\"{up}\"], auth: {{scopes: [petstore.r]}}}}\n{routes}"
        ),
        extra_yaml: demo_oauth_yaml(replacements),
        server_yaml: server.to_string(),
        ..Default::default()
    }
}

fn env_from(gw: Gateway) -> OAuthEnv {
    OAuthEnv { gw, redis: None }
}

async fn get(gw: &Gateway, path: &str, token: Option<&str>) -> u16 {
    let mut req = client().get(gw.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request").status().as_u16()
}

async fn generation(gw: &Gateway) -> Option<f64> {
    metric_value(&gw.metrics().await, "tollgate_config_generation")
}

fn names(report: &Value, section: &str, kind: &str) -> Vec<String> {
    report["changed"][section][kind]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `tollgate hash-secret` of `secret`.
fn hash(secret: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-secret");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("hash-secret output");
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

/// (a) A route and a client added by a reload are in use at once; the report says what changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_adds_a_route_and_a_client() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    assert_eq!(get(&env.gw, "/v2/new", None).await, 404);
    assert_eq!(generation(&env.gw).await, Some(1.0));
    let new_client = format!(
        "  clients:\n    - {{client_id: reloaded, secret_hash: \"{LIGHT_HASH}\", grants: [client_credentials], scopes: [petstore.r]}}\n"
    );
    env.gw.rewrite_config(&options(
        up,
        &format!("  - {{name: new, path_prefix: /v2/new, upstreams: [\"{up}\"]}}\n"),
        &[("  clients:\n", new_client.as_str())],
        "",
    ));
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["generation"], 2);
    assert_eq!(names(&report, "routes", "added"), ["new"]);
    assert_eq!(names(&report, "clients", "added"), ["reloaded"]);
    assert!(
        report["needs_upgrade"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "{report}"
    );
    assert_eq!(get(&env.gw, "/v2/new", None).await, 200);
    let basic = format!("Basic reloaded:{LIGHT_SECRET}");
    let reply = token(&env, Some(&basic), &[("grant_type", "client_credentials")]).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(
        get(&env.gw, "/v1/pets", Some(reply.str("access_token"))).await,
        200
    );
    assert_eq!(generation(&env.gw).await, Some(2.0));
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "tollgate_config_reloads_total{result=\"applied\"}"
        ),
        Some(1.0)
    );
    assert!(
        metric_value(&metrics, "tollgate_config_last_reload_timestamp_seconds")
            .is_some_and(|t| t > 1.0e9)
    );
}

/// (b) A rotated secret: the old one is refused at once (even though it was verified and
/// remembered a moment ago), the new one works, with no restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_rotates_a_client_secret() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    let cc = [("grant_type", "client_credentials")];
    assert_eq!(token(&env, Some(&light_basic()), &cc).await.status, 200);
    let new_secret = "rotated-secret-4711";
    let new_hash = hash(new_secret);
    env.gw
        .rewrite_config(&options(up, "", &[(LIGHT_HASH, new_hash.as_str())], ""));
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(names(&report, "clients", "changed"), [LIGHT_ID]);
    assert_eq!(
        token(&env, Some(&light_basic()), &cc).await.status,
        401,
        "the old secret"
    );
    let reply = token(&env, Some(&format!("Basic {LIGHT_ID}:{new_secret}")), &cc).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
}

async fn jwks_kids(gw: &Gateway) -> Vec<String> {
    let jwks: Value = client()
        .get(gw.url("/oauth2/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("JSON");
    jwks["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// (c) Key rotation by reload: a verify-only key appears in the JWKS, then signs, then the old
/// key is removed and its tokens stop validating at once.
#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_by_reload() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    let old = light_client_credentials(&env, None)
        .await
        .str("access_token")
        .to_string();
    assert_eq!(jwks_kids(&env.gw).await, ["100"]);

    let step = |keys: &[(&str, &str, bool)]| GatewayOptions {
        extra_yaml: with_keys(keys),
        ..options(up, "", &[], "")
    };
    env.gw.rewrite_config(&step(&[
        ("100", "demo-rs256-100.pem", true),
        ("101", "demo-rs256-101.pem", false),
    ]));
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(names(&report, "keys", "added"), ["101"]);
    assert_eq!(jwks_kids(&env.gw).await, ["100", "101"]);
    let header = |t: &str| jsonwebtoken::decode_header(t).expect("header").kid;
    let still_100 = light_client_credentials(&env, None)
        .await
        .str("access_token")
        .to_string();
    assert_eq!(header(&still_100).as_deref(), Some("100"));

    env.gw.rewrite_config(&step(&[
        ("100", "demo-rs256-100.pem", false),
        ("101", "demo-rs256-101.pem", true),
    ]));
    assert_eq!(env.gw.reload().await.0, 200);
    let new = light_client_credentials(&env, None)
        .await
        .str("access_token")
        .to_string();
    assert_eq!(header(&new).as_deref(), Some("101"));
    assert_eq!(
        get(&env.gw, "/v1/pets", Some(&old)).await,
        200,
        "the demoted key still verifies"
    );

    env.gw
        .rewrite_config(&step(&[("101", "demo-rs256-101.pem", true)]));
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(names(&report, "keys", "removed"), ["100"]);
    assert_eq!(jwks_kids(&env.gw).await, ["101"]);
    assert_eq!(
        get(&env.gw, "/v1/pets", Some(&old)).await,
        401,
        "a removed key's token, cached before"
    );
    assert_eq!(get(&env.gw, "/v1/pets", Some(&new)).await, 200);
}

/// (d) A broken file is refused whole, naming the file and the key; the running configuration
/// keeps serving and stays ready.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_changes_nothing() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    let cc = light_client_credentials(&env, None).await;
    let path = env.gw.config_path();
    let good = std::fs::read_to_string(&path).expect("config");
    for (what, broken, key) in [
        ("bad YAML", good.replacen("routes:\n", "routes: [\n", 1), ""),
        (
            "unknown key",
            good.replacen("routes:\n", "rootes: 1\nroutes:\n", 1),
            "rootes",
        ),
        (
            "a route without upstreams",
            good.replacen(&format!("upstreams: [\"{up}\"]"), "upstreams: []", 1),
            "routes[0].upstreams",
        ),
        (
            "a protected route without oauth",
            good[..good.find("\noauth:").expect("oauth")].to_string(),
            "routes[0].auth",
        ),
    ] {
        std::fs::write(&path, &broken).expect("write");
        let (status, answer) = env.gw.reload().await;
        assert_eq!(status, 400, "{what}: {answer}");
        let errors = answer["errors"].to_string();
        assert!(
            errors.contains(&path.display().to_string()),
            "{what}: names the file: {errors}"
        );
        assert!(errors.contains(key), "{what}: names `{key}`: {errors}");
        assert_eq!(
            get(&env.gw, "/v1/pets", Some(cc.str("access_token"))).await,
            200,
            "{what}"
        );
        assert_eq!(env.gw.readyz().await, 200, "{what}");
    }
    assert_eq!(generation(&env.gw).await, Some(1.0));
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "tollgate_config_reloads_total{result=\"rejected\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        env.gw.log().matches("configuration reload refused").count(),
        4,
        "logged once each"
    );
    std::fs::write(&path, &good).expect("write");
    assert_eq!(env.gw.reload().await.0, 200, "a good file applies again");
}

/// (e) A setting only a new process can take is reported, and the rest is applied.
#[tokio::test(flavor = "multi_thread")]
async fn settings_that_need_an_upgrade_are_reported() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    env.gw.rewrite_config(&GatewayOptions {
        store_timeout_ms: 700,
        ..options(
            up,
            &format!("  - {{name: new, path_prefix: /v2/new, upstreams: [\"{up}\"]}}\n"),
            &[],
            "",
        )
    });
    let config = std::fs::read_to_string(env.gw.config_path()).expect("config");
    let config = config
        .replacen("  threads: 2\n", "  threads: 3\n", 1)
        .replacen("  log_level: info\n", "  log_level: debug\n", 1);
    std::fs::write(env.gw.config_path(), config).expect("write");
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    let needs: Vec<&str> = report["needs_upgrade"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(needs, ["server.threads", "store"], "{report}");
    assert!(
        report["settings"].to_string().contains("server.log_level"),
        "{report}"
    );
    assert_eq!(
        get(&env.gw, "/v2/new", None).await,
        200,
        "the rest is applied"
    );
    assert!(env.gw.log().contains("take effect only in a new process"));
}

/// SIGHUP and `tollgate reload` reload too.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_the_reload_command() {
    let up = start_upstream("svc").await;
    let env = env_from(Gateway::start(options(up, "", &[], "")));
    env.gw.rewrite_config(&options(
        up,
        &format!("  - {{name: new, path_prefix: /v2/new, upstreams: [\"{up}\"]}}\n"),
        &[],
        "",
    ));
    let status = Command::new("kill")
        .args(["-HUP", &env.gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    common::wait_until(
        "the SIGHUP reload",
        std::time::Duration::from_secs(20),
        || {
            std::fs::read_to_string(env.gw.dir.path().join("gateway.log"))
                .is_ok_and(|log| log.contains("configuration reloaded"))
        },
    );
    assert_eq!(generation(&env.gw).await, Some(2.0));
    assert_eq!(get(&env.gw, "/v2/new", None).await, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--config")
        .arg(env.gw.config_path())
        .arg("reload")
        .output()
        .expect("tollgate reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["generation"], 3);
    assert_eq!(generation(&env.gw).await, Some(3.0));
}

/// The admin listener is not an open door: a request whose `Host` is a name (what a page
/// using DNS rebinding sends) is refused, and with `admin.token_file` a reload needs its
/// secret.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_checks_host_and_reload_secret() {
    let dir = tempfile::tempdir().expect("dir");
    let secret = "s3cret-for-reloads-0123456789";
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{secret}\n")).expect("write");
    let gw = Gateway::start(GatewayOptions {
        admin_yaml: format!("  token_file: \"{}\"\n", token_file.display()),
        ..Default::default()
    });
    let http = common::client();
    let rebinding = http
        .get(gw.admin_url("/metrics"))
        .header("host", format!("attacker.example:{}", gw.admin.port()))
        .send()
        .await
        .expect("request");
    assert_eq!(rebinding.status(), 403);
    let by_name = http
        .get(gw.admin_url("/healthz"))
        .header("host", format!("localhost:{}", gw.admin.port()))
        .send()
        .await
        .expect("request");
    assert_eq!(by_name.status(), 200);
    let reload = |auth: Option<&str>| {
        let mut req = http.post(gw.admin_url("/reload"));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    assert_eq!(reload(None).await.expect("reload").status(), 401);
    assert_eq!(
        reload(Some("Bearer wrong-secret-0123456789"))
            .await
            .expect("reload")
            .status(),
        401
    );
    let ok = reload(Some(&format!("Bearer {secret}")))
        .await
        .expect("reload");
    assert_eq!(ok.status(), 200);
    assert!(!gw.log().contains(secret), "the secret reached the log");
}
