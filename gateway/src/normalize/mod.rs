//! The normal form of a request: the one place that decides which path, method and host a
//! request is matched, authorized and forwarded under.
//!
//! The invariant it holds: the path and method an upstream acts on are the ones Tollgate
//! matched and authorized. An upstream that decodes `%70` to `p`, merges `//`, strips `;x=1`
//! or upper-cases `post` would otherwise serve a protected route that Tollgate matched as a
//! public one (the classic gateway authorization bypass). So the path is brought to the
//! RFC 3986 section 6 normal form before matching and that same form is forwarded, and every
//! spelling that upstreams disagree about gets a decision here: normalised, or refused.

use std::borrow::Cow;

use http::Method;
use pingora::http::authority::{raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;

/// What to do with `%2F` and `%5C` (an encoded `/` or `\`) in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// Refuse the request with 400 (default): upstreams disagree on whether `%2F` separates
    /// segments.
    #[default]
    Reject,
    /// Forward unchanged; the escape is matched as opaque bytes inside its segment.
    Keep,
}

/// What to do with `;` parameters in a path segment (`/v1/pets;x=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathParameters {
    /// Refuse the request with 400 (default): servlet containers strip them, others do not.
    #[default]
    Reject,
    /// Forward unchanged; each segment is matched on what precedes its first `;`, so a
    /// parameter can never make a protected segment look like a public one.
    Keep,
}

/// The configurable part of path normalisation (`server.merge_slashes`,
/// `server.escaped_slashes`, `server.path_parameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// Merge repeated slashes (`/v1//pets` → `/v1/pets`); with `false` they are refused.
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
    pub path_parameters: PathParameters,
}

impl Default for PathRules {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
            path_parameters: PathParameters::Reject,
        }
    }
}

/// Why a request target was refused (each is a 400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request target is not a path")]
    NotAPath,
    #[error("the path holds a malformed percent-escape")]
    BadEscape,
    #[error("the path holds a double-encoded percent-escape (`%25` followed by hex digits)")]
    DoubleEncoded,
    #[error("the path holds a `#`, or a `?` or `#` encoded (`%3F`, `%23`)")]
    EncodedDelimiter,
    #[error("the path holds an encoded `/` or `\\` (`%2F`, `%5C`)")]
    EscapedSlash,
    #[error("the path holds a backslash")]
    Backslash,
    #[error("the path holds a control character")]
    ControlCharacter,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    #[error("the path holds a `.` or `..` segment")]
    DotSegment,
    #[error("the path holds an empty segment (`//`)")]
    EmptySegment,
    #[error("the path holds a `;` parameter")]
    PathParameter,
    #[error("a path segment starts or ends with a space")]
    Whitespace,
}

/// A request target in normal form. Each path borrows the input when it was already normal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// The path routes and scopes are matched on: [`Self::forward`] without `;` parameters.
    pub matching: Cow<'a, str>,
    /// The path the upstream receives.
    pub forward: Cow<'a, str>,
}

/// A request's target in normal form.
#[derive(Debug)]
pub struct RequestTarget<'a> {
    pub path: NormalPath<'a>,
    /// The query as received (never changed), without its `?`.
    pub query: Option<&'a [u8]>,
    /// The authority of an absolute-form target (`GET http://host/p HTTP/1.1`), which RFC
    /// 9112 section 3.2.2 makes the request's host.
    pub authority: Option<&'a [u8]>,
}

impl RequestTarget<'_> {
    /// The origin-form target the upstream must receive when it differs from the one the
    /// client sent: the normal path and the query unchanged.
    pub fn upstream_target(&self) -> Option<Vec<u8>> {
        if self.authority.is_none() && matches!(self.path.forward, Cow::Borrowed(_)) {
            return None;
        }
        let query_len = self.query.map_or(0, |q| q.len() + 1);
        let mut target = Vec::with_capacity(self.path.forward.len() + query_len);
        target.extend_from_slice(self.path.forward.as_bytes());
        if let Some(query) = self.query {
            target.push(b'?');
            target.extend_from_slice(query);
        }
        Some(target)
    }
}

/// The target of `req` (origin-form, or absolute-form from a client that speaks to a
/// proxy; HTTP/2 pseudo-headers arrive as origin-form) with its path in normal form.
pub fn request_target<'a>(
    req: &'a RequestHeader,
    rules: &PathRules,
) -> Result<RequestTarget<'a>, PathError> {
    let raw = req.raw_path();
    let (authority, path_and_query) = match raw_target_authority(raw) {
        RawTargetAuthority::Absolute {
            authority,
            path_and_query,
            ..
        } => (Some(authority), path_and_query),
        RawTargetAuthority::None if raw.first() == Some(&b'/') => (None, raw),
        _ => return Err(PathError::NotAPath),
    };
    let (path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    // `http://host` and `http://host?q` have an empty path, which is `/`.
    let path: &[u8] = if path.is_empty() && authority.is_some() {
        b"/"
    } else {
        path
    };
    Ok(RequestTarget {
        path: normalize_path(path, rules)?,
        query,
        authority,
    })
}

/// RFC 3986 unreserved characters: decoding their escapes never changes a URI's meaning.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes that stand for themselves in a normal path: unreserved, sub-delims but `;`, `:`,
/// `@` and `/`.
fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn escaped(a: Option<&u8>, b: Option<&u8>) -> Option<u8> {
    Some(hex_value(*a?)? << 4 | hex_value(*b?)?)
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xF)]));
}

/// Whether a segment in normal form holds `%25` before two hex digits, however the input
/// spelled them (`%2570`, `%25%37%30`, `%257%30`): decoded once more upstream it would be
/// another escape, so the normal form would not be a fixed point.
fn holds_double_encoding(text: &str) -> bool {
    text.as_bytes()
        .windows(5)
        .any(|w| w[..3] == *b"%25" && hex_value(w[3]).is_some() && hex_value(w[4]).is_some())
}

fn is_dot_segment(decoded: &[u8]) -> bool {
    decoded == b"." || decoded == b".."
}

/// The path of a request target (`/a/b?q` → `/a/b`), brought to normal form under `rules`.
///
/// - Escapes of bytes that stand for themselves in a path are decoded (`%70` → `p`,
///   `%3A` → `:`); other escapes get upper-case hex; bytes that may not appear raw in a
///   path are escaped. So the form is a fixed point, and decoding it once more (as a second
///   proxy or a framework does) yields no escape, dot segment, slash, NUL, query or
///   fragment that was not there: the route it falls under stays the one matched here.
/// - `.` and `..` segments, plain or encoded, are refused (an upstream resolving them would
///   serve another route than the one checked here).
/// - Repeated slashes are merged, or refused when `merge_slashes` is off.
/// - `%2F`/`%5C`, `;` parameters (`%3B` too): as `rules` say.
/// - Refused always: a raw backslash, a control character or `%00` (raw or encoded), a
///   malformed escape, a double encoding (`%25` before two hex digits in the normal form,
///   however spelled, which a second decoding upstream would turn into another path), a `#`
///   or an encoded `?` or `#` (a second decoding would cut the path there), a path that is not UTF-8 once decoded (overlong
///   forms such as `%C0%AF` included), and a segment that starts or ends with a space (some
///   routers trim them).
pub fn normalize_path<'a>(path: &'a [u8], rules: &PathRules) -> Result<NormalPath<'a>, PathError> {
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAPath);
    }
    if is_already_normal(path) {
        let path = std::str::from_utf8(path).map_err(|_| PathError::NotUtf8)?;
        return Ok(NormalPath {
            matching: Cow::Borrowed(path),
            forward: Cow::Borrowed(path),
        });
    }
    let raw_segments: Vec<&[u8]> = path[1..].split(|&b| b == b'/').collect();
    let last = raw_segments.len() - 1;
    let mut forward = String::with_capacity(path.len());
    let mut matching = String::with_capacity(path.len());
    let mut segment = Segment::default();
    for (i, raw) in raw_segments.into_iter().enumerate() {
        segment.read(raw, rules)?;
        // Only the last segment may be empty: that is a trailing slash, which is kept.
        if raw.is_empty() && i != last {
            if !rules.merge_slashes {
                return Err(PathError::EmptySegment);
            }
            continue;
        }
        forward.push('/');
        forward.push_str(&segment.text);
        let matched = &segment.text[..segment.matched_len];
        if matched.is_empty() && !raw.is_empty() {
            // `;x` alone: an empty segment to the upstreams that strip parameters.
            if !rules.merge_slashes {
                return Err(PathError::EmptySegment);
            }
            continue;
        }
        matching.push('/');
        matching.push_str(matched);
    }
    if matching.is_empty() {
        matching.push('/');
    }
    let original = std::str::from_utf8(path).ok();
    let borrow_if_same = |s: String| match original {
        Some(o) if o == s => Cow::Borrowed(o),
        _ => Cow::Owned(s),
    };
    Ok(NormalPath {
        matching: borrow_if_same(matching),
        forward: borrow_if_same(forward),
    })
}

/// The fast path: only plain bytes, no empty or dot segment, so nothing would change.
fn is_already_normal(path: &[u8]) -> bool {
    path.iter().all(|&b| is_plain(b))
        && !path.windows(2).any(|w| w == b"//")
        && !path[1..].split(|&b| b == b'/').any(is_dot_segment)
}

/// One segment being normalised; its buffers are reused across segments.
#[derive(Default)]
struct Segment {
    /// The segment in normal form, parameters included.
    text: String,
    /// Length of `text` before its first `;` (all of it without parameters).
    matched_len: usize,
    /// Every byte decoded, parameters included.
    decoded: Vec<u8>,
    /// Length of `decoded` before the first `;`.
    decoded_matched_len: usize,
}

impl Segment {
    fn read(&mut self, raw: &[u8], rules: &PathRules) -> Result<(), PathError> {
        self.text.clear();
        self.decoded.clear();
        let mut parameter_at: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            match b {
                b'%' => {
                    let value =
                        escaped(raw.get(i + 1), raw.get(i + 2)).ok_or(PathError::BadEscape)?;
                    i += 3;
                    match value {
                        0..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
                        b'/' | b'\\' if rules.escaped_slashes == EscapedSlashes::Reject => {
                            return Err(PathError::EscapedSlash)
                        }
                        b'?' | b'#' => return Err(PathError::EncodedDelimiter),
                        // Decoded once more, `%3B` is a parameter like `;`.
                        b';' => {
                            if rules.path_parameters == PathParameters::Reject {
                                return Err(PathError::PathParameter);
                            }
                            parameter_at.get_or_insert((self.text.len(), self.decoded.len()));
                            push_escape(&mut self.text, value);
                        }
                        // What stands for itself in a path is written as itself, so the
                        // path matched is the one an upstream that decodes it acts on.
                        b if is_plain(b) && b != b'/' => self.text.push(char::from(b)),
                        b => push_escape(&mut self.text, b),
                    }
                    self.decoded.push(value);
                    continue;
                }
                // A fragment never belongs to a request target; escaped, it would come back
                // as one to an upstream that decodes the path.
                // `?` only reaches here in a path that is not a request's (a route prefix).
                b'#' | b'?' => return Err(PathError::EncodedDelimiter),
                b'\\' => return Err(PathError::Backslash),
                b';' => {
                    if rules.path_parameters == PathParameters::Reject {
                        return Err(PathError::PathParameter);
                    }
                    parameter_at.get_or_insert((self.text.len(), self.decoded.len()));
                    self.text.push(';');
                }
                0..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
                b if is_plain(b) => self.text.push(char::from(b)),
                // Anything else (`"`, `<`, `{`, a raw non-ASCII byte…) is escaped.
                b => push_escape(&mut self.text, b),
            }
            self.decoded.push(b);
            i += 1;
        }
        (self.matched_len, self.decoded_matched_len) =
            parameter_at.unwrap_or((self.text.len(), self.decoded.len()));
        if holds_double_encoding(&self.text) {
            return Err(PathError::DoubleEncoded);
        }
        self.check()
    }

    /// Checks on the decoded segment: what an upstream that decodes it would see.
    fn check(&self) -> Result<(), PathError> {
        if std::str::from_utf8(&self.decoded).is_err() {
            return Err(PathError::NotUtf8);
        }
        let matched = &self.decoded[..self.decoded_matched_len];
        // With escaped slashes kept, `..%2F` (or `;%2F..`, after a parameter) is a dot
        // segment to an upstream that decodes before it resolves dots.
        let dots = self
            .decoded
            .split(|&b| b == b'/' || b == b'\\')
            .any(|part| is_dot_segment(part.split(|&b| b == b';').next().unwrap_or(part)));
        if dots {
            return Err(PathError::DotSegment);
        }
        if matched.first() == Some(&b' ') || matched.last() == Some(&b' ') {
            return Err(PathError::Whitespace);
        }
        Ok(())
    }
}

/// The RFC 9110 methods, each of which has exactly one spelling.
pub const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::CONNECT,
    Method::OPTIONS,
    Method::TRACE,
    Method::PATCH,
];

/// Whether `method` is one of RFC 9110's (in its only spelling).
pub fn is_standard_method(method: &Method) -> bool {
    STANDARD_METHODS.contains(method)
}

/// A standard method spelled in another case (`post`, `Delete`): methods are case-sensitive,
/// so it is an extension method to Tollgate, but many frameworks upper-case it and run the
/// standard one. Refused with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the method `{0}` must be written `{1}`")]
pub struct MethodSpelling(String, &'static str);

/// Refuses a standard method spelled in another case.
pub fn check_method(method: &Method) -> Result<(), MethodSpelling> {
    if is_standard_method(method) {
        return Ok(());
    }
    match STANDARD_METHODS
        .iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(method.as_str()))
    {
        Some(standard) => Err(MethodSpelling(
            method.as_str().chars().take(16).collect(),
            standard.as_str(),
        )),
        None => Ok(()),
    }
}

/// A host in the form routes compare: without the port, without a trailing dot, lower case
/// (`API.Example.com.:443` → `api.example.com`, `[::1]:80` → `::1`).
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let host = match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => raw.split(':').next().unwrap_or(raw),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests;
