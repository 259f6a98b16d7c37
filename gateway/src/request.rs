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

/// Every `Cookie` field of the request as one list: an HTTP/2 client (Chromium) sends each
/// cookie in a field of its own (RFC 9113 8.2.3), so the first field alone may miss the one
/// asked for.
pub fn cookies(session: &Session) -> Option<std::borrow::Cow<'_, str>> {
    let mut fields = session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = fields.next()?;
    match fields.next() {
        None => Some(std::borrow::Cow::Borrowed(first)),
        Some(second) => {
            let mut all = format!("{first}; {second}");
            for more in fields {
                all.push_str("; ");
                all.push_str(more);
            }
            Some(std::borrow::Cow::Owned(all))
        }
    }
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
