//! The admin listener: `/healthz` (the process is alive), `/readyz` (the store answers; its
//! eviction policy is checked on the way), `POST /reload` (re-read the configuration) and
//! `/metrics` (Prometheus text). It should be bound to a private address.

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

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
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
                    Err(e) => json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"error": "invalid_configuration", "errors": [e.to_string()]}),
                    ),
                }
            }
            "/reload" => {
                let mut resp = json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    serde_json::json!({"error": "method_not_allowed", "error_description": "POST /reload"}),
                );
                if let Ok(v) = "POST".parse() {
                    resp.headers_mut().insert(http::header::ALLOW, v);
                }
                resp
            }
            "/metrics" => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            _ => {
                let not_found = GatewayError::NoRoute.into_response();
                let content_type = not_found
                    .header("content-type")
                    .unwrap_or("application/json");
                let status =
                    StatusCode::from_u16(not_found.status).unwrap_or(StatusCode::NOT_FOUND);
                respond(status, content_type, not_found.body.clone())
            }
        }
    }
}
