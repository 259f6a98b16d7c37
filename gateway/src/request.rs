//! What the gateway reads off a downstream request, shared by the proxy and the OAuth
//! endpoints.

use std::net::IpAddr;

use pingora::proxy::Session;

/// The value of request header `name`, if present and visible ASCII.
pub fn header(session: &Session, name: impl http::header::AsHeaderName) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// The client's IP address (none for a Unix socket).
pub fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Whether the request came over TLS.
pub fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}
