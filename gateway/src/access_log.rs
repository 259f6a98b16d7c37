//! The access log: one line per request, as text or JSON (`server.log_format`), to standard
//! error or to a file (`server.access_log`). A file is reopened on `SIGUSR1` and on every
//! reload, so log rotation (rename, then signal) loses nothing.
//!
//! A line says who asked for what and what came of it; it never carries a query string, a
//! header value, a token, a code, a secret or a cookie.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where `server.access_log` sends the lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Off,
    Stderr,
    File(PathBuf),
}

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    /// When the response was done, RFC 3339 UTC.
    pub time: String,
    /// The client address (see [`crate::client_address`]).
    pub client: Option<IpAddr>,
    pub method: &'a str,
    /// The normal-form path, without the query.
    pub path: &'a str,
    pub route: &'a str,
    pub upstream: Option<String>,
    pub status: u16,
    /// Response body bytes sent.
    pub bytes: usize,
    pub duration_ms: f64,
    /// The validated token's client and user, when a token was checked.
    pub client_id: Option<&'a str>,
    pub sub: Option<&'a str>,
}

impl Entry<'_> {
    pub fn now() -> String {
        OffsetDateTime::from(SystemTime::now())
            .format(&Rfc3339)
            .unwrap_or_default()
    }

    pub fn millis(d: Duration) -> f64 {
        (d.as_micros() as f64) / 1000.0
    }

    fn text(&self) -> String {
        // The path goes out JSON-quoted: whatever bytes it holds, it stays on one line.
        let quoted = serde_json::to_string(self.path).unwrap_or_default();
        let or_dash = |v: Option<&str>| v.unwrap_or("-").to_string();
        format!(
            "{} {} {} {} route={} upstream={} status={} bytes={} duration_ms={:.3} client_id={} sub={}\n",
            self.time,
            self.client.map_or("-".to_string(), |c| c.to_string()),
            self.method,
            quoted,
            self.route,
            or_dash(self.upstream.as_deref()),
            self.status,
            self.bytes,
            self.duration_ms,
            or_dash(self.client_id),
            or_dash(self.sub),
        )
    }
}

/// The open access log.
pub struct AccessLog {
    destination: Destination,
    json: bool,
    file: Option<Mutex<File>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} json={}", self.destination, self.json)
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl AccessLog {
    /// Opens `destination` (creating a file if needed).
    pub fn open(destination: Destination, json: bool) -> std::io::Result<Self> {
        let file = match &destination {
            Destination::File(path) => Some(Mutex::new(open_append(path)?)),
            _ => None,
        };
        Ok(Self {
            destination,
            json,
            file,
        })
    }

    pub fn is_on(&self) -> bool {
        self.destination != Destination::Off
    }

    /// Opens the file again under its name (after a rotation moved the old one away).
    pub fn reopen(&self) -> std::io::Result<()> {
        if let (Destination::File(path), Some(file)) = (&self.destination, &self.file) {
            let fresh = open_append(path)?;
            *file.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
        Ok(())
    }

    /// Writes one line; a failed write is reported in the process log, never to the client.
    pub fn write(&self, entry: &Entry<'_>) {
        let line = if self.json {
            let mut line = serde_json::to_string(entry).unwrap_or_default();
            line.push('\n');
            line
        } else {
            entry.text()
        };
        let written = match &self.file {
            Some(file) => file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(line.as_bytes()),
            None if self.destination == Destination::Stderr => {
                std::io::stderr().lock().write_all(line.as_bytes())
            }
            None => Ok(()),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write the access log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            time: "2026-11-30T12:00:00Z".into(),
            client: Some("192.0.2.1".parse().expect("address")),
            method: "GET",
            path: "/v1/pets\n\"forged\"",
            route: "pets",
            upstream: Some("127.0.0.1:8080".into()),
            status: 200,
            bytes: 12,
            duration_ms: 1.5,
            client_id: Some("spa"),
            sub: None,
        }
    }

    #[test]
    fn a_line_is_one_line_in_both_formats() {
        let text = entry().text();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.contains(r#""/v1/pets\n\"forged\"""#), "{text}");
        assert!(text.contains("client_id=spa sub=-"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&entry()).expect("JSON")).expect("JSON");
        assert_eq!(json["status"], 200);
        assert_eq!(json["client"], "192.0.2.1");
    }

    #[test]
    fn a_rotated_file_is_reopened_under_its_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("access.log");
        let log = AccessLog::open(Destination::File(path.clone()), true).expect("open");
        log.write(&entry());
        std::fs::rename(&path, dir.path().join("access.log.1")).expect("rotate");
        log.write(&entry());
        log.reopen().expect("reopen");
        log.write(&entry());
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).expect("old");
        let new = std::fs::read_to_string(&path).expect("new");
        assert_eq!((old.lines().count(), new.lines().count()), (2, 1));
    }
}
