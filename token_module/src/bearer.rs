//! RFC 6750: reading a bearer token from a request. Its errors and their responses live in
//! [`crate::error`].

pub use crate::error::{BearerError, REALM};

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
}
