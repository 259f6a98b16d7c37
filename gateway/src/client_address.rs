//! Which address a request comes from. The socket's peer is the client, unless that peer is
//! a trusted proxy (`server.trusted_proxies`): then the client is the nearest address in the
//! forwarding header that is not itself a trusted proxy. Brute-force counters, rate limits
//! and the access log all use this one rule.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The header trusted proxies name the client in (`server.forwarded_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// The peers whose forwarding headers are believed, and which header they write. Only that
/// header is read: a client can send the other one through a proxy that does not touch it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address per entry.
    pub fn parse(entries: &[String], header: ForwardedHeader) -> Result<Self, String> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("`{entry}` is not an address or CIDR block"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks, header })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that arrived from `peer` with `headers`.
    ///
    /// From a trusted peer, the hops of the forwarding header (`X-Forwarded-For`, or the
    /// `for=` parameters of `Forwarded`) are walked from the nearest: trusted hops are
    /// skipped and the first other address is the client. A hop that is not an address
    /// (`unknown`, an obfuscated name, garbage) stops the walk at the last trusted hop,
    /// since whatever lies beyond it cannot be checked.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.networks.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let values = |name| {
            headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
        };
        let hops: Vec<&str> = match self.header {
            ForwardedHeader::XForwardedFor => values("x-forwarded-for").collect(),
            ForwardedHeader::Forwarded => values("forwarded")
                .filter_map(forwarded_for_parameter)
                .collect(),
        };
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for_parameter(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse().ok().map(|ip: IpAddr| ip.to_canonical());
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse().ok().map(|ip: IpAddr| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header value"));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        trusted_with(entries, ForwardedHeader::XForwardedFor)
    }

    fn trusted_with(entries: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        TrustedProxies::parse(&entries, header).expect("valid entries")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            proxies.client_address(ip("192.0.2.9"), &spoofed),
            ip("192.0.2.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("10.0.0.1"), &spoofed),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_nearest() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")]);
        // 6.6.6.6 was written by the client itself: never reached.
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), &h),
            ip("203.0.113.7")
        );
        let two_headers = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.8, 192.168.1.1"),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), &two_headers),
            ip("203.0.113.8")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.7, nonsense, 10.0.0.5")]);
        assert_eq!(proxies.client_address(ip("10.0.0.2"), &h), ip("10.0.0.5"));
        let none = headers(&[]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), &none),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let proxies = trusted_with(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                r#"for=198.51.100.1;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#,
            ),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), &h),
            ip("2001:db8:cafe::17")
        );
        let xff = trusted(&["10.0.0.0/8"]);
        assert_eq!(xff.client_address(ip("10.0.0.2"), &h), ip("6.6.6.6"));
        let v4_port = headers(&[("forwarded", "For=\"198.51.100.2:80\"")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.2"), &v4_port),
            ip("198.51.100.2")
        );
    }

    #[test]
    fn mapped_addresses_compare_as_ipv4() {
        let proxies = trusted(&["127.0.0.1"]);
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.9")]);
        assert_eq!(
            proxies.client_address(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["10.0.0.0/33", "proxy.internal"] {
            let entries = vec![bad.to_string()];
            assert!(TrustedProxies::parse(&entries, ForwardedHeader::default()).is_err());
        }
    }
}
