//! The load generator of `scripts/bench.sh`: drives a running gateway over keep-alive HTTP/1.1
//! connections and reports throughput and latency; also measures the raw RS256 signing rate.
//!
//! ```text
//! loadgen sign-rate --key conf/keys/demo-rs256-100.pem --seconds 3
//! loadgen run --target 127.0.0.1:16882 --scenario client_credentials --connections 64 --seconds 5
//! loadgen run ... --rate 1000          # open loop: latency at a fixed request rate
//! loadgen report results.jsonl         # the Markdown table of a bench run
//! ```
//!
//! Each connection runs its scenario's steps back to back (closed loop) or on a fixed
//! schedule (`--rate`, latency measured from the scheduled start, so a stall is not hidden).
//! Every run is bounded by `--seconds`; only loopback targets make sense here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

/// Why a load run failed: a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct LoadError(String);

impl From<String> for LoadError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for LoadError {
    fn from(message: &str) -> Self {
        Self(message.to_string())
    }
}

type LoadResult<T> = Result<T, LoadError>;

const LIGHT_BASIC: &str = "Basic f7d42348-c647-4efb-a52d-4c5787421e72:f6h1FTI8Q3-7UScPZDzfXA";
const LIGHT_ID: &str = "f7d42348-c647-4efb-a52d-4c5787421e72";
/// About the length of a light-oauth2 client_credentials access token.
const UNCHECKED_TOKEN_LEN: usize = 600;

#[derive(Parser)]
#[command(about = "Tollgate's load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// RS256 signatures per second on this thread, with the key parsed once.
    SignRate {
        #[arg(long)]
        key: std::path::PathBuf,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Drives one scenario and prints one JSON line.
    Run {
        #[arg(long)]
        target: SocketAddr,
        /// client_credentials, password, refresh_token, authorization_code, protected,
        /// protected_guarded (with a rate limit and health checks), unprotected, bare_pingora
        /// (the same request as unprotected, for the bare Pingora baseline) or upstream (a GET to /v1/open/x, for the upstream itself).
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        /// Requests (steps) per second across all connections; closed loop when absent.
        #[arg(long)]
        rate: Option<f64>,
        /// The row name in the results (default: the scenario), e.g. `protected_reloading`
        /// for the protected scenario while the configuration reloads.
        #[arg(long)]
        label: Option<String>,
    },
    /// Prints the Markdown table of a bench run's JSON lines.
    Report { results: std::path::PathBuf },
}

/// One keep-alive connection, re-opened when the server closes it.
struct Conn {
    target: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: Bytes,
}

impl Conn {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> LoadResult<Reply> {
        for _ in 0..2 {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                let stream = tokio::net::TcpStream::connect(self.target)
                    .await
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                self.sender = Some(sender);
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", "bench");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::from(body.to_string())))
                .map_err(|e| e.to_string())?;
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let location = resp
                        .headers()
                        .get("location")
                        .and_then(|l| l.to_str().ok())
                        .map(str::to_string);
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| e.to_string())?
                        .to_bytes();
                    return Ok(Reply {
                        status,
                        location,
                        body,
                    });
                }
                Err(_) => self.sender = None,
            }
        }
        Err("connection failed twice".into())
    }
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

impl Conn {
    /// A token request of the light-oauth2 client (raw Basic credentials, as its seed sends).
    async fn token(&mut self, body: &str) -> LoadResult<Reply> {
        self.send(
            Method::POST,
            "/oauth2/token",
            &[("authorization", LIGHT_BASIC), FORM],
            body,
        )
        .await
    }
}

fn expect(reply: &Reply, status: u16) -> LoadResult<()> {
    if reply.status == status {
        Ok(())
    } else {
        Err(LoadError(format!(
            "status {} (wanted {status}): {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )))
    }
}

fn json_field(reply: &Reply, field: &str) -> LoadResult<String> {
    let v: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
    v[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| LoadError(format!("no `{field}` in the reply")))
}

/// Per-connection state of a scenario.
enum Scenario {
    ClientCredentials,
    Password,
    RefreshToken {
        refresh_token: String,
    },
    AuthorizationCode {
        user_basic: String,
    },
    Get {
        path: &'static str,
        authorization: Option<String>,
    },
}

impl Scenario {
    async fn setup(name: &str, conn: &mut Conn) -> LoadResult<Self> {
        Ok(match name {
            "client_credentials" => Scenario::ClientCredentials,
            "password" => Scenario::Password,
            "refresh_token" => {
                let reply = password_grant(conn).await?;
                Scenario::RefreshToken {
                    refresh_token: json_field(&reply, "refresh_token")?,
                }
            }
            "authorization_code" => Scenario::AuthorizationCode {
                user_basic: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("admin:123456")
                ),
            },
            // `protected_guarded`: the same check on a route with a rate limit and active
            // health checks (conf/bench.yaml), to show what they cost.
            "protected" | "protected_guarded" => {
                let reply = conn.token("grant_type=client_credentials").await?;
                expect(&reply, 200)?;
                Scenario::Get {
                    path: if name == "protected" {
                        "/v1/pets"
                    } else {
                        "/v1/guarded/x"
                    },
                    authorization: Some(format!("Bearer {}", json_field(&reply, "access_token")?)),
                }
            }
            // The same Authorization header as the protected scenario (a token's size), unchecked:
            // the comparison then isolates the cost of checking it.
            "unprotected" | "upstream" | "bare_pingora" => Scenario::Get {
                path: "/v1/open/x",
                authorization: Some(format!("Bearer {}", "x".repeat(UNCHECKED_TOKEN_LEN))),
            },
            other => return Err(LoadError(format!("unknown scenario `{other}`"))),
        })
    }

    /// One measured unit of work.
    async fn step(&mut self, conn: &mut Conn) -> LoadResult<()> {
        match self {
            Scenario::ClientCredentials => {
                let reply = conn.token("grant_type=client_credentials").await?;
                expect(&reply, 200)
            }
            Scenario::Password => expect(&password_grant(conn).await?, 200),
            Scenario::RefreshToken { refresh_token } => {
                let body = format!("grant_type=refresh_token&refresh_token={refresh_token}");
                let reply = conn.token(&body).await?;
                expect(&reply, 200)?;
                *refresh_token = json_field(&reply, "refresh_token")?;
                Ok(())
            }
            Scenario::AuthorizationCode { user_basic } => {
                let path = format!(
                    "/oauth2/authorize?response_type=code&client_id={LIGHT_ID}&state=bench"
                );
                let reply = conn
                    .send(
                        Method::GET,
                        &path,
                        &[("authorization", user_basic.as_str())],
                        "",
                    )
                    .await?;
                expect(&reply, 302)?;
                let location = reply.location.ok_or("no Location")?;
                let code = location
                    .split(['?', '&'])
                    .find_map(|p| p.strip_prefix("code="))
                    .ok_or("no code in the redirect")?
                    .to_string();
                let body = format!("grant_type=authorization_code&code={code}");
                let reply = conn.token(&body).await?;
                expect(&reply, 200)
            }
            Scenario::Get {
                path,
                authorization,
            } => {
                let headers: Vec<(&str, &str)> = authorization
                    .iter()
                    .map(|a| ("authorization", a.as_str()))
                    .collect();
                expect(&conn.send(Method::GET, path, &headers, "").await?, 200)
            }
        }
    }
}

async fn password_grant(conn: &mut Conn) -> LoadResult<Reply> {
    conn.token("grant_type=password&username=admin&password=123456")
        .await
}

/// What one connection measured.
struct Tally {
    latencies: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    target: SocketAddr,
    scenario: String,
    warmup: Duration,
    measure: Duration,
    interval: Option<Duration>,
    offset: Duration,
) -> LoadResult<Tally> {
    let mut conn = Conn {
        target,
        sender: None,
    };
    let mut state = Scenario::setup(&scenario, &mut conn).await?;
    let mut tally = Tally {
        latencies: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
        errors: 0,
        first_error: None,
    };
    let start = Instant::now() + offset;
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut next = start;
    tokio::time::sleep_until(start.into()).await;
    loop {
        let scheduled = match interval {
            Some(every) => {
                tokio::time::sleep_until(next.into()).await;
                let s = next;
                next += every;
                s
            }
            None => Instant::now(),
        };
        if scheduled >= end {
            break;
        }
        let result = state.step(&mut conn).await;
        if scheduled >= measure_from {
            match result {
                Ok(()) => {
                    let micros = scheduled.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                    let _ = tally.latencies.record(micros);
                }
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(e.to_string());
                }
            }
        }
    }
    Ok(tally)
}

async fn run(
    target: SocketAddr,
    scenario: String,
    connections: usize,
    seconds: f64,
    warmup: f64,
    rate: Option<f64>,
) -> LoadResult<Value> {
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1.0)));
    let measure = Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for i in 0..connections {
        // Spread the schedule of open-loop connections across one interval.
        let offset = interval.map_or(Duration::ZERO, |every| {
            every.mul_f64(i as f64 / connections as f64)
        });
        tasks.push(tokio::spawn(drive(
            target,
            scenario.clone(),
            Duration::from_secs_f64(warmup),
            measure,
            interval,
            offset + Duration::from_millis(200),
        )));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let (mut errors, mut first_error) = (0, None);
    for t in tasks {
        let tally = t.await.map_err(|e| e.to_string())??;
        all.add(&tally.latencies).map_err(|e| e.to_string())?;
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "scenario": scenario,
        "connections": connections,
        "rate": rate,
        "requests": all.len(),
        "errors": errors,
        "first_error": first_error,
        "rps": all.len() as f64 / seconds,
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
    }))
}

/// RS256 signatures per second: aws-lc-rs with the key parsed once, on this thread.
fn sign_rate(key: &std::path::Path, seconds: f64) -> LoadResult<Value> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivateKeyDer::from_pem_file(key).map_err(|e| e.to_string())?;
    let pair = RsaKeyPair::from_pkcs8(der.secret_der()).map_err(|e| e.to_string())?;
    let message = [b'x'; 350]; // about the size of a light-oauth2 header.payload
    let mut signature = vec![0u8; pair.public_modulus_len()];
    let rng = SystemRandom::new();
    let (start, mut count) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        pair.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
            .map_err(|e| e.to_string())?;
        count += 1;
    }
    Ok(json!({ "sign_rate": count as f64 / start.elapsed().as_secs_f64() }))
}

/// The median over rounds of `name`'s closed-loop rate divided by `other`'s in the same round
/// (the runs are interleaved, so a round's pair saw the same machine).
fn paired_ratio(rows: &[(RowKey, Vec<&Value>)], name: &str, other: &str) -> Option<f64> {
    let rates = |n: &str| -> Vec<f64> {
        rows.iter()
            .find(|((s, r), _)| s == n && r.is_none())
            .map(|(_, runs)| runs.iter().filter_map(|r| r["rps"].as_f64()).collect())
            .unwrap_or_default()
    };
    let ratios: Vec<f64> = rates(name)
        .iter()
        .zip(rates(other).iter())
        .filter(|(_, o)| **o > 0.0)
        .map(|(m, o)| m / o)
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// A table row: scenario and open-loop rate (`None`: closed loop).
type RowKey = (String, Option<f64>);

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// The bench's table: one row per scenario and load (the median of its runs), token rows
/// also as a share of the signing rate, proxy rows as a share of the bare Pingora proxy
/// measured in the same rounds.
fn report(path: &std::path::Path) -> LoadResult<()> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sign_rate = median(
        lines
            .iter()
            .filter_map(|l| l["sign_rate"].as_f64())
            .collect(),
    );
    let rss_mb = lines
        .iter()
        .find_map(|l| l["peak_rss_kb"].as_f64())
        .map(|kb| kb / 1024.0);
    // (scenario, rate) in first-seen order, with their runs.
    let mut rows: Vec<(RowKey, Vec<&Value>)> = Vec::new();
    for l in lines.iter().filter(|l| l["scenario"].is_string()) {
        let key = (
            l["scenario"].as_str().unwrap_or("").to_string(),
            l["rate"].as_f64(),
        );
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, runs)) => runs.push(l),
            None => rows.push((key, vec![l])),
        }
    }
    let stat = |runs: &[&Value], field: &str| {
        median(runs.iter().filter_map(|r| r[field].as_f64()).collect())
    };
    println!("| scenario | load | runs | requests/s | p50 ms | p99 ms | errors | vs RS256 signing | vs bare Pingora |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for ((name, rate), runs) in &rows {
        let rps = stat(runs, "rps");
        let load = rate.map_or("max".to_string(), |r| format!("{r:.0}/s"));
        let token_row = matches!(
            name.as_str(),
            "client_credentials" | "password" | "refresh_token" | "authorization_code"
        );
        let vs_sign = if token_row && sign_rate > 0.0 && rate.is_none() {
            format!("{:.0} %", 100.0 * rps / sign_rate)
        } else {
            String::new()
        };
        let vs_open = match (name.as_str(), rate) {
            (
                "protected"
                | "unprotected"
                | "protected_opaque"
                | "upstream"
                | "client_credentials_es256"
                | "client_credentials_eddsa",
                None,
            ) => paired_ratio(&rows, name, "bare_pingora")
                .map_or(String::new(), |r| format!("{:.0} %", 100.0 * r)),
            ("protected_reloading" | "protected_guarded", None) => {
                paired_ratio(&rows, name, "protected").map_or(String::new(), |r| {
                    format!("{:.0} % of protected", 100.0 * r)
                })
            }
            _ => String::new(),
        };
        let errors: u64 = runs.iter().filter_map(|r| r["errors"].as_u64()).sum();
        println!(
            "| {name} | {load} | {} | {rps:.0} | {:.2} | {:.2} | {errors} | {vs_sign} | {vs_open} |",
            runs.len(),
            stat(runs, "p50_ms"),
            stat(runs, "p99_ms"),
        );
    }
    println!();
    println!(
        "RS256 signing, one thread, key parsed once (median of {} runs): {sign_rate:.0}/s",
        lines.iter().filter(|l| l["sign_rate"].is_number()).count()
    );
    if let Some(mb) = rss_mb {
        println!("Gateway peak resident memory: {mb:.1} MB");
    }
    for l in lines.iter().filter(|l| l["first_error"].is_string()) {
        println!("first error in {}: {}", l["scenario"], l["first_error"]);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::SignRate { key, seconds } => sign_rate(&key, seconds).map(|v| println!("{v}")),
        Command::Run {
            target,
            scenario,
            connections,
            seconds,
            warmup,
            rate,
            label,
        } => run(target, scenario.clone(), connections, seconds, warmup, rate)
            .await
            .map(|mut v| {
                if let Some(label) = label {
                    v["scenario"] = Value::from(label);
                }
                println!("{v}")
            }),
        Command::Report { results } => report(&results),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
