//! The OAuth endpoints inside the proxy: reads what token_module needs from the Pingora
//! session, hands it over, and writes back the response it returns.

use std::net::IpAddr;
use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;
use token_module::{AuthorizeRequest, OAuthError, OAuthProvider, TokenRequest};

use crate::metrics::Metrics;
use crate::respond;

/// The authorization server's endpoints.
pub struct OAuthEndpoints {
    pub provider: OAuthProvider,
    pub metrics: Arc<Metrics>,
}

/// Why reading a body stopped short.
enum BodyError {
    TooLarge,
}

fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Reads the whole request body, refusing (without reading on) past `limit` bytes.
async fn read_body(
    session: &mut Session,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, BodyError>> {
    let declared = header(session, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(Err(BodyError::TooLarge));
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |l| l as usize));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(Err(BodyError::TooLarge));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Ok(body))
}

impl OAuthEndpoints {
    /// The route label (for metrics) of the endpoint at `path`, if it is one.
    pub fn route_for(&self, path: &str) -> Option<&'static str> {
        let config = self.provider.config();
        if path == config.token_path {
            Some("oauth-token")
        } else if path == config.authorize_path {
            Some("oauth-authorize")
        } else {
            None
        }
    }

    /// Answers the OAuth request at `route` (from [`Self::route_for`]).
    pub async fn serve(&self, session: &mut Session, route: &'static str) -> Result<()> {
        let limit = self.provider.config().max_body_bytes;
        let method = session.req_header().method.clone();
        if route == "oauth-token" && method != http::Method::POST {
            return self
                .write_token_error(
                    session,
                    None,
                    OAuthError::MethodNotAllowed { allow: "POST" },
                )
                .await;
        }
        let body = match read_body(session, limit).await? {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                // The rest of the body stays unread: this connection cannot carry another request.
                session.set_keepalive(None);
                let err = OAuthError::PayloadTooLarge { limit };
                return if route == "oauth-token" {
                    self.write_token_error(session, None, err).await
                } else {
                    respond::write(session, &err.into_response()).await
                };
            }
        };
        let query = session.req_header().uri.query().map(str::to_string);
        let ip = client_ip(session);
        if route == "oauth-token" {
            let outcome = self
                .provider
                .token(TokenRequest {
                    content_type: header(session, "content-type"),
                    authorization: header(session, "authorization"),
                    query: query.as_deref(),
                    body: &body,
                    client_ip: ip,
                })
                .await;
            let grant = outcome.grant.map_or("unknown", |g| g.as_str());
            match outcome.error {
                None => self.metrics.tokens_issued.with_label_values(&[grant]).inc(),
                Some(error) => self
                    .metrics
                    .token_failures
                    .with_label_values(&[grant, error])
                    .inc(),
            }
            respond::write(session, &outcome.response).await
        } else {
            let secure = session.digest().is_some_and(|d| d.ssl_digest.is_some());
            let response = self
                .provider
                .authorize(AuthorizeRequest {
                    method: method.as_str(),
                    query: query.as_deref(),
                    content_type: header(session, "content-type"),
                    body: &body,
                    authorization: header(session, "authorization"),
                    cookie: header(session, "cookie"),
                    client_ip: ip,
                    secure,
                })
                .await;
            respond::write(session, &response).await
        }
    }

    async fn write_token_error(
        &self,
        session: &mut Session,
        grant: Option<&str>,
        err: OAuthError,
    ) -> Result<()> {
        self.metrics
            .token_failures
            .with_label_values(&[grant.unwrap_or("unknown"), err.code()])
            .inc();
        respond::write(session, &err.into_response()).await
    }
}
