//! OAuth errors and the one place that turns them into HTTP status, headers and JSON body.

use crate::response::Response;

/// Why a token request failed. Each variant's doc quotes RFC 6749 5.2 (or says what else it
/// is); [`OAuthError::code`] is the `error` value the client sees. Internal causes (a store
/// outage, a signing failure) are logged where they happen and never reach the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthError {
    /// "The request is missing a required parameter, includes an unsupported parameter value
    /// (other than grant type), repeats a parameter, includes multiple credentials, utilizes
    /// more than one mechanism for authenticating the client, or is otherwise malformed."
    InvalidRequest(String),
    /// "Client authentication failed (e.g., unknown client, no client authentication
    /// included, or unsupported authentication method)." 401; `basic` adds
    /// `WWW-Authenticate: Basic` because the client tried Basic.
    InvalidClient { basic: bool },
    /// "The provided authorization grant (e.g., authorization code, resource owner
    /// credentials) or refresh token is invalid, expired, revoked, does not match the
    /// redirection URI used in the authorization request, or was issued to another client."
    InvalidGrant(String),
    /// "The authenticated client is not authorized to use this authorization grant type."
    UnauthorizedClient(String),
    /// "The authorization grant type is not supported by the authorization server."
    UnsupportedGrantType(String),
    /// "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by
    /// the resource owner."
    InvalidScope(String),
    /// Not in RFC 6749: too many failed authentications for this client, user or address
    /// (the brute-force protection RFC 6749 10.10 requires). 429 with `Retry-After`.
    TooManyAttempts { retry_after_secs: u64 },
    /// RFC 6749 4.1.2.1's `temporarily_unavailable`: the store did not answer. 503.
    TemporarilyUnavailable,
    /// RFC 6749 4.1.2.1's `server_error`: something failed inside the gateway. 500.
    ServerError,
    /// The endpoint takes only `allow`. 405 with `Allow`.
    MethodNotAllowed { allow: &'static str },
    /// The body exceeds `limit` bytes. 413.
    PayloadTooLarge { limit: usize },
}

impl OAuthError {
    /// The wire `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::MethodNotAllowed { .. }
            | OAuthError::PayloadTooLarge { .. } => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::TooManyAttempts { .. } => "too_many_attempts",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::ServerError => "server_error",
        }
    }

    /// A description for humans; never holds a secret or tells whether a user exists.
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d) => d.clone(),
            OAuthError::InvalidClient { .. } => "client authentication failed".into(),
            OAuthError::TooManyAttempts { retry_after_secs } => {
                format!("too many failed attempts; retry in {retry_after_secs} seconds")
            }
            OAuthError::TemporarilyUnavailable => {
                "the authorization server is temporarily unavailable; retry later".into()
            }
            OAuthError::ServerError => {
                "the authorization server failed to handle the request".into()
            }
            OAuthError::MethodNotAllowed { allow } => format!("this endpoint accepts only {allow}"),
            OAuthError::PayloadTooLarge { limit } => {
                format!("the request body exceeds {limit} bytes")
            }
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidClient { .. } => 401,
            OAuthError::MethodNotAllowed { .. } => 405,
            OAuthError::PayloadTooLarge { .. } => 413,
            OAuthError::TooManyAttempts { .. } => 429,
            OAuthError::ServerError => 500,
            OAuthError::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }

    /// The complete RFC 6749 5.2 error response: the only mapping from error to the wire.
    pub fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": self.code(), "error_description": self.description() });
        let mut resp = Response::json(self.status(), &body);
        match self {
            OAuthError::InvalidClient { basic: true } => {
                resp.headers
                    .push(("www-authenticate", "Basic realm=\"tollgate\"".into()));
            }
            OAuthError::TooManyAttempts { retry_after_secs } => {
                resp.headers
                    .push(("retry-after", retry_after_secs.to_string()));
            }
            OAuthError::TemporarilyUnavailable => resp.headers.push(("retry-after", "1".into())),
            OAuthError::MethodNotAllowed { allow } => resp.headers.push(("allow", allow.into())),
            _ => {}
        }
        resp
    }
}

impl From<crate::StoreError> for OAuthError {
    fn from(e: crate::StoreError) -> Self {
        tracing::warn!(error = %e, "store call failed during an OAuth request");
        OAuthError::TemporarilyUnavailable
    }
}
