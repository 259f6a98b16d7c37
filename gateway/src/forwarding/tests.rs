//! The forwarding headers: the cases, then properties over generated headers and peers
//! (nothing panics, what the gateway writes parses back, nothing a client wrote reaches the
//! upstream as a trusted proxy's word).

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::client_address::{ForwardedHeader, TrustedProxies};

fn request(headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).expect("header");
    }
    req
}

fn values(req: &RequestHeader, name: &str) -> Vec<String> {
    req.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

/// The remembered value is the last address's only: clients alternating on one thread
/// each get their own.
#[test]
fn forwarded_for_names_the_address_it_is_given() {
    let v4: IpAddr = "192.0.2.7".parse().expect("ip");
    let v6: IpAddr = "2001:db8::1".parse().expect("ip");
    for ip in [v4, v4, v6, v4, v6, v6] {
        assert_eq!(forwarded_for(ip), ip.to_string().as_str());
    }
}

#[test]
fn x_forwarded_for_appends_the_peer_to_every_earlier_line() {
    let peer = Some("192.0.2.7".parse().expect("ip"));
    let mut req = request(&[("Forwarded", "for=203.0.113.9")]);
    add(
        UpstreamForwarded::XForwardedFor,
        &mut req,
        peer,
        true,
        "https",
    )
    .expect("add");
    assert_eq!(values(&req, "x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(values(&req, "x-forwarded-proto"), ["https"]);
    assert!(
        values(&req, "forwarded").is_empty(),
        "the other style is removed"
    );

    let mut req = request(&[
        ("X-Forwarded-For", "203.0.113.1"),
        ("x-forwarded-for", "198.51.100.2, 198.51.100.3"),
        ("X-Forwarded-Proto", "gopher"),
    ]);
    add(
        UpstreamForwarded::XForwardedFor,
        &mut req,
        peer,
        true,
        "http",
    )
    .expect("add");
    assert_eq!(
        values(&req, "x-forwarded-for"),
        ["203.0.113.1, 198.51.100.2, 198.51.100.3, 192.0.2.7"]
    );
    assert_eq!(values(&req, "x-forwarded-proto"), ["http"]);

    let mapped = Some("::ffff:192.0.2.7".parse().expect("ip"));
    let mut req = request(&[]);
    add(
        UpstreamForwarded::XForwardedFor,
        &mut req,
        mapped,
        true,
        "http",
    )
    .expect("add");
    assert_eq!(values(&req, "x-forwarded-for"), ["192.0.2.7"]);
}

#[test]
fn forwarded_is_one_rfc_7239_list_with_ipv6_quoted() {
    let mut req = request(&[
        ("X-Forwarded-For", "203.0.113.1"),
        ("X-Forwarded-Proto", "https"),
    ]);
    let v4 = Some("192.0.2.7".parse().expect("ip"));
    add(UpstreamForwarded::Forwarded, &mut req, v4, true, "http").expect("add");
    assert_eq!(values(&req, "forwarded"), ["for=192.0.2.7;proto=http"]);
    assert!(
        values(&req, "x-forwarded-for").is_empty(),
        "the other style is removed"
    );
    assert!(values(&req, "x-forwarded-proto").is_empty());

    let mut req = request(&[("Forwarded", "for=203.0.113.1;proto=https")]);
    let v6 = Some("2001:db8::1".parse().expect("ip"));
    add(UpstreamForwarded::Forwarded, &mut req, v6, true, "https").expect("add");
    assert_eq!(
        values(&req, "forwarded"),
        ["for=203.0.113.1;proto=https, for=\"[2001:db8::1]\";proto=https"]
    );

    let mut req = request(&[]);
    let mapped = Some("::ffff:192.0.2.7".parse().expect("ip"));
    add(UpstreamForwarded::Forwarded, &mut req, mapped, true, "http").expect("add");
    assert_eq!(values(&req, "forwarded"), ["for=192.0.2.7;proto=http"]);
    let mut req = request(&[]);
    add(UpstreamForwarded::Forwarded, &mut req, None, true, "http").expect("add");
    assert_eq!(values(&req, "forwarded"), ["proto=http"]);
}

/// A line that does not parse is dropped, so it cannot swallow this hop's element (an
/// unclosed quote would take it into its string); well-formed lines are kept.
#[test]
fn a_malformed_earlier_forwarded_line_is_dropped() {
    let peer = Some("192.0.2.7".parse().expect("ip"));
    let mut req = request(&[
        ("Forwarded", "for=\"x"),
        (
            "Forwarded",
            "for=198.51.100.2;by=\"[2001:db8::9]\", For=unknown",
        ),
        ("Forwarded", "for=1.2.3.4 junk"),
    ]);
    add(UpstreamForwarded::Forwarded, &mut req, peer, true, "http").expect("add");
    assert_eq!(
        values(&req, "forwarded"),
        ["for=198.51.100.2;by=\"[2001:db8::9]\", For=unknown, for=192.0.2.7;proto=http"]
    );
    for good in [
        "for=192.0.2.60;proto=http;by=203.0.113.43",
        "for=\"_gazonk\"",
        "For=\"[2001:db8:cafe::17]:4711\"",
        "for=192.0.2.43, for=198.51.100.17",
        "for=a; proto=https , ;",
        "for=\"a\\\"b\"",
    ] {
        assert!(well_formed_forwarded(good), "{good}");
    }
    for bad in [
        "for=\"x",
        "for=",
        "=x",
        "for",
        "for=a b",
        "for=\"a\\",
        "for=[::1]",
        "for=a,=b",
    ] {
        assert!(!well_formed_forwarded(bad), "{bad}");
    }
}

/// From a peer that is not a trusted proxy, nothing a proxy would say is believed: the
/// client's own forwarding entries and proxy headers are removed, in every style.
#[test]
fn an_untrusted_peer_says_nothing_for_a_proxy() {
    let peer = Some("192.0.2.7".parse().expect("ip"));
    let sent = [
        ("X-Forwarded-For", "10.0.0.1"),
        ("Forwarded", "for=10.0.0.1"),
        ("X-Forwarded-Host", "admin.internal"),
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Other", "kept"),
    ];
    for style in [
        UpstreamForwarded::XForwardedFor,
        UpstreamForwarded::Forwarded,
        UpstreamForwarded::None,
    ] {
        let mut req = request(&sent);
        add(style, &mut req, peer, false, "http").expect("add");
        for name in [
            "x-forwarded-host",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-real-ip",
        ] {
            assert!(values(&req, name).is_empty(), "{name} under {style:?}");
        }
        assert!(!values(&req, "x-forwarded-for")
            .concat()
            .contains("10.0.0.1"));
        assert!(!values(&req, "forwarded").concat().contains("10.0.0.1"));
        assert_eq!(values(&req, "x-other"), ["kept"]);
        // From a trusted proxy they pass.
        let mut req = request(&sent);
        add(style, &mut req, peer, true, "http").expect("add");
        assert_eq!(values(&req, "x-forwarded-host"), ["admin.internal"]);
    }
}

#[test]
fn method_and_url_overrides_are_removed_unless_kept() {
    let mut req = request(&[
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Other", "kept"),
    ]);
    let keep = [HeaderName::from_static("x-original-url")];
    strip_meaning_changers(&mut req, &keep);
    let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["x-original-url", "x-other"]);
}

#[test]
fn none_adds_nothing_and_removes_what_came() {
    let peer = Some("192.0.2.7".parse().expect("ip"));
    let mut req = request(&[
        ("X-Forwarded-For", "203.0.113.1"),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=203.0.113.1"),
        ("X-Other", "kept"),
    ]);
    add(UpstreamForwarded::None, &mut req, peer, true, "http").expect("add");
    for name in ["x-forwarded-for", "x-forwarded-proto", "forwarded"] {
        assert!(values(&req, name).is_empty(), "{name}");
    }
    assert_eq!(values(&req, "x-other"), ["kept"]);
}

/// The elements of a `Forwarded` list, each its pairs.
type Elements = Vec<Vec<(String, String)>>;

/// A `Forwarded` list parsed as RFC 7239 section 4 has it (with the whitespace around `;`
/// and `,` and the empty elements and pairs the gateway accepts), written apart from
/// [`well_formed_forwarded`]: each element's pairs, the name in lower case, the value
/// unquoted; `None` if the list does not parse.
fn parse_forwarded(list: &str) -> Option<Elements> {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
    };
    let mut elements = Vec::new();
    for element in split_outside_quotes(list, b',')? {
        let mut pairs = Vec::new();
        for pair in split_outside_quotes(element, b';')? {
            let pair = pair.trim_matches([' ', '\t']);
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=')?;
            if !is_token(name) {
                return None;
            }
            let value = if is_token(value) {
                value.to_string()
            } else {
                unquote(value)?
            };
            pairs.push((name.to_ascii_lowercase(), value));
        }
        elements.push(pairs);
    }
    Some(elements)
}

/// `s` cut at each `separator` outside a quoted string; `None` if a quote is left open.
fn split_outside_quotes(s: &str, separator: u8) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.bytes().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    (!quoted && !escaped).then_some(parts)
}

/// The content of a quoted-string (RFC 9110 5.6.4) that is all of `value`.
fn unquote(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    let text = |c: u8| c == b'\t' || c == b' ' || c.is_ascii_graphic() || c >= 0x80;
    let mut out = Vec::new();
    let mut bytes = inner.bytes();
    while let Some(c) = bytes.next() {
        match c {
            b'\\' => out.push(bytes.next().filter(|&c| text(c))?),
            b'"' => return None,
            c if text(c) => out.push(c),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// A node (RFC 7239 section 6) that is an address: `192.0.2.1`, `[2001:db8::1]`, with or
/// without `:port`.
fn parse_node(node: &str) -> Option<(IpAddr, Option<u16>)> {
    let (ip, port) = match node.strip_prefix('[') {
        Some(rest) => {
            let (ip, port) = rest.split_once(']')?;
            (IpAddr::V6(ip.parse().ok()?), port)
        }
        None => match node.split_once(':') {
            Some((ip, port)) => (IpAddr::V4(ip.parse().ok()?), port),
            None => (IpAddr::V4(node.parse().ok()?), ""),
        },
    };
    let port = match port.strip_prefix(':') {
        Some(port) => Some(port.parse().ok()?),
        None if port.is_empty() => None,
        None => return None,
    };
    Some((ip, port))
}

/// The upstream's view: `name`'s field lines.
fn lines(req: &RequestHeader, name: &str) -> Vec<Vec<u8>> {
    req.headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// A downstream Tollgate that trusts this gateway only, reading `header`: whom it takes for
/// the client of what this gateway sent it.
fn client_seen_downstream(req: &RequestHeader, header: ForwardedHeader) -> IpAddr {
    let gateway = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
    TrustedProxies::parse(&[gateway.to_string()], header)
        .expect("an address")
        .client_address(gateway, &req.headers)
}

fn any_peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        // An IPv4 client of a dual-stack listener.
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
    ]
    .prop_filter("not the downstream's trusted gateway", |ip| {
        ip.to_canonical() != IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9))
    })
}

/// The connection's peer and whether it is a trusted proxy: as the proxy decides it, only a
/// peer with an address can be trusted.
fn peer_and_trust() -> impl Strategy<Value = (Option<IpAddr>, bool)> {
    (proptest::option::weighted(0.9, any_peer()), any::<bool>())
        .prop_map(|(peer, trusted)| (peer, trusted && peer.is_some()))
}

fn any_style() -> impl Strategy<Value = UpstreamForwarded> {
    proptest::sample::select(vec![
        UpstreamForwarded::XForwardedFor,
        UpstreamForwarded::Forwarded,
        UpstreamForwarded::None,
    ])
}

/// A `Forwarded` line as a proxy or a client may write it: pairs whose values are tokens or
/// quoted strings with escapes, separated by `;` or `,` with or without whitespace (or by
/// nothing), then maybe cut short anywhere (inside a quoted string, after a backslash) or
/// with a character put in.
fn forwarded_line() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::sample::select(vec!["for", "For", "proto", "by", "host", "x-y"]);
    let token = proptest::sample::select(vec![
        "192.0.2.1",
        "10.9.9.9",
        "unknown",
        "_hidden",
        "https",
        "a!#$%&'*+-.^_`|~z",
    ]);
    let quoted = proptest::collection::vec(
        proptest::sample::select(vec![
            "a",
            " ",
            "\t",
            "\\\\",
            "\\\"",
            "\\a",
            ",",
            ";",
            "=",
            "[",
            "]",
            ":",
            "(",
            "{",
            "[2001:db8::1]:80",
            "198.51.100.2:4711",
        ]),
        0..5,
    )
    .prop_map(|chars| format!("\"{}\"", chars.concat()));
    let value = prop_oneof![token.prop_map(str::to_string), quoted];
    let separator =
        proptest::sample::select(vec![";", ";", " ; ", ",", ", ", " ,\t", ";;", ",,", ""]);
    let pairs = proptest::collection::vec((name, value, separator), 1..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value, separator)| format!("{name}={value}{separator}"))
            .collect::<String>()
    });
    let damage = (
        0u8..5,
        any::<usize>(),
        proptest::sample::select(vec!['"', '\\', ' ', '=', ',', '\x7f', '\u{e9}']),
    );
    (pairs, damage).prop_map(|(line, (op, at, c))| {
        let mut chars: Vec<char> = line.chars().collect();
        // Where a parser is most easily wrong: just after a quote or a backslash.
        let delicate: Vec<usize> = (0..chars.len())
            .filter(|&i| chars[i] == '"' || chars[i] == '\\')
            .map(|i| i + 1)
            .collect();
        match op {
            2 => chars.truncate(at % (chars.len() + 1)),
            3 => chars.insert(at % (chars.len() + 1), c),
            4 if !delicate.is_empty() => chars.truncate(delicate[at % delicate.len()]),
            _ => {}
        }
        chars.into_iter().collect::<String>().into_bytes()
    })
}

/// Field values a client or a proxy may send: `Forwarded` lines whole or damaged, pieces of
/// `Forwarded` and `X-Forwarded-For` syntax (quotes, escapes, separators, addresses with
/// ports) run together, or any bytes.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let piece = proptest::sample::select(vec![
        "for",
        "For",
        "proto",
        "by",
        "host",
        "=",
        "\"",
        "\\",
        ";",
        ",",
        " ",
        "\t",
        "[",
        "]",
        ":",
        "192.0.2.1",
        "10.9.9.9",
        "2001:db8::1",
        "\"[2001:db8::1]:80\"",
        "unknown",
        "_hidden",
        "https",
        "a b",
        "\"x,y;z\"",
        "\\\"",
        "=\"",
        "#",
        "\x7f",
        "\u{e9}",
    ]);
    prop_oneof![
        4 => forwarded_line(),
        3 => proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

/// Header lines a request may come with: forwarding headers of both styles, the proxy
/// assertions and another, in any order, repeated or not.
fn field_lines() -> impl Strategy<Value = Vec<(&'static str, HeaderValue)>> {
    let name = proptest::sample::select(vec![
        "forwarded",
        "Forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-other",
    ]);
    proptest::collection::vec((name, field_value()), 0..6).prop_map(|lines| {
        lines
            .into_iter()
            .filter_map(|(name, value)| Some((name, HeaderValue::from_bytes(&value).ok()?)))
            .collect()
    })
}

fn request_with(sent: &[(&'static str, HeaderValue)]) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    for (name, value) in sent {
        req.append_header(*name, value.clone()).expect("header");
    }
    req
}

/// What earlier hops sent in `name` that the gateway keeps: the lines that are text and not
/// blank and that `keep` accepts.
fn kept_lines(sent: &[(&str, HeaderValue)], name: &str, keep: fn(&str) -> bool) -> Vec<String> {
    sent.iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| v.to_str().ok())
        .filter(|v| !v.trim().is_empty() && keep(v))
        .map(str::to_string)
        .collect()
}

/// This hop's element as the upstream reads it.
fn this_hop(peer: Option<IpAddr>, proto: &str) -> Vec<(String, String)> {
    let mut element = Vec::new();
    if let Some(ip) = peer {
        let node = match ip.to_canonical() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        element.push(("for".to_string(), node));
    }
    element.push(("proto".to_string(), proto.to_string()));
    element
}

proptest! {
    /// Any bytes in any forwarding header, any peer, any style: the headers are set, never
    /// a panic nor an error; reading the result downstream does not panic either.
    #[test]
    fn no_field_value_makes_add_panic(
        sent in field_lines(),
        (peer, trusted) in peer_and_trust(),
        style in any_style(),
        raw in field_value(),
    ) {
        let mut req = request_with(&sent);
        prop_assert!(add(style, &mut req, peer, trusted, "https").is_ok());
        let _ = client_seen_downstream(&req, ForwardedHeader::Forwarded);
        let _ = client_seen_downstream(&req, ForwardedHeader::XForwardedFor);
        let _ = well_formed_forwarded(&String::from_utf8_lossy(&raw));
    }

    /// `well_formed_forwarded` accepts exactly the lists RFC 7239 section 4 parses, over
    /// what a header line can hold.
    #[test]
    fn well_formed_is_the_rfc_7239_grammar(value in field_value()) {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            if let Ok(list) = value.to_str() {
                prop_assert_eq!(
                    well_formed_forwarded(list),
                    parse_forwarded(list).is_some(),
                    "{:?}", list
                );
            }
        }
    }

    /// Round trip: the element written for a peer (IPv4, IPv6, IPv4-mapped, none) parses
    /// back to that address with no port, the protocol, and nothing else (no `host`, no
    /// `by`); `X-Forwarded-For` holds the address; a downstream Tollgate that trusts this
    /// gateway reads the peer as the client in either style.
    #[test]
    fn what_the_gateway_writes_parses_back(
        peer in proptest::option::weighted(0.9, any_peer()),
        proto in proptest::sample::select(vec!["http", "https"]),
    ) {
        let mut req = request_with(&[]);
        add(UpstreamForwarded::Forwarded, &mut req, peer, false, proto).expect("add");
        let written = lines(&req, "forwarded");
        prop_assert_eq!(written.len(), 1);
        let value = std::str::from_utf8(&written[0]).expect("ASCII");
        prop_assert!(well_formed_forwarded(value), "{:?}", value);
        let elements = parse_forwarded(value).expect("parses");
        prop_assert_eq!(&elements, &vec![this_hop(peer, proto)], "{:?}", value);
        if let Some(ip) = peer {
            prop_assert_eq!(parse_node(&elements[0][0].1), Some((ip.to_canonical(), None)));
            prop_assert_eq!(client_seen_downstream(&req, ForwardedHeader::Forwarded), ip.to_canonical());
        }

        let mut req = request_with(&[]);
        add(UpstreamForwarded::XForwardedFor, &mut req, peer, false, proto).expect("add");
        let want: Vec<Vec<u8>> = peer.map(|ip| ip.to_canonical().to_string().into_bytes()).into_iter().collect();
        prop_assert_eq!(lines(&req, "x-forwarded-for"), want);
        prop_assert_eq!(lines(&req, "x-forwarded-proto"), vec![proto.as_bytes().to_vec()]);
        if let Some(ip) = peer {
            prop_assert_eq!(client_seen_downstream(&req, ForwardedHeader::XForwardedFor), ip.to_canonical());
        }
    }

    /// From a peer that is not a trusted proxy, whatever it sent, the upstream's forwarding
    /// headers are exactly what the gateway wrote, in every style; the proxy assertions are
    /// gone; other headers pass as they came.
    #[test]
    fn an_untrusted_peer_says_nothing_a_proxy_would(
        sent in field_lines(),
        peer in proptest::option::of(any_peer()),
        style in any_style(),
        proto in proptest::sample::select(vec!["http", "https"]),
    ) {
        let mut req = request_with(&sent);
        add(style, &mut req, peer, false, proto).expect("add");
        let one = |s: String| vec![s.into_bytes()];
        let address = peer.map(|ip| ip.to_canonical().to_string());
        let (xff, xfp, forwarded) = match style {
            UpstreamForwarded::XForwardedFor => {
                (address.map(one).unwrap_or_default(), one(proto.into()), vec![])
            }
            UpstreamForwarded::Forwarded => (vec![], vec![], vec![vec![this_hop(peer, proto)]]),
            UpstreamForwarded::None => (vec![], vec![], vec![]),
        };
        prop_assert_eq!(lines(&req, "x-forwarded-for"), xff);
        prop_assert_eq!(lines(&req, "x-forwarded-proto"), xfp);
        // One line, holding this hop's element only.
        let written: Vec<Option<Elements>> = lines(&req, "forwarded")
            .iter()
            .map(|line| parse_forwarded(std::str::from_utf8(line).ok()?))
            .collect();
        prop_assert_eq!(written, forwarded.into_iter().map(Some).collect::<Vec<_>>());
        for name in ["x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix", "x-real-ip"] {
            prop_assert!(lines(&req, name).is_empty(), "{}", name);
        }
        let other: Vec<Vec<u8>> = sent
            .iter()
            .filter(|(n, _)| *n == "x-other")
            .map(|(_, v)| v.as_bytes().to_vec())
            .collect();
        prop_assert_eq!(lines(&req, "x-other"), other);
        // Downstream, the client is the peer in the style written, else this gateway.
        for (header, written) in [
            (ForwardedHeader::Forwarded, UpstreamForwarded::Forwarded),
            (ForwardedHeader::XForwardedFor, UpstreamForwarded::XForwardedFor),
        ] {
            let want = peer
                .filter(|_| style == written)
                .map_or(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), |ip| ip.to_canonical());
            prop_assert_eq!(client_seen_downstream(&req, header), want, "{:?}", header);
        }
    }

    /// From a trusted proxy, its chain is kept: every well-formed `Forwarded` line (every
    /// text `X-Forwarded-For` line) as it came, the malformed ones dropped, and this hop
    /// appended as the list's own last element, which nothing earlier can swallow or
    /// impersonate: the whole list parses, its last element is this hop's, and a downstream
    /// Tollgate trusting this gateway reads the peer as the client.
    #[test]
    fn a_trusted_chain_ends_with_this_hop(
        sent in field_lines(),
        peer in any_peer(),
        proto in proptest::sample::select(vec!["http", "https"]),
    ) {
        let mut req = request_with(&sent);
        add(UpstreamForwarded::Forwarded, &mut req, Some(peer), true, proto).expect("add");
        let written = lines(&req, "forwarded");
        prop_assert_eq!(written.len(), 1);
        let value = std::str::from_utf8(&written[0]).expect("ASCII");
        let elements = parse_forwarded(value);
        prop_assert!(elements.is_some(), "{:?} does not parse", value);
        let mut elements = elements.unwrap_or_default();
        prop_assert_eq!(elements.pop(), Some(this_hop(Some(peer), proto)), "{:?}", value);
        let earlier: Elements = kept_lines(&sent, "forwarded", well_formed_forwarded)
            .iter()
            .flat_map(|line| parse_forwarded(line).unwrap_or_default())
            .collect();
        prop_assert_eq!(elements, earlier, "{:?}", value);
        prop_assert_eq!(client_seen_downstream(&req, ForwardedHeader::Forwarded), peer.to_canonical());

        let mut req = request_with(&sent);
        add(UpstreamForwarded::XForwardedFor, &mut req, Some(peer), true, proto).expect("add");
        let mut want = kept_lines(&sent, "x-forwarded-for", |_| true);
        want.push(peer.to_canonical().to_string());
        prop_assert_eq!(lines(&req, "x-forwarded-for"), vec![want.join(", ").into_bytes()]);
        prop_assert_eq!(lines(&req, "x-forwarded-proto"), vec![proto.as_bytes().to_vec()]);
        prop_assert_eq!(client_seen_downstream(&req, ForwardedHeader::XForwardedFor), peer.to_canonical());
    }

    /// The remembered `X-Forwarded-For` value is always the address asked for, whatever
    /// came before on this thread.
    #[test]
    fn the_remembered_address_is_the_one_asked_for(
        ips in proptest::collection::vec(
            prop_oneof![
                any::<u8>().prop_map(|b| IpAddr::V4(Ipv4Addr::new(192, 0, 2, b % 3))),
                any_peer(),
            ],
            1..8,
        )
    ) {
        for ip in ips {
            let written = ip.to_string();
            prop_assert_eq!(forwarded_for(ip), written.as_str());
        }
    }
}
