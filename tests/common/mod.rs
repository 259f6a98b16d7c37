//! The shared test harness: real processes on ephemeral loopback ports. A `redis-server` of
//! the test's own, echo upstreams, and the real `tollgate` binary with a generated config.
//! Everything started here is killed when its handle drops.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod fleet;
pub mod oauth;
pub mod processes;
pub mod upstream;

pub use processes::{free_port, wait_until, RedisServer};
use processes::{redis_ping, spawn_redis};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root (tests live in `<root>/tests`, the package in `<root>/gateway`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The demo CA that signed `conf/demo-tls/cert.pem`.
pub fn demo_ca() -> PathBuf {
    repo_root().join("conf/demo-tls/ca.pem")
}

/// An echo upstream (see [`upstream`]) in a background task of the current runtime.
pub async fn start_upstream(name: &str) -> SocketAddr {
    upstream::spawn("127.0.0.1:0".parse().expect("addr"), name, None)
        .await
        .expect("bind upstream")
}

/// An echo upstream serving TLS with the demo certificate (valid for `localhost`).
pub async fn start_tls_upstream(name: &str) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls_dir = repo_root().join("conf/demo-tls");
    let certs = CertificateDer::pem_file_iter(tls_dir.join("cert.pem"))
        .expect("demo cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("demo cert");
    let key = PrivateKeyDer::from_pem_file(tls_dir.join("key.pem")).expect("demo key");
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    upstream::spawn("127.0.0.1:0".parse().expect("addr"), name, Some(acceptor))
        .await
        .expect("bind upstream")
}

/// What the generated gateway config holds besides its listeners.
pub struct GatewayOptions {
    /// The `store.url` value.
    pub store_url: String,
    /// The YAML of the `routes:` list, indented by two spaces per item.
    pub routes: String,
    pub store_timeout_ms: u64,
    /// More top-level YAML (e.g. an `oauth:` section), appended as is.
    pub extra_yaml: String,
    /// More `server:` keys, each line indented by two spaces.
    pub server_yaml: String,
    /// More keys of the plain-HTTP listener, each line indented by four spaces.
    pub http_listener_yaml: String,
    /// More `admin:` keys, each line indented by two spaces.
    pub admin_yaml: String,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            store_url: "memory://".into(),
            routes: String::new(),
            store_timeout_ms: 500,
            extra_yaml: String::new(),
            server_yaml: String::new(),
            http_listener_yaml: String::new(),
            admin_yaml: String::new(),
        }
    }
}

/// The real `tollgate` binary with a plain-HTTP listener, a TLS listener (demo certificate)
/// and an admin listener, each on an ephemeral port.
pub struct Gateway {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Gateway {
    pub fn config_yaml(opts: &GatewayOptions, http: u16, https: u16, admin: u16) -> String {
        let tls = repo_root().join("conf/demo-tls");
        // The harness's server defaults, unless `server_yaml` sets them itself.
        let defaults: String = [
            "  threads: 2\n",
            "  grace_period_seconds: 0\n",
            "  graceful_shutdown_timeout_seconds: 1\n",
            "  log_level: info\n",
        ]
        .iter()
        .filter(|line| {
            let key = line.split(':').next().unwrap_or("");
            !opts.server_yaml.contains(&format!("{key}:"))
        })
        .copied()
        .collect();
        format!(
            "server:\n{defaults}{server}\
             listeners:\n  - address: 127.0.0.1:{http}\n{http_listener}  - address: 127.0.0.1:{https}\n    tls:\n      cert: {cert}\n      key: {key}\n\
             admin:\n  address: 127.0.0.1:{admin}\n{admin_yaml}\
             store:\n  url: \"{store}\"\n  timeout_ms: {timeout}\n\
             routes:\n{routes}{extra}",
            cert = tls.join("cert.pem").display(),
            key = tls.join("key.pem").display(),
            store = opts.store_url,
            timeout = opts.store_timeout_ms,
            extra = opts.extra_yaml,
            server = opts.server_yaml,
            http_listener = opts.http_listener_yaml,
            admin_yaml = opts.admin_yaml,
            routes = if opts.routes.trim().is_empty() { "  []\n".to_string() } else { opts.routes.clone() },
        )
    }

    /// Writes the config, starts the gateway and waits until its admin `/healthz` answers.
    ///
    /// No port is guessed: the harness binds the three listening sockets on port 0 itself and
    /// hands them to the gateway, started with `--upgrade`, through its upgrade socket (the
    /// mechanism of Pingora's graceful upgrade). The ports are known before the gateway runs
    /// and nothing else can take them in between.
    pub fn start(opts: GatewayOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
                // The gateway's event loop needs non-blocking sockets (the flag travels with
                // the socket).
                l.set_nonblocking(true).expect("non-blocking");
                l
            })
            .collect();
        let port = |i: usize| listeners[i].local_addr().expect("bound").port();
        let (http, https, admin) = (port(0), port(1), port(2));
        let upgrade_sock = dir.path().join("upgrade.sock");
        let config = dir.path().join("gateway.yaml");
        write_config(&config, &opts, [http, https, admin], &upgrade_sock);
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let child = spawn_tollgate(&config, log);
        let binds: Vec<String> = [http, https, admin]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        processes::hand_over_listeners(&upgrade_sock, &binds, &listeners);
        drop(listeners);
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut gw = Self {
            http: loopback(http),
            https: loopback(https),
            admin: loopback(admin),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gw.is_healthy() {
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("tollgate exited with {status} during start:\n{}", gw.log());
            }
            assert!(
                Instant::now() < deadline,
                "tollgate did not become healthy:\n{}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        // The proxy listener is added after the admin one; make sure it accepts too.
        wait_until("the proxy listener", Duration::from_secs(10), || {
            TcpStream::connect(gw.http).is_ok()
        });
        gw
    }

    /// The configuration file this gateway runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.yaml")
    }

    /// Rewrites the configuration file for `opts`, keeping this gateway's listeners (it takes
    /// effect on the next reload).
    pub fn rewrite_config(&self, opts: &GatewayOptions) {
        let ports = [self.http.port(), self.https.port(), self.admin.port()];
        write_config(
            &self.config_path(),
            opts,
            ports,
            &self.dir.path().join("upgrade.sock"),
        );
    }

    /// `POST /reload` on the admin listener: the status and the JSON answer.
    pub async fn reload(&self) -> (u16, serde_json::Value) {
        let resp = client()
            .post(self.admin_url("/reload"))
            .send()
            .await
            .expect("reload");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// A graceful binary upgrade: a new process started with `--upgrade` takes the listening
    /// sockets over from this one (told by SIGQUIT), which finishes its requests and exits.
    /// Both write to the same log.
    pub fn upgrade(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("gateway.log"))
            .expect("log file");
        let new = spawn_tollgate(&self.config_path(), log);
        let quit = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(quit.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the old process did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child = new;
        wait_until("the new process", Duration::from_secs(20), || {
            self.is_healthy()
        });
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL: no graceful shutdown, as a crash) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn is_healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(self.admin) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut out = String::new();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_ok()
            && s.read_to_string(&mut out).is_ok()
            && out.starts_with("HTTP/1.1 200")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The TLS listener's URL, by the name the demo certificate is valid for.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `GET path` with `token` as the bearer token: the status and the JSON body (the echo
    /// upstream's view of the request; `Null` when there is none).
    pub async fn bearer_get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let resp = client()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `GET path`, whose answer must be JSON (discovery, the JWKS).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: not JSON: {e}"))
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        client()
            .get(self.admin_url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin {path}: {e}"))
    }

    /// The status `/readyz` answers.
    pub async fn readyz(&self) -> u16 {
        self.admin_get("/readyz").await.status().as_u16()
    }

    /// The admin listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics")
            .await
            .text()
            .await
            .expect("metrics text")
    }

    /// The admin listener's Prometheus text once it holds every line of `lines`. Request
    /// counts and durations are recorded after the last response byte is sent, so a client
    /// can read its response before they are: poll (bounded) rather than race.
    pub async fn metrics_containing(&self, lines: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = self.metrics().await;
            let missing: Vec<&&str> = lines.iter().filter(|l| !metrics.contains(**l)).collect();
            if missing.is_empty() {
                return metrics;
            }
            if Instant::now() > deadline {
                panic!("missing {missing:?} in\n{metrics}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes the gateway configuration for `opts` with listeners on `ports` (http, https,
/// admin), atomically (a reload never reads half a file).
fn write_config(path: &Path, opts: &GatewayOptions, ports: [u16; 3], upgrade_sock: &Path) {
    let mut yaml = Gateway::config_yaml(opts, ports[0], ports[1], ports[2]);
    yaml = yaml.replacen(
        "server:\n",
        &format!("server:\n  upgrade_sock: \"{}\"\n", upgrade_sock.display()),
        1,
    );
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, yaml).expect("write config");
    std::fs::rename(&tmp, path).expect("move config in place");
}

/// An HTTP client that trusts the demo CA, uses no proxy from the environment and never
/// follows redirects.
pub fn client() -> reqwest::Client {
    let ca = std::fs::read(demo_ca()).expect("demo CA");
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("demo CA"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Runs `tollgate --check --config <path>`; returns (exit code, stdout + stderr).
pub fn check_config(path: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--check")
        .arg("--config")
        .arg(path)
        .env_remove("TOLLGATE_STORE_URL")
        .output()
        .expect("run tollgate --check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A Redis Cluster of `n` masters (no replicas), each a `redis-server` on ephemeral ports.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for i in 0..n {
            let (port, bus) = (free_port(), free_port());
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let bus = bus.to_string();
            let child = spawn_redis(
                port,
                &node_dir,
                &["--cluster-enabled", "yes", "--cluster-port", &bus],
            );
            children.push(child);
            ports.push(port);
        }
        let cluster = Self {
            ports,
            children,
            _dir: dir,
        };
        for &port in &cluster.ports {
            wait_until(
                "a cluster node to answer PING",
                Duration::from_secs(10),
                || redis_ping(port),
            );
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed: run scripts/test.sh, which installs it");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let first = cluster.ports[0];
        wait_until("the cluster to be ok", Duration::from_secs(20), || {
            Command::new("redis-cli")
                .args(["-p", &first.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
        });
        cluster
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…`
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the real binary with `--upgrade` (its listening sockets come through the upgrade
/// socket), logging to `log`.
fn spawn_tollgate(config: &Path, log: std::fs::File) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--config")
        .arg(config)
        .arg("--upgrade")
        .env_remove("TOLLGATE_STORE_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tollgate")
}

/// Sends `request` as raw bytes on a new connection and returns everything read back
/// (the request should say `Connection: close`).
pub fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of one series (`name{labels}` exactly as rendered) in Prometheus text.
pub fn metric_value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
