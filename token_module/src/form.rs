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
        if !s.contains(['%', '+']) {
            return Some(s.to_string());
        }
        // One value decoded whole: a raw `&` is itself, not the end of a form parameter.
        form_urlencoded::parse(format!("x={}", s.replace('&', "%26")).as_bytes())
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
mod tests;
