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
            Self::InvalidRequest(_) | Self::UnreadableRequest => 400,
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
            Self::InvalidRequest(_) | Self::UnreadableRequest => "invalid_request",
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

    /// The response: status, JSON body, and `Allow` for a 405.
    pub fn into_response(self) -> Response {
        let description = match &self {
            Self::InvalidRequest(why) | Self::HeadersTooLarge(why) => why.clone(),
            Self::UpstreamStatus(_) => Self::Internal.to_string(),
            other => other.to_string(),
        };
        let mut resp = error_response(self.status(), self.code(), &description);
        match self {
            Self::MethodNotAllowed { allow } => resp.headers.push(("allow", allow)),
            Self::TooManyRequests { headers } => resp.headers.extend(headers),
            _ => {}
        }
        resp
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
}
