//! RFC 6750: reading a bearer token from a request and answering when it is missing, invalid
//! or lacks scope.

use crate::response::Response;

/// The realm in `WWW-Authenticate` challenges.
pub const REALM: &str = "tollgate";

/// Why no usable bearer token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: 401 with a bare challenge (RFC 6750 3.1: no error code).
    Missing,
    /// Malformed request, e.g. a token both in the header and the query: 400.
    InvalidRequest(&'static str),
    /// 401 `invalid_token`.
    InvalidToken(&'static str),
    /// 403 `insufficient_scope`, naming the scopes needed.
    InsufficientScope(String),
    /// The store was needed and did not answer: 503.
    Unavailable,
}

/// Finds the bearer token: `Authorization: Bearer …` (scheme case-insensitive) or, where
/// `allow_query`, an `access_token` query parameter; never both.
pub fn extract(
    authorization: Option<&str>,
    query: Option<&str>,
    allow_query: bool,
) -> Result<String, BearerError> {
    let from_header = match authorization {
        Some(value) => match value.trim().split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Some(token.trim().to_string())
            }
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("bearer") => {
                return Err(BearerError::InvalidToken("the bearer token is empty"))
            }
            _ => None,
        },
        None => None,
    };
    let mut from_query = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k == "access_token" {
            if from_query.is_some() {
                return Err(BearerError::InvalidRequest("access_token is repeated"));
            }
            from_query = Some(v.into_owned());
        }
    }
    match (from_header, from_query) {
        (Some(_), Some(_)) => Err(BearerError::InvalidRequest(
            "the token was sent both in the header and the query",
        )),
        (None, Some(_)) if !allow_query => Err(BearerError::InvalidRequest(
            "send the access token in the Authorization header, not the URL",
        )),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(BearerError::Missing),
    }
}

fn quote(s: &str) -> String {
    s.replace(['"', '\\'], "")
}

impl BearerError {
    /// The RFC 6750 response: status, `WWW-Authenticate`, and a JSON body.
    pub fn into_response(self) -> Response {
        let (status, challenge, body) = match &self {
            BearerError::Missing => (401, format!("Bearer realm=\"{REALM}\""), None),
            BearerError::InvalidRequest(d) => (
                400,
                format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_request\", error_description=\"{}\"",
                    quote(d)
                ),
                Some(("invalid_request", d.to_string())),
            ),
            BearerError::InvalidToken(d) => (
                401,
                format!(
                    "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                    quote(d)
                ),
                Some(("invalid_token", d.to_string())),
            ),
            BearerError::InsufficientScope(scope) => (
                403,
                format!(
                    "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
                    quote(scope)
                ),
                Some((
                    "insufficient_scope",
                    format!("the token lacks the scope `{scope}`"),
                )),
            ),
            BearerError::Unavailable => {
                let err = crate::OAuthError::TemporarilyUnavailable;
                return err.into_response();
            }
        };
        let json = match body {
            Some((code, description)) => {
                serde_json::json!({ "error": code, "error_description": description })
            }
            None => {
                serde_json::json!({ "error": "unauthorized", "error_description": "a bearer token is required" })
            }
        };
        let mut resp = Response::json(status, &json);
        resp.headers.push(("www-authenticate", challenge));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_in_one_place_only() {
        assert_eq!(extract(Some("Bearer abc"), None, false), Ok("abc".into()));
        assert_eq!(extract(Some("bEaReR abc"), None, false), Ok("abc".into()));
        assert_eq!(
            extract(None, Some("x=1&access_token=q"), true),
            Ok("q".into())
        );
        assert_eq!(extract(None, None, true), Err(BearerError::Missing));
        assert_eq!(
            extract(Some("Basic abc"), None, true),
            Err(BearerError::Missing)
        );
        for allow_query in [true, false] {
            assert!(matches!(
                extract(Some("Bearer a"), Some("access_token=b"), allow_query),
                Err(BearerError::InvalidRequest(_))
            ));
        }
        assert!(matches!(
            extract(None, Some("access_token=b"), false),
            Err(BearerError::InvalidRequest(_))
        ));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
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
        assert!(r
            .header("www-authenticate")
            .is_some_and(|h| h.contains("error=\"invalid_token\"")));
    }
}
