//! Nothing is dropped while the configuration changes or the binary is replaced: a bounded
//! request loop on keep-alive connections runs across 20 reloads and a graceful upgrade
//! (`tollgate --upgrade` + SIGQUIT to the old process), with Redis as the store.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::oauth::*;
use common::{client, start_upstream, Gateway, GatewayOptions, RedisServer};

const CLIENTS: usize = 4;

fn options(store_url: &str, up: std::net::SocketAddr, extra_route: bool) -> GatewayOptions {
    let mut routes = format!(
        "  - {{name: pets, path_prefix: /v1/pets, upstreams: [\"{up}\"], auth: {{scopes: [petstore.r]}}}}\n"
    );
    if extra_route {
        routes.push_str(&format!(
            "  - {{name: extra, path_prefix: /v2/extra, upstreams: [\"{up}\"]}}\n"
        ));
    }
    GatewayOptions {
        store_url: store_url.to_string(),
        routes,
        extra_yaml: demo_oauth_yaml(&[]),
        // The old process keeps serving (with `Connection: close`) for a moment after the
        // hand-over, so keep-alive clients move to fresh connections before it stops.
        server_yaml: "  grace_period_seconds: 2\n  graceful_shutdown_timeout_seconds: 5\n"
            .to_string(),
        ..Default::default()
    }
}

/// One client's loop: a token request, then a protected request with the token, both on the
/// client's keep-alive connection, until told to stop. Every failure is recorded.
async fn run_client(
    gw_url: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
) {
    let http = client();
    let basic = light_basic();
    // Bounded: stops when told, or after 100,000 rounds.
    for _ in 0..100_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let token = http
            .post(format!("{gw_url}/oauth2/token"))
            .header("authorization", &basic)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let access = match token {
            Ok(resp) if resp.status() == 200 => match resp.json::<serde_json::Value>().await {
                Ok(body) => body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("token body: {e}"));
                    continue;
                }
            },
            Ok(resp) => {
                failures
                    .lock()
                    .expect("lock")
                    .push(format!("token: {}", resp.status()));
                continue;
            }
            Err(e) => {
                failures.lock().expect("lock").push(format!("token: {e:?}"));
                continue;
            }
        };
        match http
            .get(format!("{gw_url}/v1/pets/1"))
            .bearer_auth(&access)
            .send()
            .await
        {
            Ok(resp) if resp.status() == 200 => {
                let _ = resp.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(resp) => failures
                .lock()
                .expect("lock")
                .push(format!("pets: {}", resp.status())),
            Err(e) => failures.lock().expect("lock").push(format!("pets: {e:?}")),
        }
    }
}

async fn wait_for_rounds(done: &AtomicUsize, more: usize) {
    let target = done.load(Ordering::Relaxed) + more;
    for _ in 0..600 {
        if done.load(Ordering::Relaxed) >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the clients made no progress");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_request_fails_across_reloads_and_an_upgrade() {
    let redis = RedisServer::start();
    let up = start_upstream("svc").await;
    let mut gw = Gateway::start(options(&redis.url(), up, false));
    let url = gw.url("");
    let before: serde_json::Value = client()
        .post(format!("{url}/oauth2/token"))
        .header("authorization", light_basic())
        .form(&[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "123456"),
        ])
        .send()
        .await
        .expect("password grant")
        .json()
        .await
        .expect("JSON");
    let refresh_token = before["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(run_client(
                url.clone(),
                Arc::clone(&stop),
                Arc::clone(&done),
                Arc::clone(&failures),
            ))
        })
        .collect();
    wait_for_rounds(&done, 20).await;

    for i in 0..20 {
        gw.rewrite_config(&options(&redis.url(), up, i % 2 == 0));
        let (status, report) = gw.reload().await;
        assert_eq!(status, 200, "reload {i}: {report}");
        wait_for_rounds(&done, 2).await;
    }

    let upgrade = tokio::task::spawn_blocking(move || {
        gw.upgrade();
        gw
    });
    let gw = upgrade.await.expect("upgrade");
    wait_for_rounds(&done, 50).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} failed requests of {}: {failures:?}\n{}",
        failures.len(),
        done.load(Ordering::Relaxed),
        gw.log()
    );
    assert!(
        gw.log().contains("draining"),
        "the old process drained its connections"
    );

    // Redis kept the refresh family across the upgrade.
    let env = OAuthEnv {
        gw,
        redis: Some(redis),
    };
    let rotated = token(
        &env,
        Some(&light_basic()),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ],
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.json);
}

/// The systemd unit's sequence (`conf/tollgate.service`): a daemon writes its pid file; on
/// reload the old one gets SIGQUIT and `--daemon --upgrade` takes over, with a new pid.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_is_replaced_as_the_systemd_unit_does() {
    use std::process::Command;
    let up = start_upstream("svc").await;
    let dir = tempfile::tempdir().expect("temp dir");
    // The daemon binds its own sockets here (nothing to hand over at first start).
    let (http, admin) = (common::free_port(), common::free_port());
    let pid_file = dir.path().join("tollgate.pid");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  threads: 1\n  grace_period_seconds: 1\n  graceful_shutdown_timeout_seconds: 2\n  pid_file: \"{pid}\"\n  error_log: \"{log}\"\n  upgrade_sock: \"{sock}\"\n\
             listeners:\n  - address: 127.0.0.1:{http}\n\
             admin:\n  address: 127.0.0.1:{admin}\n\
             routes:\n  - {{path_prefix: /v1, upstreams: [\"{up}\"]}}\n",
            pid = pid_file.display(),
            log = dir.path().join("error.log").display(),
            sock = dir.path().join("upgrade.sock").display(),
        ),
    )
    .expect("config");
    let tollgate = |extra: &[&str]| {
        let status = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("--config")
            .arg(&config)
            .args(extra)
            .env("RUST_LOG", "info")
            .status()
            .expect("tollgate");
        assert!(status.success(), "tollgate {extra:?}: {status}");
    };
    let read_pid = || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
    };
    let alive = |pid: u32| {
        Command::new("kill")
            .args(["-0", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    let get = || async {
        client()
            .get(format!("http://127.0.0.1:{http}/v1/x"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    tollgate(&["--daemon"]);
    common::wait_until("the daemon's pid file", Duration::from_secs(20), || {
        read_pid().is_some()
    });
    let first = read_pid().expect("pid");
    let mut answered = 0;
    for _ in 0..200 {
        if get().await == 200 {
            answered = 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, 200, "the daemon serves");

    // ExecReload: SIGQUIT to the old process, then the new one with --upgrade.
    let quit = Command::new("kill")
        .args(["-QUIT", &first.to_string()])
        .status()
        .expect("kill");
    assert!(quit.success());
    tollgate(&["--daemon", "--upgrade"]);
    common::wait_until("the new pid", Duration::from_secs(20), || {
        read_pid().is_some_and(|p| p != first)
    });
    let second = read_pid().expect("pid");
    common::wait_until("the old process to exit", Duration::from_secs(30), || {
        !alive(first)
    });
    assert_eq!(get().await, 200, "the new daemon serves on the same socket");
    let _ = Command::new("kill")
        .args(["-TERM", &second.to_string()])
        .status();
    common::wait_until("the new process to stop", Duration::from_secs(30), || {
        !alive(second)
    });
}
