//! What the upstream is told about the client (`server.upstream_forwarded_header`):
//! `X-Forwarded-For` and `X-Forwarded-Proto` (the default), one RFC 7239 `Forwarded`
//! header, or nothing. Headers of the styles the gateway does not write are removed, so an
//! upstream that reads one of them cannot be told something the gateway did not vouch for.
//! Each added header costs a proxied request about 3 % of a bare Pingora request (see the
//! README's Performance section), so an operator whose upstreams read one header, or none,
//! can say so.

use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// The forwarding headers as written on the wire: Pingora keeps a static name as it is,
/// where it would copy an `http::HeaderName` for each request.
const X_FORWARDED_FOR: &str = "X-Forwarded-For";
const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
const FORWARDED: &str = "Forwarded";
/// The same names to look up: a `&str` would be parsed into a name on every lookup.
static X_FORWARDED_FOR_NAME: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO_NAME: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Which forwarding headers the upstream gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamForwarded {
    /// `X-Forwarded-For` (the client's address appended to what came) and
    /// `X-Forwarded-Proto`; a `Forwarded` that came is removed.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=…;proto=…` (RFC 7239), appended to what came when that is well
    /// formed; `X-Forwarded-For` and `X-Forwarded-Proto` that came are removed.
    Forwarded,
    /// None: every forwarding header that came is removed.
    None,
}

/// Headers frameworks read to override a request's method or path (`X-HTTP-Method-Override:
/// DELETE` on a `POST`, `X-Original-URL: /admin` on a public path): the upstream would act on
/// what Tollgate never matched nor authorized. Removed unless a route keeps them.
pub static MEANING_CHANGERS: [HeaderName; 5] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// What a proxy in front says about the client's request; believed only from trusted
/// proxies, removed from anyone else's requests.
static PROXY_ASSERTIONS: [HeaderName; 4] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-real-ip"),
];

/// Removes the [`MEANING_CHANGERS`] a route does not `keep`.
pub fn strip_meaning_changers(req: &mut RequestHeader, keep: &[HeaderName]) {
    for name in &MEANING_CHANGERS {
        if !keep.contains(name) && req.headers.contains_key(name) {
            req.remove_header(name);
        }
    }
}

/// Sets the forwarding headers `style` names on a request from `peer` (the connection's
/// peer: the client, or a proxy in front of it) that arrived over `proto`, and removes the
/// others. What came in forwarding headers is kept (and appended to) only from a
/// `trusted` peer: a client's own `X-Forwarded-For` entries, `X-Forwarded-Host`,
/// `X-Forwarded-Port`, `X-Forwarded-Prefix` and `X-Real-IP` are removed.
pub fn add(
    style: UpstreamForwarded,
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    trusted: bool,
    proto: &'static str,
) -> Result<()> {
    // An IPv4 client of a dual-stack listener is written as IPv4 in either style.
    let peer = peer.map(|ip| ip.to_canonical());
    if !trusted {
        for name in PROXY_ASSERTIONS
            .iter()
            .chain([&X_FORWARDED_FOR_NAME, &http::header::FORWARDED])
        {
            if req.headers.contains_key(name) {
                req.remove_header(name);
            }
        }
    }
    match style {
        UpstreamForwarded::XForwardedFor => {
            req.remove_header(&http::header::FORWARDED);
            if let Some(ip) = peer {
                let value = match earlier(req, &X_FORWARDED_FOR_NAME, |_| true) {
                    Some(earlier) => header_value(format!("{earlier}, {ip}"))?,
                    None => forwarded_for(ip),
                };
                req.insert_header(X_FORWARDED_FOR, value)?;
            }
            req.insert_header(X_FORWARDED_PROTO, HeaderValue::from_static(proto))?;
        }
        UpstreamForwarded::Forwarded => {
            req.remove_header(&X_FORWARDED_FOR_NAME);
            req.remove_header(&X_FORWARDED_PROTO_NAME);
            let element = forwarded_element(peer, proto);
            // A line that does not parse (an unclosed quote, say) could swallow this hop's
            // element for the upstream's parser: it is dropped.
            let value = match earlier(req, &http::header::FORWARDED, well_formed_forwarded) {
                Some(earlier) => format!("{earlier}, {element}"),
                None => element,
            };
            req.insert_header(FORWARDED, header_value(value)?)?;
        }
        UpstreamForwarded::None => {
            for name in [
                &http::header::FORWARDED,
                &X_FORWARDED_FOR_NAME,
                &X_FORWARDED_PROTO_NAME,
            ] {
                req.remove_header(name);
            }
        }
    }
    Ok(())
}

/// What earlier hops wrote in `name`: every field line of it that `keep` accepts, as one
/// list (RFC 9110 5.3).
fn earlier(req: &RequestHeader, name: &HeaderName, keep: fn(&str) -> bool) -> Option<String> {
    let mut lines = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && keep(v))
        .peekable();
    lines.peek()?;
    Some(lines.collect::<Vec<_>>().join(", "))
}

/// Whether `list` follows RFC 7239 section 4: elements separated by `,`, each of pairs
/// `token=value` separated by `;` (any may be empty), a value a token or a quoted string.
/// Whitespace is allowed around the separators.
fn well_formed_forwarded(list: &str) -> bool {
    fn tchar(c: u8) -> bool {
        c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
    }
    let b = list.as_bytes();
    let mut i = 0;
    let skip_ows = |i: &mut usize| {
        while b.get(*i).is_some_and(|c| *c == b' ' || *c == b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ows(&mut i);
        if b.get(i).is_some_and(|c| tchar(*c)) {
            while b.get(i).is_some_and(|c| tchar(*c)) {
                i += 1;
            }
            if b.get(i) != Some(&b'=') {
                return false;
            }
            i += 1;
            if b.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match b.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') if i + 1 < b.len() => i += 2,
                        Some(&c) if c == b'\t' || (0x20..0x7f).contains(&c) && c != b'\\' => i += 1,
                        _ => return false,
                    }
                }
                i += 1;
            } else {
                let start = i;
                while b.get(i).is_some_and(|c| tchar(*c)) {
                    i += 1;
                }
                if i == start {
                    return false;
                }
            }
        }
        skip_ows(&mut i);
        match b.get(i) {
            None => return true,
            Some(b';' | b',') => i += 1,
            Some(_) => return false,
        }
    }
}

fn header_value(value: String) -> Result<HeaderValue> {
    HeaderValue::try_from(value)
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "a forwarding header"))
}

/// This hop's element of `Forwarded` (RFC 7239 section 4): an IPv6 address is bracketed
/// and quoted, as the grammar requires.
fn forwarded_element(peer: Option<IpAddr>, proto: &str) -> String {
    match peer {
        Some(IpAddr::V4(ip)) => format!("for={ip};proto={proto}"),
        Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\";proto={proto}"),
        None => format!("proto={proto}"),
    }
}

/// `X-Forwarded-For` for a client that sent none: its address, rendered once for the
/// requests of one address in a row on this thread (every request of a keep-alive
/// connection repeats it); the value is shared, not copied.
fn forwarded_for(ip: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((seen, value)) if *seen == ip => value.clone(),
        _ => {
            let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
                .expect("an IP address is a valid header value");
            *last = Some((ip, value.clone()));
            value
        }
    })
}

#[cfg(test)]
mod tests;
