//! Every error a client of Tollgate sees, and the one place that renders each: the JSON error
//! body (RFC 6749 5.2, also used by the gateway's own errors), the bearer challenge (RFC 6750
//! 3), the Basic challenge, and the authorization endpoint's error redirect (RFC 6749
//! 4.1.2.1) and error page. A new error is one variant and one match arm here.

use crate::response::{html_escape, Response};
use crate::validate::Rejection;

/// The realm of every `WWW-Authenticate` challenge.
pub const REALM: &str = "tollgate";

/// `{"error": code, "error_description": description}`: the body of every JSON error.
pub fn error_body(code: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "error": code, "error_description": description })
}

/// A JSON error response (not cacheable) with `status`.
pub fn error_response(status: u16, code: &str, description: &str) -> Response {
    Response::json(status, &error_body(code, description))
}

/// The `WWW-Authenticate` value asking for HTTP Basic credentials.
fn basic_challenge() -> String {
    format!("Basic realm=\"{REALM}\"")
}

/// Why a token request failed. Each variant's doc quotes RFC 6749 5.2 (or says what else it
/// is); [`OAuthError::code`] is the `error` value the client sees. Internal causes (a store
/// outage, a signing failure) are logged where they happen and never reach the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.code(), self.description())]
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
    /// RFC 8707 2: the `resource` is not one this server issues tokens for.
    InvalidTarget(String),
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
            OAuthError::InvalidTarget(_) => "invalid_target",
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
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d) => d.clone(),
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
        let mut resp = error_response(self.status(), self.code(), &self.description());
        match self {
            OAuthError::InvalidClient { basic: true } => {
                resp.headers.push(("www-authenticate", basic_challenge()));
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

/// RFC 6750: why no usable bearer token was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No credentials: 401 with a bare challenge (RFC 6750 3.1: no error code).
    #[error("a bearer token is required")]
    Missing,
    /// Malformed request, e.g. a token both in the header and the query: 400.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// 401 `invalid_token`.
    #[error("invalid_token: {0}")]
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`, naming the scopes needed.
    #[error("insufficient_scope: {0}")]
    InsufficientScope(String),
    /// The store was needed and did not answer: 503.
    #[error("the token store is unavailable")]
    Unavailable,
}

impl From<Rejection> for BearerError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Invalid(why) => BearerError::InvalidToken(why),
            Rejection::StoreUnavailable => BearerError::Unavailable,
        }
    }
}

/// A challenge parameter value: quotes and backslashes dropped (they cannot be escaped
/// portably).
fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "")
}

impl BearerError {
    /// The RFC 6750 response: status, `WWW-Authenticate`, and a JSON body.
    pub fn into_response(self) -> Response {
        let (status, code, description) = match &self {
            BearerError::Missing => (401, None, "a bearer token is required".to_string()),
            BearerError::InvalidRequest(d) => (400, Some("invalid_request"), d.to_string()),
            BearerError::InvalidToken(d) => (401, Some("invalid_token"), d.to_string()),
            BearerError::InsufficientScope(scope) => (
                403,
                Some("insufficient_scope"),
                format!("the token lacks the scope `{scope}`"),
            ),
            BearerError::Unavailable => return OAuthError::TemporarilyUnavailable.into_response(),
        };
        let challenge = match (&self, code) {
            (BearerError::InsufficientScope(scope), Some(code)) => format!(
                "Bearer realm=\"{REALM}\", error=\"{code}\", scope=\"{}\"",
                quote(scope)
            ),
            (_, Some(code)) => format!(
                "Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{}\"",
                quote(&description)
            ),
            (_, None) => format!("Bearer realm=\"{REALM}\""),
        };
        let mut resp = error_response(status, code.unwrap_or("unauthorized"), &description);
        resp.headers.push(("www-authenticate", challenge));
        resp
    }
}

/// An authorization request that failed after its client and redirect URI were found good:
/// the error goes back to the client (RFC 6749 4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct AuthorizeError {
    pub code: &'static str,
    pub description: String,
}

impl AuthorizeError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// What the client is told: the error, its description and the request's `state`.
    pub fn pairs<'a>(&'a self, state: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut pairs = vec![
            ("error", self.code),
            ("error_description", self.description.as_str()),
        ];
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        pairs
    }

    /// The redirect to `redirect_uri` carrying the error and the request's `state`.
    pub fn into_redirect(self, redirect_uri: &str, state: Option<&str>) -> Response {
        Response::redirect(crate::response::append_query(
            redirect_uri,
            &self.pairs(state),
        ))
    }
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        Self::new(e.code(), e.description())
    }
}

/// A page shown when an authorization request cannot be sent back to the client (unknown
/// client or redirect URI): RFC 6749 4.1.2.1 forbids redirecting then.
fn error_page(status: u16, message: &str) -> Response {
    Response::html(
        status,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Authorization error</title></head>\
             <body><h1>Authorization error</h1><p>{}</p></body></html>",
            html_escape(message)
        ),
    )
}

/// The pages the authorization and logout endpoints show the user instead of redirecting
/// (the client or its redirect URI is not known good, or the answer could not be made).
pub struct PageError;

impl PageError {
    /// 400: the request cannot be answered to its client.
    pub fn bad_request(message: &str) -> Response {
        error_page(400, message)
    }

    /// 403: a form that did not come from the page this server showed (its CSRF token
    /// does not match).
    pub fn forged_form(message: &str) -> Response {
        error_page(403, message)
    }

    /// 500: the page, or the answer to the client, could not be produced.
    pub fn internal(message: &str) -> Response {
        error_page(500, message)
    }
}

/// HTTP Basic sign-in at the authorization endpoint failed: 401 asking again.
pub fn sign_in_failed() -> Response {
    let mut resp = error_page(401, "Sign-in failed.");
    resp.headers.push(("www-authenticate", basic_challenge()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_follow_rfc_6750() {
        let r = BearerError::Missing.into_response();
        assert_eq!(
            (r.status, r.header("www-authenticate")),
            (401, Some("Bearer realm=\"tollgate\""))
        );
        let r = BearerError::InsufficientScope("petstore.w".into()).into_response();
        assert_eq!(r.status, 403);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tollgate\", error=\"insufficient_scope\", scope=\"petstore.w\"")
        );
        let r = BearerError::InvalidToken("expired").into_response();
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"expired\""
            )
        );
        assert_eq!(BearerError::Unavailable.into_response().status, 503);
        assert_eq!(
            BearerError::from(Rejection::StoreUnavailable),
            BearerError::Unavailable
        );
    }

    #[test]
    fn every_json_error_has_one_shape() {
        let r = OAuthError::InvalidClient { basic: true }.into_response();
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"tollgate\"")
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert_eq!(
            body,
            error_body("invalid_client", "client authentication failed")
        );
        let r =
            AuthorizeError::new("access_denied", "no").into_redirect("https://c/cb?x=1", Some("s"));
        assert_eq!(
            r.header("location"),
            Some("https://c/cb?x=1&error=access_denied&error_description=no&state=s")
        );
        assert_eq!(
            OAuthError::ServerError.to_string(),
            "server_error: the authorization server failed to handle the request"
        );
    }
}
