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
    use proptest::prelude::*;

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

    /// The characters of token68 (RFC 6750 2.1), before any `=`.
    const TOKEN68: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

    /// `Authorization: Bearer <token68>` as RFC 6750 2.1 has it, written apart from the
    /// parser as a state machine: optional whitespace (RFC 9110 5.5: not part of the
    /// field value), `Bearer` in any case, one or more spaces, token68, optional
    /// whitespace. The token when `value` is exactly that.
    fn grammar(value: &str) -> Option<&str> {
        #[derive(Clone, Copy)]
        enum At {
            Lead,
            Scheme(usize),
            Gap,
            Body(usize),
            Padding(usize),
            Trail(usize, usize),
        }
        let mut at = At::Lead;
        for (i, c) in value.bytes().enumerate() {
            let ows = c == b' ' || c == b'\t';
            at = match at {
                At::Lead if ows => At::Lead,
                At::Lead | At::Scheme(_) => {
                    let k = if let At::Scheme(k) = at { k } else { 0 };
                    match b"bearer".get(k) {
                        Some(&want) if c.to_ascii_lowercase() == want => At::Scheme(k + 1),
                        None if c == b' ' => At::Gap,
                        _ => return None,
                    }
                }
                At::Gap if c == b' ' => At::Gap,
                At::Gap if TOKEN68.contains(&c) => At::Body(i),
                At::Body(start) if TOKEN68.contains(&c) => At::Body(start),
                At::Body(start) | At::Padding(start) if c == b'=' => At::Padding(start),
                At::Body(start) | At::Padding(start) if ows => At::Trail(start, i),
                At::Trail(start, end) if ows => At::Trail(start, end),
                _ => return None,
            };
        }
        match at {
            At::Body(start) | At::Padding(start) => Some(&value[start..]),
            At::Trail(start, end) => Some(&value[start..end]),
            _ => None,
        }
    }

    fn token68() -> impl Strategy<Value = String> {
        let body = proptest::collection::vec(proptest::sample::select(TOKEN68), 1..40);
        (body, 0usize..4).prop_map(|(body, padding)| {
            String::from_utf8(body).expect("ASCII") + &"=".repeat(padding)
        })
    }

    /// A well-formed credential: its header value and its token.
    fn credential() -> impl Strategy<Value = (String, String)> {
        let ows = || proptest::sample::select(vec!["", " ", "\t", " \t "]);
        let scheme = proptest::collection::vec(any::<bool>(), 6).prop_map(|upper| {
            "bearer"
                .chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect::<String>()
        });
        (ows(), scheme, 1usize..4, token68(), ows()).prop_map(
            |(lead, scheme, gap, token, trail)| {
                let value = format!("{lead}{scheme}{}{token}{trail}", " ".repeat(gap));
                (value, token)
            },
        )
    }

    /// Strings near the grammar: a well-formed credential with a few characters put in,
    /// changed or taken out, or pieces of credentials and of other schemes run together.
    fn near_miss() -> impl Strategy<Value = String> {
        let odd = proptest::sample::select(vec![
            ' ', '\t', '=', ',', '"', ':', ';', '\u{b}', '\u{a0}', '\u{3000}', '\0', '\n', 'é',
            'a', 'R', '~', '/', '+', '%', '\\',
        ]);
        let edits = proptest::collection::vec((any::<usize>(), 0u8..3, odd), 1..4);
        let edited = (credential(), edits).prop_map(|((value, _), edits)| {
            let mut chars: Vec<char> = value.chars().collect();
            for (at, op, c) in edits {
                let at = at % (chars.len() + 1);
                match op {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => chars[at] = c,
                    _ if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ => {}
                }
            }
            chars.into_iter().collect::<String>()
        });
        let piece = proptest::sample::select(vec![
            "Bearer", "bearer", "BEARER", "Bearer\t", "Bearers", "Bear", "Basic", "DPoP", "Token",
            " ", "  ", "\t", "=", "==", "abc", "a.b-c_d", "~+/", ",", "\"", "é", "\u{b}", "%20",
            "",
        ]);
        let joined = proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat());
        // Short tokens: empty, padding only, a character short of token68.
        let short = (
            proptest::sample::select(vec!["Bearer ", "bearer  ", "Bearer\t", "Bearer"]),
            proptest::collection::vec(
                proptest::sample::select(vec!['=', 'a', '~', ' ', '\t', ',', '"', 'é']),
                0..4,
            ),
        )
            .prop_map(|(scheme, token)| format!("{scheme}{}", String::from_iter(token)));
        prop_oneof![edited, joined, short]
    }

    proptest! {
        /// Any `Authorization` and query: an answer, never a panic.
        #[test]
        fn no_header_makes_extract_panic(
            authorization in proptest::option::of(any::<String>()),
            query in proptest::option::of(any::<String>()),
            allow_query in any::<bool>(),
        ) {
            let _ = extract(authorization.as_deref(), query.as_deref(), allow_query);
            let _ = authorization.as_deref().map(bearer_token);
        }

        /// Every well-formed credential, the scheme in any case, is taken and yields
        /// exactly its token (`=` padding included); with a token in the query as well it
        /// is refused.
        #[test]
        fn every_well_formed_credential_yields_its_token((value, token) in credential()) {
            prop_assert_eq!(grammar(&value), Some(token.as_str()), "the grammar: {:?}", value);
            prop_assert_eq!(bearer_token(&value), Some(token.as_str()), "{:?}", value);
            for allow_query in [false, true] {
                prop_assert_eq!(extract(Some(&value), None, allow_query), Ok(token.clone()));
                prop_assert!(matches!(
                    extract(Some(&value), Some("access_token=x"), allow_query),
                    Err(BearerError::InvalidRequest(_))
                ));
            }
        }

        /// What is taken is exactly the grammar: anything else (a tab or other character
        /// between scheme and token, another scheme, an empty token, a character outside
        /// token68, `=` before the end, a second word) is refused as `invalid_request`,
        /// never taken for "no token".
        #[test]
        fn only_the_grammar_is_taken(value in near_miss()) {
            let want = grammar(&value);
            prop_assert_eq!(bearer_token(&value), want, "{:?}", value);
            let got = extract(Some(&value), None, true);
            match want {
                Some(token) => prop_assert_eq!(got, Ok(token.to_string())),
                None => prop_assert!(
                    matches!(got, Err(BearerError::InvalidRequest(_))),
                    "{:?} gave {:?}", value, got
                ),
            }
        }
    }
}
