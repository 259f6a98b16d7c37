//! RFC 6750: reading a bearer token from a request. Its errors and their responses live in
//! [`crate::error`].

pub use crate::error::{BearerError, REALM};

/// Finds the bearer token: `Authorization: Bearer <token68>` (RFC 6750 2.1: the scheme in
/// any case, one or more spaces, then the token) or, where `allow_query`, an `access_token`
/// query parameter; never both. An `Authorization` header of any other form is refused
/// (`invalid_request`), not taken for "no token": an upstream that read it its own way
/// (split on any whitespace, another scheme) would act on a credential nobody checked.
pub fn extract(
    authorization: Option<&str>,
    query: Option<&str>,
    allow_query: bool,
) -> Result<String, BearerError> {
    let from_header = match authorization {
        Some(value) => Some(bearer_token(value).ok_or(BearerError::InvalidRequest(
            "the Authorization header is not `Bearer <token>`",
        ))?),
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
        (Some(t), None) => Ok(t.to_string()),
        (None, Some(t)) => Ok(t),
        (None, None) => Err(BearerError::Missing),
    }
}

/// The token of `Bearer <token68>`, if `value` is exactly that.
fn bearer_token(value: &str) -> Option<&str> {
    // A field value's surrounding whitespace is not part of it (RFC 9110 5.5).
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    token68.then_some(token)
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
            extract(Some("Bearer  a.b-c_d~e+f/g=="), None, false),
            Ok("a.b-c_d~e+f/g==".into())
        );
        for malformed in [
            "Basic abc",
            "Bearer",
            "Bearer\tabc",
            "Bearer\u{b}abc",
            "Bearer abc def",
            "Bearer abc,def",
            "Bearer =abc",
            "Bearer ===",
            "Bearerabc",
            "Bearer a\"b",
            "Token abc",
        ] {
            assert!(
                matches!(
                    extract(Some(malformed), None, true),
                    Err(BearerError::InvalidRequest(_))
                ),
                "{malformed:?}"
            );
        }
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
}
