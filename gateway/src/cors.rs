//! CORS (the Fetch standard's cross-origin protocol) for browser clients: a preflight
//! (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here, and an
//! allowed origin's responses carry `Access-Control-Allow-Origin` naming that origin, never
//! `*`, with `Vary: Origin`. An origin not allowed gets no CORS header at all, so the browser
//! keeps the response from the page.
//!
//! Proxied routes have a policy each (`routes[].cors`); the OAuth endpoints follow each
//! client's `allowed_origins`.

use http::Method;
use pingora::http::RequestHeader;
use token_module::Response;

/// Headers a page may send without asking: not worth listing in a preflight answer.
const DEFAULT_ALLOWED_HEADERS: [&str; 2] = ["authorization", "content-type"];

/// Who may call, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins, lower case.
    pub origins: Vec<String>,
    /// `Access-Control-Allow-Methods`, e.g. `GET, POST`.
    pub methods: Vec<Method>,
    /// Request headers a page may send, lower case.
    pub headers: Vec<String>,
    /// Response headers a page may read beyond the safelisted ones.
    pub expose: Vec<String>,
    /// How long a browser may keep a preflight answer, seconds.
    pub max_age: u64,
    /// Let pages send cookies / HTTP authentication (`Access-Control-Allow-Credentials`).
    pub credentials: bool,
}

/// The `Origin` of a cross-origin request, if it has one.
pub fn origin(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// Whether `req` is a CORS preflight.
pub fn is_preflight(req: &RequestHeader) -> bool {
    req.method == Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl CorsPolicy {
    /// The policy of an OAuth endpoint: `origins`, `methods`, the two headers token
    /// requests use, no credentials (tokens travel in headers and bodies, not cookies).
    pub fn for_endpoint(origins: Vec<String>, methods: &[Method]) -> Self {
        Self {
            origins,
            methods: methods.to_vec(),
            headers: DEFAULT_ALLOWED_HEADERS.map(str::to_string).to_vec(),
            expose: Vec::new(),
            max_age: 600,
            credentials: false,
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// The answer to a preflight: 204 with the grant when the origin, the method and every
    /// requested header are allowed; 403 without CORS headers otherwise.
    pub fn preflight(&self, req: &RequestHeader) -> Response {
        let refuse = || crate::error::GatewayError::CrossOriginRefused.into_response();
        let Some(origin) = origin(req).filter(|o| self.allows(o)) else {
            return refuse();
        };
        let method = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok());
        if !method.is_some_and(|m| self.methods.contains(&m)) {
            return refuse();
        }
        let requested: Vec<String> = req
            .headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if requested.iter().any(|h| !self.headers.contains(h)) {
            return refuse();
        }
        let methods: Vec<&str> = self.methods.iter().map(Method::as_str).collect();
        let mut headers = self.grant(origin);
        headers.push(("access-control-allow-methods", methods.join(", ")));
        if !requested.is_empty() {
            headers.push(("access-control-allow-headers", requested.join(", ")));
        }
        headers.push(("access-control-max-age", self.max_age.to_string()));
        Response {
            status: 204,
            headers,
            body: Vec::new(),
        }
    }

    /// The headers of a response to `origin` (allowed): who may read it, and what.
    pub fn grant(&self, origin: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("access-control-allow-origin", origin.to_string()),
            ("vary", "Origin".to_string()),
        ];
        if self.credentials {
            headers.push(("access-control-allow-credentials", "true".into()));
        }
        if !self.expose.is_empty() {
            headers.push(("access-control-expose-headers", self.expose.join(", ")));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy::for_endpoint(vec!["https://app.example".into()], &[Method::POST])
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> RequestHeader {
        let mut req =
            RequestHeader::build(Method::OPTIONS, b"/oauth2/token", None).expect("request");
        req.insert_header("origin", origin).expect("header");
        req.insert_header("access-control-request-method", method)
            .expect("header");
        if !headers.is_empty() {
            req.insert_header("access-control-request-headers", headers)
                .expect("header");
        }
        req
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn an_allowed_preflight_names_its_origin() {
        let r = policy().preflight(&preflight("https://app.example", "POST", "Content-Type"));
        assert_eq!(r.status, 204);
        assert_eq!(
            header(&r, "access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(header(&r, "access-control-allow-methods"), Some("POST"));
        assert_eq!(
            header(&r, "access-control-allow-headers"),
            Some("content-type")
        );
        assert_eq!(header(&r, "access-control-allow-credentials"), None);
    }

    #[test]
    fn anything_else_gets_no_cors_header() {
        for req in [
            preflight("https://evil.example", "POST", ""),
            preflight("https://app.example", "DELETE", ""),
            preflight("https://app.example", "POST", "x-secret"),
            preflight("null", "POST", ""),
        ] {
            let r = policy().preflight(&req);
            assert_eq!(r.status, 403);
            assert!(
                r.headers
                    .iter()
                    .all(|(n, _)| !n.starts_with("access-control")),
                "{r:?}"
            );
        }
    }
}
