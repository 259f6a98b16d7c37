//! A real headless Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/setup.sh --test`), for the pages users see.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

/// chromedriver on a port it chose itself, and one browser session through it.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver (port 0: it binds a free port and says which) and a headless
    /// Chromium that accepts the demo certificate, with an empty profile and no background
    /// networking (this machine's network is closed).
    pub async fn start() -> Self {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed: run scripts/test.sh, which installs it");
        let stdout = driver.stdout.take().expect("chromedriver's stdout");
        let port = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("started successfully on port ")
                    .nth(1)
                    .and_then(|p| p.trim_end_matches('.').parse::<u16>().ok())
            })
            .expect("chromedriver says its port");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--ignore-certificate-errors", "--window-size=480,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // chromedriver speaks plain HTTP, but the client is built with TLS support, which
        // needs a process-wide provider (two are compiled in, so none is chosen by itself).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let mut builder = ClientBuilder::rustls().expect("TLS roots");
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..50 {
            match builder.connect(&url).await {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                    }
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = driver.kill();
        panic!("no browser session: {last:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Types `text` into the field with id `id`.
    pub async fn fill(&self, id: &str, text: &str) {
        let field = match self.client.find(Locator::Id(id)).await {
            Ok(field) => field,
            Err(e) => panic!("field #{id}: {e}\n{}", self.source().await),
        };
        field.send_keys(text).await.expect("type");
    }

    /// Presses the form button whose `decision` is `value` (`sign_in`, `allow`…).
    pub async fn press(&self, value: &str) {
        let selector = format!("button[name=decision][value={value}]");
        let button = match self.client.find(Locator::Css(&selector)).await {
            Ok(button) => button,
            Err(e) => panic!("button {value}: {e}\n{}", self.source().await),
        };
        button.click().await.expect("click");
    }

    /// Whether the page shows the button whose `decision` is `value`.
    pub async fn shows(&self, value: &str) -> bool {
        let selector = format!("button[name=decision][value={value}]");
        self.client.find(Locator::Css(&selector)).await.is_ok()
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .to_string()
    }

    /// Waits until the browser is at a URL that starts with `prefix`; its query pairs.
    pub async fn wait_for(&self, prefix: &str) -> std::collections::HashMap<String, String> {
        for _ in 0..100 {
            let url = self.url().await;
            if url.starts_with(prefix) {
                let query = url.split_once('?').map_or("", |(_, q)| q);
                return form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the browser never reached {prefix}; it is at {}:\n{}",
            self.url().await,
            self.source().await
        );
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Saves a screenshot to `$TOLLGATE_SCREENSHOTS/<name>.png` when that is set.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("TOLLGATE_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
                .expect("write screenshot");
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
