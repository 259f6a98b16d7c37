//! The route table: which upstream a request goes to, chosen by host, method and the longest
//! matching path prefix.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use pingora::utils::tls::WrappedX509;

/// TLS towards an upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// SNI and verified name; `None` means the upstream's host.
    pub sni: Option<String>,
    /// Verify the certificate chain and name.
    pub verify: bool,
    /// CAs trusted for this upstream instead of the system roots.
    pub ca: Option<Arc<[WrappedX509]>>,
    /// Identifies the trusted CAs in Pingora's connection-pool key, which does not include
    /// them: without it a connection verified against one route's CA could be reused for a
    /// route that trusts other CAs. 0 for the system roots.
    pub ca_pool_key: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("ca_certificates", &self.ca.as_ref().map_or(0, |c| c.len()))
            .finish()
    }
}

/// One upstream address of a route.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub tls: Option<UpstreamTls>,
    /// The name sent in SNI (empty without TLS).
    pub sni: String,
}

/// Bearer-token requirements of a route (enforced by the protected-routes filter).
#[derive(Debug, Clone)]
pub struct RouteAuth {
    /// Without a token the request is refused; with `false` a token is optional (checked
    /// when present).
    pub required: bool,
    pub scopes: Vec<String>,
    pub method_scopes: Vec<(Method, Vec<String>)>,
    /// Pass the client's `Authorization` header upstream.
    pub forward_authorization: bool,
}

impl RouteAuth {
    /// The scopes a request with `method` must carry.
    pub fn scopes_for(&self, method: &Method) -> &[String] {
        self.method_scopes
            .iter()
            .find(|(m, _)| m == method)
            .map_or(&self.scopes, |(_, s)| s)
    }
}

/// A route of the table.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    /// Lower-case host to match; `None` matches any.
    pub host: Option<String>,
    /// Methods to match; empty matches any.
    pub methods: Vec<Method>,
    pub upstreams: Vec<Upstream>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub auth: Option<RouteAuth>,
    /// Round-robin cursor.
    pub next_upstream: AtomicUsize,
}

impl Route {
    fn matches(&self, host: Option<&str>, method: &Method, path: &str) -> bool {
        path_has_prefix(path, &self.path_prefix)
            && (self.methods.is_empty() || self.methods.contains(method))
            && self
                .host
                .as_deref()
                .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
    }

    /// The index of the upstream to try first for a new request (round-robin).
    pub fn first_upstream(&self) -> usize {
        self.next_upstream.fetch_add(1, Ordering::Relaxed) % self.upstreams.len()
    }
}

/// `path` is `prefix` or lies below it segment-wise: `/v1/pets` matches `/v1/pets` and
/// `/v1/pets/7`, not `/v1/petshop`. A prefix ending in `/` matches anything below it.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
        None => false,
    }
}

/// All routes, ordered so that the first match is the best one.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// Orders routes by prefix length (longest first); at equal length, routes that name a
    /// host or methods come before those that do not; otherwise file order.
    pub fn new(routes: Vec<Route>) -> Self {
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.path_prefix.len()),
                r.host.is_none(),
                r.methods.is_empty(),
            )
        });
        Self { routes }
    }

    /// The route for a request; `host` is the `Host` without its port.
    pub fn select(&self, host: Option<&str>, method: &Method, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.matches(host, method, path))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Whether `path` holds a `.` or `..` segment, plainly or percent-encoded. Such paths are
/// refused: an upstream that normalises them would serve a different route than the one
/// matched (and checked) here.
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| {
        let decoded = seg.replace("%2e", ".").replace("%2E", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, host: Option<&str>, methods: &[Method]) -> Route {
        Route {
            name: prefix.to_string(),
            path_prefix: prefix.to_string(),
            host: host.map(str::to_string),
            methods: methods.to_vec(),
            upstreams: vec![Upstream {
                addr: "127.0.0.1:1".parse().expect("addr"),
                tls: None,
                sni: String::new(),
            }],
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            auth: None,
            next_upstream: AtomicUsize::new(0),
        }
    }

    fn pick<'a>(t: &'a RouteTable, host: Option<&str>, m: Method, path: &str) -> Option<&'a str> {
        t.select(host, &m, path).map(|r| r.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_segment_wise() {
        let t = RouteTable::new(vec![route("/", None, &[]), route("/v1/pets", None, &[])]);
        assert_eq!(pick(&t, None, Method::GET, "/v1/pets"), Some("/v1/pets"));
        assert_eq!(pick(&t, None, Method::GET, "/v1/pets/7"), Some("/v1/pets"));
        assert_eq!(pick(&t, None, Method::GET, "/v1/petshop"), Some("/"));
        let t = RouteTable::new(vec![route("/api", None, &[])]);
        assert_eq!(pick(&t, None, Method::GET, "/apix"), None);
    }

    #[test]
    fn host_and_method_narrow_a_route() {
        let t = RouteTable::new(vec![
            route("/a", None, &[]),
            route("/a", Some("api.example.com"), &[]),
            route("/a", None, &[Method::POST]),
        ]);
        assert_eq!(
            t.select(Some("API.example.com"), &Method::GET, "/a")
                .map(|r| r.host.is_some()),
            Some(true)
        );
        let post = t.select(None, &Method::POST, "/a").expect("route");
        assert_eq!(post.methods, vec![Method::POST]);
        let get = t.select(Some("other"), &Method::GET, "/a").expect("route");
        assert!(get.host.is_none() && get.methods.is_empty());
    }

    #[test]
    fn dot_segments_are_detected() {
        for p in ["/a/../b", "/a/./b", "/a/%2e%2E/b", "/..", "/a/%2E"] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in ["/a/b", "/a/.well-known", "/a/..b", "/"] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }
}
