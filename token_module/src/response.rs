//! What an endpoint answers, independent of any HTTP library: status, headers and body.

/// A complete response for the gateway to write.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    /// Bodies carry tokens: only the status and header names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &names)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// A JSON response that no cache may keep (RFC 6749 5.1 requires it for tokens).
    pub fn json(status: u16, body: &impl serde::Serialize) -> Self {
        let (status, body) = json_body(status, body);
        Self {
            status,
            headers: vec![
                ("content-type", "application/json;charset=UTF-8".into()),
                ("cache-control", "no-store".into()),
                ("pragma", "no-cache".into()),
            ],
            body,
        }
    }

    /// A JSON document anyone may cache for `max_age` seconds (discovery, JWKS).
    pub fn json_public(status: u16, body: &impl serde::Serialize, max_age: u64) -> Self {
        let (status, body) = json_body(status, body);
        Self {
            status,
            headers: vec![
                ("content-type", "application/json;charset=UTF-8".into()),
                ("cache-control", format!("public, max-age={max_age}")),
            ],
            body,
        }
    }

    /// An HTML page that must not be cached or framed.
    pub fn html(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "text/html;charset=UTF-8".into()),
                ("cache-control", "no-store".into()),
                ("pragma", "no-cache".into()),
                ("x-frame-options", "DENY".into()),
                ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'".into()),
                ("referrer-policy", "no-referrer".into()),
            ],
            body: body.into_bytes(),
        }
    }

    /// A 302 redirect.
    pub fn redirect(location: String) -> Self {
        Self {
            status: 302,
            headers: vec![("location", location), ("cache-control", "no-store".into())],
            body: Vec::new(),
        }
    }

    /// Replaces every header called `name` with one of `value`.
    pub fn set_header(&mut self, name: &'static str, value: String) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value));
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `status` and `body` as JSON bytes, written straight into a buffer (`Value`'s `Display`
/// goes through a formatter, a call per token). What the endpoints answer always serializes;
/// were it not to, the client gets a 500 `server_error`, not an empty or partial body.
fn json_body(status: u16, body: &impl serde::Serialize) -> (u16, Vec<u8>) {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(e) => {
            tracing::error!(error = %e, "a response body did not serialize");
            (
                500,
                br#"{"error":"server_error","error_description":"the answer could not be written"}"#
                    .to_vec(),
            )
        }
    }
}

/// `uri` with `pairs` appended to its query, form-encoded.
pub(crate) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

/// Text made safe for HTML content and attribute values.
pub(crate) fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#x27;".to_string(),
            c => c.to_string(),
        })
        .collect()
}
