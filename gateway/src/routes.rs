//! The route table: which upstream a request goes to, chosen by host, method and the longest
//! matching path prefix.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::balancer::Balancer;
use crate::cors::CorsPolicy;
use crate::metrics::RouteMetrics;
use crate::normalize::is_standard_method;
use crate::rate_limit::RateLimit;

pub use crate::balancer::UpstreamTls;

/// Bearer-token requirements of a route, checked in the proxy's request filter.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAuth {
    /// Without a token the request is refused; with `false` a token is optional (checked
    /// when present).
    pub required: bool,
    pub scopes: Vec<String>,
    pub method_scopes: Vec<(Method, Vec<String>)>,
    /// The `"*"` entry of `method_scopes`: the scopes of every method not listed there.
    pub other_methods_scopes: Option<Vec<String>>,
    /// Pass the client's `Authorization` header upstream.
    pub forward_authorization: bool,
    /// The route's audience (`resource` tokens for it are accepted here only).
    pub audience: Option<String>,
    /// With `upstream_token: jwt`: the lifetime of the JWT the upstream gets instead of the
    /// client's token (for `audience`).
    pub upstream_jwt_ttl: Option<std::time::Duration>,
}

impl RouteAuth {
    /// The scopes a request with `method` must carry: its `method_scopes` entry, else the
    /// `"*"` entry, else `scopes`. `None` (405) for a non-standard method on a route with
    /// `method_scopes` that neither lists it nor has `"*"`: a `PURGE` or `PROPFIND` that an
    /// upstream treats as a write must not pass on the read scope.
    pub fn scopes_for(&self, method: &Method) -> Option<&[String]> {
        if let Some((_, scopes)) = self.method_scopes.iter().find(|(m, _)| m == method) {
            return Some(scopes);
        }
        if let Some(scopes) = &self.other_methods_scopes {
            return Some(scopes);
        }
        (self.method_scopes.is_empty() || is_standard_method(method)).then_some(&self.scopes)
    }

    /// The `Allow` value of a 405: the standard methods and those `method_scopes` lists.
    pub fn allowed_methods(&self) -> String {
        let mut allowed: Vec<&str> = crate::normalize::STANDARD_METHODS
            .iter()
            .map(Method::as_str)
            .collect();
        for (m, _) in &self.method_scopes {
            if !allowed.contains(&m.as_str()) {
                allowed.push(m.as_str());
            }
        }
        allowed.join(", ")
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
    /// Picks the upstream address of each attempt (never empty of configured upstreams;
    /// their addresses may be unknown until a name first resolves).
    pub balancer: Arc<Balancer>,
    /// TLS towards the upstreams.
    pub tls: Option<UpstreamTls>,
    /// Retry idempotent requests on another upstream after a failure past the connect.
    pub retry_idempotent: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub auth: Option<RouteAuth>,
    pub rate_limit: Option<Arc<RateLimit>>,
    pub cors: Option<CorsPolicy>,
    /// Method- and URL-override headers this route passes upstream (every other one in
    /// [`crate::forwarding::MEANING_CHANGERS`] is removed).
    pub keep_headers: Vec<http::HeaderName>,
    /// Its request metrics, resolved on its first request.
    pub metrics: std::sync::OnceLock<RouteMetrics>,
}

impl Route {
    /// Whether the route takes a request for `path` with `method` from `host` (asked only
    /// of a route that names a host), its path compared by `compare`.
    fn matches<'h>(
        &self,
        host: &mut impl FnMut() -> Option<&'h str>,
        method: &Method,
        path: &str,
        compare: Compare,
    ) -> bool {
        let path_matches = match compare {
            Compare::Exact => path_has_prefix(path, &self.path_prefix),
            Compare::IgnoringCase => path_has_prefix_ignoring_case(path, &self.path_prefix),
            Compare::Loosely => path_has_prefix_loosely(path, &self.path_prefix),
        };
        path_matches
            && (self.methods.is_empty() || self.methods.contains(method))
            && self
                .host
                .as_deref()
                .is_none_or(|want| host().is_some_and(|h| h.eq_ignore_ascii_case(want)))
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

/// As [`path_has_prefix`], ASCII case ignored.
fn path_has_prefix_ignoring_case(path: &str, prefix: &str) -> bool {
    match path.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            let rest = &path[prefix.len()..];
            rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/')
        }
        _ => false,
    }
}

/// As [`path_has_prefix`], each segment compared as frameworks that are lenient about
/// spelling compare it: ASCII case ignored and trailing dots dropped (`/v1/PETS.`), and the
/// path's last segment also by what precedes its first dot (`/v1/pets.json`, a format
/// suffix).
fn path_has_prefix_loosely(path: &str, prefix: &str) -> bool {
    let segments = |p: &'_ str| -> Vec<String> {
        p.trim_start_matches('/')
            .split('/')
            .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    };
    let wanted = segments(prefix.strip_suffix('/').unwrap_or(prefix));
    if prefix == "/" {
        return true;
    }
    let have = segments(path);
    if have.len() < wanted.len() {
        return false;
    }
    let last = have.len() - 1;
    wanted
        .iter()
        .zip(&have)
        .enumerate()
        .all(|(i, (want, got))| {
            want == got || (i == last && got.split('.').next().is_some_and(|stem| stem == want))
        })
}

/// How a route's prefix is compared with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Exact,
    IgnoringCase,
    Loosely,
}

/// How routes compare the case of paths (`server.path_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathCase {
    /// Paths are matched exactly, and a path that falls under a protected route only when
    /// compared loosely (ASCII case ignored, trailing dots dropped, a `.ext` suffix on its
    /// last segment dropped) is refused: Express, ASP.NET, IIS and format-suffix routers
    /// would serve that route's handler for it, unauthenticated.
    #[default]
    Guarded,
    /// Paths are matched exactly and nothing is refused: every upstream matches exactly.
    Sensitive,
    /// Paths are matched with ASCII case ignored (every upstream ignores it); trailing
    /// dots and suffixes are guarded as with `Guarded`.
    Insensitive,
}

/// A path that is another spelling of a protected route (see [`PathCase::Guarded`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the path is another spelling of the protected route `{0}`")]
pub struct LooseSpelling(pub String);

/// All routes, ordered so that the first match is the best one.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    case: PathCase,
    /// Whether any route checks tokens (otherwise no spelling needs guarding).
    any_protected: bool,
}

impl RouteTable {
    /// Orders routes by prefix length (longest first); at equal length, routes that name a
    /// host or methods come before those that do not; otherwise file order.
    pub fn new(routes: Vec<Route>, case: PathCase) -> Self {
        let mut routes: Vec<Arc<Route>> = routes.into_iter().map(Arc::new).collect();
        routes.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.path_prefix.len()),
                r.host.is_none(),
                r.methods.is_empty(),
            )
        });
        let any_protected = routes.iter().any(|r| r.auth.is_some());
        Self {
            routes,
            case,
            any_protected,
        }
    }

    /// The route for a request; `host` gives the `Host` without its port, and is called only
    /// when a route that names a host is a candidate (most tables name none). Refuses a path
    /// that falls under a protected route only loosely (see [`PathCase`]).
    pub fn select<'h>(
        &self,
        mut host: impl FnMut() -> Option<&'h str>,
        method: &Method,
        path: &str,
    ) -> Result<Option<&Arc<Route>>, LooseSpelling> {
        let compare = match self.case {
            PathCase::Insensitive => Compare::IgnoringCase,
            _ => Compare::Exact,
        };
        let exact = self
            .routes
            .iter()
            .find(|r| r.matches(&mut host, method, path, compare));
        // Only a dot, or an upper-case letter where case counts, can spell a path loosely.
        let guarded = match self.case {
            PathCase::Sensitive => false,
            PathCase::Guarded => path.bytes().any(|b| b == b'.' || b.is_ascii_uppercase()),
            PathCase::Insensitive => path.contains('.'),
        };
        if !(guarded && self.any_protected) {
            return Ok(exact);
        }
        let loose = self
            .routes
            .iter()
            .find(|r| r.matches(&mut host, method, path, Compare::Loosely));
        match loose {
            Some(l) if l.auth.is_some() && !exact.is_some_and(|e| Arc::ptr_eq(e, l)) => {
                Err(LooseSpelling(l.path_prefix.clone()))
            }
            _ => Ok(exact),
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The routes, best match first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests;
