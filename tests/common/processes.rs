//! Processes the tests and the benches start: loopback ports for them, waiting for them, and
//! `redis-server` (one spawner for both; `benches/store.rs` includes this file by path).

#![allow(dead_code)] // each user needs a different part

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago, for a child process (redis-server, the
/// gateway) to bind.
///
/// Ports come from 20000–32767, below Linux's ephemeral range (32768–60999): a port the
/// kernel hands out as the source port of some connection (a test client, the gateway's own
/// Redis connections) can then never be taken for a listener a moment later, which is how
/// the plain "bind port 0, close, reuse" trick races on a busy machine. Within this process
/// a counter hands each port out once; its start depends on the process id, so test
/// binaries that follow each other do not retrace the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(613) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// Waits until `check` holds, polling every 25 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A `redis-server` on its own ephemeral port, keeping nothing on disk.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// More `redis-server` arguments, kept for restarts.
    args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more `redis-server` arguments (`--maxmemory-policy allkeys-lru`).
    pub fn start_with(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against this server; returns its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed: run scripts/test.sh, which installs it");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let child = spawn_redis(self.port, self.dir.path(), &args);
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || redis_ping(port),
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` on loopback `port` that keeps nothing on disk, with `extra` arguments.
pub fn spawn_redis(port: u16, dir: &Path, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed: run scripts/test.sh, which installs it")
}

pub fn redis_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Hands listening sockets to a process started with `--upgrade`, as an old Pingora process
/// does in a graceful upgrade: one message on its Unix socket `sock`, the bind addresses
/// space-separated as the payload and the sockets as `SCM_RIGHTS`. Waits (up to 20 s) for
/// the process to listen on `sock`.
#[cfg(target_os = "linux")]
pub fn hand_over_listeners(sock: &Path, binds: &[String], listeners: &[TcpListener]) {
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match UnixStream::connect(sock) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the gateway never listened on {}: {e}",
                    sock.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let payload = binds.join(" ");
    let fds: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [std::io::IoSlice::new(payload.as_bytes())];
    sendmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .expect("hand the listening sockets over");
}
