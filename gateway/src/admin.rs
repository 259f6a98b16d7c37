//! The admin listener: `/healthz` (the process is alive), `/readyz` (the store answers; its
//! eviction policy is checked on the way), `POST /reload` (re-read the configuration) and
//! `/metrics` (Prometheus text). It should be bound to a private address; even so, a request
//! whose `Host` is a name other than `localhost` is refused (403), so a web page on the
//! operator's machine cannot reach it through a name it made resolve to this address (DNS
//! rebinding), and `POST /reload` needs the `admin.token_file` secret when one is set.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use token_module::Store;

use crate::error::GatewayError;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::store::{EventsState, EvictionWatch};

pub struct AdminApp {
    /// The listener's own address: the port a `Host` may name.
    pub address: std::net::SocketAddr,
    /// The secret `POST /reload` needs, if any.
    pub reload_token: Option<crate::config::AdminToken>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub eviction: Arc<EvictionWatch>,
    pub live: Arc<Live>,
    pub events: Arc<arc_swap::ArcSwap<EventsState>>,
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = resp.body().len().to_string().parse() {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    resp
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

/// Whether `host` (a `Host` value) names this listener by an address or as `localhost`,
/// with its port if any: a DNS name other than `localhost` is what a rebinding page sends.
fn host_is_own(host: &str, port: u16) -> bool {
    let (name, given_port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        },
    };
    let named = name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok();
    named && given_port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p == port))
}

/// An error, as the error module writes every one the gateway answers itself.
fn error(e: GatewayError) -> Response<Vec<u8>> {
    let written = e.into_response();
    let mut resp = Response::new(written.body);
    *resp.status_mut() = StatusCode::from_u16(written.status).unwrap_or(StatusCode::BAD_REQUEST);
    for (name, value) in written.headers {
        if let Ok(value) = value.parse() {
            resp.headers_mut().append(name, value);
        }
    }
    if let Ok(v) = resp.body().len().to_string().parse() {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    resp
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        if !host.is_some_and(|h| host_is_own(h, self.address.port())) {
            return error(GatewayError::AdminHostRefused);
        }
        if session.req_header().method == http::Method::POST
            && session.req_header().uri.path() == "/reload"
        {
            if let Some(token) = &self.reload_token {
                let presented = session
                    .req_header()
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if !token_module::ct_eq(presented.as_bytes(), token.0.as_bytes()) {
                    return error(GatewayError::AdminTokenRequired);
                }
            }
        }
        match session.req_header().uri.path() {
            "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "alive"})),
            "/readyz" => match self.store.ping().await {
                Ok(()) => {
                    self.eviction.check().await;
                    // Without the fleet's revocation events this instance still serves
                    // correctly, only with revocations made elsewhere seen later.
                    let body = match **self.events.load() {
                        EventsState::Disconnected => serde_json::json!({
                            "status": "degraded",
                            "revocation_events": "disconnected; revocations made by other instances are seen within oauth.denylist_cache_ms",
                        }),
                        _ => serde_json::json!({"status": "ready"}),
                    };
                    json(StatusCode::OK, body)
                }
                Err(e) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"status": "not ready", "store": e.to_string()}),
                ),
            },
            "/reload" if session.req_header().method == http::Method::POST => {
                match self.live.reload().await {
                    Ok(report) => json(
                        StatusCode::OK,
                        serde_json::to_value(&report).unwrap_or_default(),
                    ),
                    Err(e) => error(GatewayError::InvalidConfiguration(e.to_string())),
                }
            }
            "/reload" => error(GatewayError::MethodNotAllowed {
                allow: "POST".into(),
            }),
            "/metrics" => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            _ => error(GatewayError::NoRoute),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_is_own;

    #[test]
    fn only_addresses_and_localhost_are_its_own_hosts() {
        for own in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "localhost:9090",
            "LOCALHOST",
            "[::1]:9090",
            "[::1]",
            "10.1.2.3:9090",
        ] {
            assert!(host_is_own(own, 9090), "{own}");
        }
        for other in [
            "evil.example:9090",
            "evil.example",
            "localhost.evil.example:9090",
            "127.0.0.1:80",
            "localhost:9091",
            "[::1",
            "",
        ] {
            assert!(!host_is_own(other, 9090), "{other}");
        }
    }
}
