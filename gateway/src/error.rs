//! The gateway's own errors, and the one place that turns each into a response. Bodies come
//! from token_module's error module, so every JSON error Tollgate sends has one shape
//! (`{"error", "error_description"}`), whether the gateway or an OAuth endpoint answered.

use pingora::{ErrorSource, ErrorType};
use token_module::error::error_response;
use token_module::Response;

/// A request the gateway answers itself with an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// 400: a request that must not be forwarded as sent (an ambiguous path or method
    /// spelling, more than one credential).
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// 414: the request target is longer than `server.max_uri_bytes`.
    #[error("the request target is longer than {0} bytes")]
    UriTooLong(usize),
    /// 431: more header fields than `server.max_header_count`, or a header section larger
    /// than `server.max_header_bytes`.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 404: no route matches.
    #[error("no route matches this request")]
    NoRoute,
    /// 405: a protected route has no scopes for the method; `allow` lists those it has.
    #[error("this route has no scopes for the method")]
    MethodNotAllowed { allow: String },
    /// Pingora turned the upstream's answer into an error with this status.
    #[error("upstream error {0}")]
    UpstreamStatus(u16),
    /// 504: the upstream did not answer in time.
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// 502: the upstream could not be reached or misbehaved.
    #[error("the upstream could not be reached or sent an invalid response")]
    BadGateway,
    /// 400: the request could not be read.
    #[error("the request could not be read")]
    UnreadableRequest,
    /// 408: the request body stalled longer than `server.body_timeout_ms`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 429: a rate limit of the route was reached; `headers` say which, and when to retry
    /// (`Retry-After`, `RateLimit-Policy`, `RateLimit`).
    #[error("too many requests; retry later")]
    TooManyRequests {
        headers: Vec<(&'static str, String)>,
    },
    /// 403: a CORS preflight the route's policy does not allow (origin, method or headers).
    #[error("this cross-origin request is not allowed")]
    CrossOriginRefused,
    /// 403: a request to the admin listener whose `Host` names it by neither an address nor
    /// `localhost` (what a DNS-rebinding page sends).
    #[error("the admin listener answers only requests addressed to it by address or as localhost")]
    AdminHostRefused,
    /// 401: `POST /reload` without the `admin.token_file` secret as its bearer token.
    #[error("POST /reload needs the admin.token_file secret as a bearer token")]
    AdminTokenRequired,
    /// 400: a reload found the configuration invalid and changed nothing.
    #[error("{0}")]
    InvalidConfiguration(String),
    /// 500: something failed inside the gateway.
    #[error("the gateway failed to handle the request")]
    Internal,
}

impl GatewayError {
    /// The error of a request Pingora could not proxy; `None` when the client went away and
    /// there is no one to answer.
    pub fn from_proxy_error(e: &pingora::Error) -> Option<Self> {
        Some(match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(code), _) => Self::UpstreamStatus(*code),
            (
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout,
                ErrorSource::Upstream,
            ) => Self::UpstreamTimeout,
            (_, ErrorSource::Upstream) => Self::BadGateway,
            (ErrorType::ReadTimedout, ErrorSource::Downstream) => Self::RequestTimeout,
            (
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => return None,
            (_, ErrorSource::Downstream) => Self::UnreadableRequest,
            _ => Self::Internal,
        })
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) | Self::UnreadableRequest | Self::InvalidConfiguration(_) => {
                400
            }
            Self::AdminTokenRequired => 401,
            Self::CrossOriginRefused | Self::AdminHostRefused => 403,
            Self::NoRoute => 404,
            Self::RequestTimeout => 408,
            Self::TooManyRequests { .. } => 429,
            Self::UriTooLong(_) => 414,
            Self::HeadersTooLarge(_) => 431,
            Self::MethodNotAllowed { .. } => 405,
            Self::UpstreamStatus(code) => *code,
            Self::UpstreamTimeout => 504,
            Self::BadGateway => 502,
            Self::Internal => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) | Self::UnreadableRequest | Self::CrossOriginRefused => {
                "invalid_request"
            }
            Self::AdminHostRefused => "forbidden",
            Self::AdminTokenRequired => "invalid_token",
            Self::InvalidConfiguration(_) => "invalid_configuration",
            Self::NoRoute => "not_found",
            Self::RequestTimeout => "request_timeout",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::UriTooLong(_) => "uri_too_long",
            Self::HeadersTooLarge(_) => "request_header_fields_too_large",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::UpstreamStatus(_) => "upstream_error",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::BadGateway => "bad_gateway",
            Self::Internal => "internal_error",
        }
    }

    /// The response: status, JSON body, and the headers an error of its kind carries
    /// (`Allow` for a 405, the rate-limit headers for a 429, a challenge for a 401, `Vary`
    /// for a CORS refusal).
    pub fn into_response(self) -> Response {
        let description = match &self {
            Self::InvalidRequest(why) | Self::HeadersTooLarge(why) => why.clone(),
            Self::UpstreamStatus(_) => Self::Internal.to_string(),
            other => other.to_string(),
        };
        let mut resp = match &self {
            // The list a reload report's readers look for, beside the usual two fields.
            Self::InvalidConfiguration(why) => Response::json(
                self.status(),
                &serde_json::json!({
                    "error": self.code(),
                    "error_description": why,
                    "errors": [why],
                }),
            ),
            _ => error_response(self.status(), self.code(), &description),
        };
        match self {
            Self::MethodNotAllowed { allow } => resp.headers.push(("allow", allow)),
            Self::TooManyRequests { headers } => resp.headers.extend(headers),
            Self::AdminTokenRequired => resp
                .headers
                .push(("www-authenticate", "Bearer realm=\"tollgate-admin\"".into())),
            Self::CrossOriginRefused => resp.headers.push(("vary", "Origin".into())),
            _ => {}
        }
        resp
    }

    /// The response as HTTP/1.1 bytes ending with the connection: for the connection layer,
    /// which answers before any HTTP machinery runs (a request head that missed its deadline).
    pub fn into_http1_bytes(self) -> Vec<u8> {
        let resp = self.into_response();
        let reason = http::StatusCode::from_u16(resp.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
        for (name, value) in &resp.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            resp.body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&resp.body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_errors_have_the_oauth_shape() {
        let r = GatewayError::MethodNotAllowed {
            allow: "GET, POST".into(),
        }
        .into_response();
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(body["error"], "method_not_allowed");
        let r = GatewayError::InvalidRequest("two credentials".into()).into_response();
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"error": "invalid_request", "error_description": "two credentials"})
        );
        assert_eq!(GatewayError::UpstreamStatus(503).status(), 503);
    }

    /// Every error the gateway writes itself, whatever path writes it, has the one shape:
    /// a JSON body with `error` and `error_description`, and the status its kind says.
    #[test]
    fn every_kind_has_the_one_shape() {
        let all = [
            (
                GatewayError::InvalidRequest("x".into()),
                400,
                "invalid_request",
            ),
            (GatewayError::UriTooLong(10), 414, "uri_too_long"),
            (
                GatewayError::HeadersTooLarge("x".into()),
                431,
                "request_header_fields_too_large",
            ),
            (GatewayError::NoRoute, 404, "not_found"),
            (
                GatewayError::MethodNotAllowed {
                    allow: "GET".into(),
                },
                405,
                "method_not_allowed",
            ),
            (GatewayError::UpstreamStatus(502), 502, "upstream_error"),
            (GatewayError::UpstreamTimeout, 504, "upstream_timeout"),
            (GatewayError::BadGateway, 502, "bad_gateway"),
            (GatewayError::UnreadableRequest, 400, "invalid_request"),
            (GatewayError::RequestTimeout, 408, "request_timeout"),
            (
                GatewayError::TooManyRequests { headers: vec![] },
                429,
                "too_many_requests",
            ),
            (GatewayError::CrossOriginRefused, 403, "invalid_request"),
            (GatewayError::AdminHostRefused, 403, "forbidden"),
            (GatewayError::AdminTokenRequired, 401, "invalid_token"),
            (
                GatewayError::InvalidConfiguration("routes[0]: bad".into()),
                400,
                "invalid_configuration",
            ),
            (GatewayError::Internal, 500, "internal_error"),
        ];
        for (e, status, code) in all {
            let r = e.clone().into_response();
            assert_eq!(r.status, status, "{e:?}");
            assert!(
                r.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json")),
                "{e:?}"
            );
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            assert_eq!(body["error"], code, "{e:?}");
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{e:?}: {body}"
            );
        }
        let r = GatewayError::AdminTokenRequired.into_response();
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tollgate-admin\"")
        );
    }

    #[test]
    fn the_connection_layer_writes_the_same_error() {
        let bytes = GatewayError::RequestTimeout.into_http1_bytes();
        let text = String::from_utf8(bytes).expect("UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(
            head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{head}"
        );
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["error"], "request_timeout");
    }
}
