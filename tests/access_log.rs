//! The access log through the real gateway: one JSON line per request with the fields an
//! operator needs, nothing secret in it (every token, code, secret, password and cookie the
//! test used is looked for), and a rotated file reopened on SIGUSR1 and on reload.

mod common;

use std::time::Duration;

use common::oauth::*;
use common::{client, start_upstream};
use serde_json::Value;

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until `path` holds at least `n` lines (the line is written after the response).
async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let got = lines(path);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "fewer than {n} lines in {}: {:?}",
        path.display(),
        lines(path)
    );
}

#[tokio::test]
async fn every_request_is_one_line_without_secrets_and_rotation_loses_nothing() {
    let logs = tempfile::tempdir().expect("temp dir");
    let path = logs.path().join("access.log");
    let up = start_upstream("svc").await;
    let env = OAuthEnv::start_with_server(
        Backend::Memory,
        &[],
        demo_routes_yaml(up),
        "",
        &format!("  access_log: {}\n  log_format: json\n", path.display()),
    );
    let http = client();

    // A password grant (password in the body, client secret in Basic) and a
    // client_credentials grant.
    let admin = light_admin_password(&env).await;
    assert_eq!(admin.status, 200, "{}", admin.json);
    let access = admin.str("access_token").to_string();
    let refresh = admin.json["refresh_token"].as_str().map(str::to_string);
    let light = light_client_credentials(&env, None).await;
    assert_eq!(light.status, 200);
    let light_access = light.str("access_token").to_string();

    // A protected request with the token, a cookie and secrets in the query string.
    let resp = http
        .get(
            env.gw
                .url("/v1/pets?code=SECRET-CODE-123&state=QUERY-STATE-456"),
        )
        .header("authorization", format!("Bearer {access}"))
        .header("cookie", "session=COOKIE-789")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    // A refused one.
    let resp = http
        .get(env.gw.url("/v1/pets"))
        .header("authorization", "Bearer not-a-token-XYZ")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);

    let got = wait_for_lines(&path, 4).await;
    let pets: Vec<&Value> = got.iter().filter(|l| l["path"] == "/v1/pets").collect();
    assert_eq!(pets.len(), 2, "{got:?}");
    let ok = pets[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["route"], "pets");
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["client_id"], LIGHT_ID);
    assert!(ok["sub"].is_string(), "{ok}");
    assert!(
        ok["upstream"].as_str().is_some_and(|u| u == up.to_string()),
        "{ok}"
    );
    assert!(ok["bytes"].as_u64().is_some_and(|b| b > 0), "{ok}");
    assert!(ok["duration_ms"].as_f64().is_some(), "{ok}");
    assert!(
        ok["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{ok}"
    );
    assert_eq!(pets[1]["status"], 401);
    assert!(pets[1]["client_id"].is_null());
    let token_lines = got.iter().filter(|l| l["route"] == "oauth-token").count();
    assert_eq!(token_lines, 2, "{got:?}");

    let text = std::fs::read_to_string(&path).expect("log");
    // (The seed user's password, `123456`, is too short to look for: any timestamp may
    // hold it. Bodies are never logged, which the client secret's absence shows.)
    let mut secrets = vec![
        access.clone(),
        light_access,
        LIGHT_SECRET.to_string(),
        "SECRET-CODE-123".to_string(),
        "QUERY-STATE-456".to_string(),
        "COOKIE-789".to_string(),
        "not-a-token-XYZ".to_string(),
    ];
    secrets.extend(refresh);
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the access log holds a secret: {text}"
        );
    }

    // Rotation: move the file away, signal, and the next line lands in a new file.
    let rotated = logs.path().join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rotate");
    let pid = env.gw.pid().to_string();
    let status = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    // The signal is handled asynchronously: requests until one lands in the new file.
    let mut reopened = false;
    for _ in 0..100 {
        let resp = http.get(env.gw.url("/v1")).send().await.expect("request");
        assert!(resp.status().as_u16() < 500);
        if !lines(&path).is_empty() {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened, "SIGUSR1 did not reopen the access log");
    let before = lines(&rotated).len();
    assert!(before >= 4);

    // A reload reopens it too.
    std::fs::rename(&path, logs.path().join("access.log.2")).expect("rotate");
    let (status, report) = env.gw.reload().await;
    assert_eq!(status, 200, "{report}");
    http.get(env.gw.url("/v1")).send().await.expect("request");
    assert!(!wait_for_lines(&path, 1).await.is_empty());
}
