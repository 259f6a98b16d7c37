//! Parsing what a token or authorization request carries: form parameters (RFC 6749 3.2:
//! repeated parameters are errors, empty ones count as absent) and client credentials from
//! HTTP Basic (RFC 6749 2.3.1, plus the raw `Basic id:secret` form light-oauth2 sends).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::error::OAuthError;

/// Decoded form parameters, each present at most once and never empty.
#[derive(Default)]
pub struct Params(HashMap<String, String>);

impl std::fmt::Debug for Params {
    /// Names only: values may be secrets, codes or tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Whether a `Content-Type` is `application/x-www-form-urlencoded` (parameters such as a
/// charset allowed).
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl Params {
    /// Parses the body of a form POST, refusing any other content type (RFC 6749 3.2).
    pub fn from_form_body(content_type: Option<&str>, body: &[u8]) -> Result<Self, OAuthError> {
        if !is_form(content_type) {
            return Err(OAuthError::InvalidRequest(
                "the body must be application/x-www-form-urlencoded".into(),
            ));
        }
        Self::parse(body)
    }

    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if map.contains_key(name.as_ref()) {
                return Err(OAuthError::InvalidRequest(format!(
                    "the parameter `{name}` is repeated"
                )));
            }
            map.insert(name.into_owned(), value.into_owned());
        }
        map.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("the parameter `{name}` is missing")))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Credentials from an `Authorization: Basic` header.
pub struct BasicCredentials {
    pub id: String,
    pub secret: String,
}

/// Parses `Basic <base64(urlenc(id):urlenc(secret))>` (RFC 6749 2.3.1) or the raw
/// `Basic id:secret` that light-oauth2 clients send. A base64 value never holds `:`, so the
/// two cannot be confused. Returns `None` when the header is not Basic at all.
pub fn basic_credentials(header: &str) -> Option<Result<BasicCredentials, OAuthError>> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let value = value.trim();
    let bad = || OAuthError::InvalidRequest("malformed Basic credentials".into());
    let decoded = if value.contains(':') {
        value.to_string()
    } else {
        match B64
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(s) => s,
            None => return Some(Err(bad())),
        }
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return Some(Err(bad()));
    };
    let unescape = |s: &str| {
        // Most credentials hold nothing form-encoding changes: taken as they are.
        if !s.contains(['%', '+', '&']) {
            return Some(s.to_string());
        }
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    match (unescape(id), unescape(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Some(Ok(BasicCredentials { id, secret })),
        _ => Some(Err(bad())),
    }
}

/// The client a token, revoke or introspect request names, before anything is checked: the
/// Basic credentials' id, else the form's `client_id`. For counting requests per client;
/// who the client really is, authentication decides.
pub fn named_client(
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<String> {
    if let Some(Ok(basic)) = authorization.and_then(basic_credentials) {
        return Some(basic.id);
    }
    let params = Params::from_form_body(content_type, body).ok()?;
    params.get("client_id").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_errors_and_empty_ones_absent() {
        assert!(Params::parse(b"a=1&a=2").is_err());
        let p = Params::parse(b"a=1&b=&c=x%20y+z").expect("parse");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y z"));
        assert!(!format!("{p:?}").contains('1'), "Debug shows no values");
    }

    #[test]
    fn basic_credentials_in_both_forms() {
        let raw =
            basic_credentials("Basic f7d42348-c647-4efb-a52d-4c5787421e72:f6h1FTI8Q3-7UScPZDzfXA")
                .expect("basic")
                .expect("valid");
        assert_eq!(raw.id, "f7d42348-c647-4efb-a52d-4c5787421e72");
        assert_eq!(raw.secret, "f6h1FTI8Q3-7UScPZDzfXA");
        // RFC 6749 2.3.1: the id and secret are form-urlencoded before base64.
        let encoded = B64.encode("my%3Aclient:p%40ss+word");
        let rfc = basic_credentials(&format!("basic {encoded}"))
            .expect("basic")
            .expect("valid");
        assert_eq!(
            (rfc.id.as_str(), rfc.secret.as_str()),
            ("my:client", "p@ss word")
        );
        let plus = basic_credentials(&format!("Basic {}", B64.encode("client:pass+word")))
            .expect("basic")
            .expect("valid");
        assert_eq!(plus.secret, "pass word");
        assert!(basic_credentials("Bearer abc").is_none());
        assert!(basic_credentials("Basic !!!").expect("basic").is_err());
        assert!(
            basic_credentials(&format!("Basic {}", B64.encode("nocolon")))
                .expect("basic")
                .is_err()
        );
    }
}
