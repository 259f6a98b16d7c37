//! The `ProxyHttp` implementation: picks a route for each request, answers what the gateway
//! answers itself, and proxies the rest to the route's upstreams.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::access_log::Entry;
use crate::connection;
use crate::cors;
use crate::error::GatewayError;
use crate::forwarding;
use crate::live::{Live, Snapshot};
use crate::metrics::{Metrics, RouteMetrics};
use crate::normalize::{check_method, normalize_host, request_target};
use crate::rate_limit::{KeyValue, RateKey, RateLimit};
use crate::request::{client_ip, header, is_tls};
use crate::respond;
use crate::routes::{Route, RouteAuth};
use token_module::bearer::{self, BearerError};
use token_module::VerifiedToken;

/// Pingora's keep-alive timeout for HTTP/1.1 connections, unless told otherwise.
const PINGORA_KEEPALIVE: Duration = Duration::from_secs(60);

/// The gateway's proxy logic; one instance serves every request. What the configuration says
/// (routes, bearer settings, path rules, the OAuth endpoints) comes from the live snapshot
/// each request takes when it starts.
pub struct Gateway {
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    /// Request metrics of what the gateway answers without a route (the OAuth endpoints,
    /// `unmatched`), resolved once.
    pub local_metrics: Vec<(&'static str, RouteMetrics)>,
    /// Set when the process was told to stop or hand over to a new binary: every response
    /// then closes its connection, so clients move to the new process before this one drops
    /// its idle connections.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl Gateway {
    /// Refuses a request head over the configured limits (414, 431), then reads the request
    /// target into normal form and refuses what must not be forwarded: a path or method
    /// spelling that upstreams disagree about, and more than one
    /// `Authorization` header (the upstream must act on the one credential checked here).
    /// On success `ctx` holds the path to match (when it differs from the URI's) and the
    /// target to send upstream (when it differs from the client's).
    fn admit(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), GatewayError> {
        let limits = &ctx.config.request_limits;
        if req.raw_path().len() > limits.max_uri_bytes {
            return Err(GatewayError::UriTooLong(limits.max_uri_bytes));
        }
        if req.headers.len() > limits.max_header_count {
            return Err(GatewayError::HeadersTooLarge(format!(
                "more than {} header fields",
                limits.max_header_count
            )));
        }
        // Each field as on the wire: `name: value` and CRLF.
        let header_bytes: usize = req
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        if header_bytes > limits.max_header_bytes {
            return Err(GatewayError::HeadersTooLarge(format!(
                "the header section is larger than {} bytes",
                limits.max_header_bytes
            )));
        }
        let refuse = |why: String| GatewayError::InvalidRequest(why);
        let mut authorizations = req.headers.get_all(http::header::AUTHORIZATION).iter();
        if authorizations.next().is_some() && authorizations.next().is_some() {
            return Err(refuse("more than one Authorization header".into()));
        }
        check_method(&req.method).map_err(|e| refuse(e.to_string()))?;
        let target =
            request_target(req, &ctx.config.path_rules).map_err(|e| refuse(e.to_string()))?;
        if target.path.matching != req.uri.path() {
            ctx.matched_path = Some(target.path.matching.clone().into_owned());
        }
        ctx.upstream_target = target.upstream_target();
        if let Some(authority) = target.authority {
            if !req.headers.contains_key(http::header::HOST) {
                ctx.host_from_target = Some(String::from_utf8_lossy(authority).into_owned());
            }
        }
        Ok(())
    }

    /// Counts the request against `limit`; past it answers 429 and returns `true`.
    async fn over_limit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Arc<Route>,
        limit: &RateLimit,
    ) -> Result<bool> {
        let value = KeyValue::of(limit.key, ctx.client, ctx.identity.as_deref(), None);
        let Err(refused) = limit.check(value, ctx.config.store.as_ref()).await else {
            return Ok(false);
        };
        self.metrics
            .rate_limited
            .with_label_values(&[&route.name])
            .inc();
        ctx.route = Some(Arc::clone(route));
        answer(session, ctx, refused.into_response()).await?;
        Ok(true)
    }

    /// RFC 6750 bearer check for a protected route: the token from `Authorization` (never
    /// the URL), validated, carrying the scopes the method needs. `Ok(None)` when the route
    /// makes the token optional and none came.
    async fn check_bearer(
        &self,
        config: &Snapshot,
        session: &Session,
        auth: &RouteAuth,
    ) -> std::result::Result<Option<Arc<VerifiedToken>>, BearerError> {
        let result = Self::check_bearer_inner(config, session, auth).await;
        let label = match &result {
            Ok(Some((_, true))) => "valid_cached",
            Ok(Some(_)) => "valid",
            Ok(None) => "anonymous",
            Err(BearerError::Missing) => "missing",
            Err(BearerError::InvalidRequest(_)) => "invalid_request",
            Err(BearerError::InvalidToken(_)) => "invalid_token",
            Err(BearerError::InsufficientScope(_)) => "insufficient_scope",
            Err(_) => "unavailable",
        };
        self.metrics.bearer_checked(label);
        result.map(|found| found.map(|(token, _)| token))
    }

    async fn check_bearer_inner(
        config: &Snapshot,
        session: &Session,
        auth: &RouteAuth,
    ) -> std::result::Result<Option<(Arc<VerifiedToken>, bool)>, BearerError> {
        let req = session.req_header();
        let authorization = header(session, http::header::AUTHORIZATION);
        let token = match bearer::extract(authorization, req.uri.query(), false) {
            Ok(token) => token,
            Err(BearerError::Missing) if !auth.required => return Ok(None),
            Err(e) => return Err(e),
        };
        let provider = &config
            .oauth
            .as_ref()
            .ok_or(BearerError::Unavailable)?
            .provider;
        let validated = provider
            .validate_access_token(&token, config.bearer.denylist_fail_open)
            .await
            .map_err(BearerError::from)?;
        // A token requested for one route audience (RFC 8707 `resource`) is for that
        // audience's routes only.
        if let Some(resource) = &validated.token.resource {
            if auth.audience.as_ref() != Some(resource) {
                return Err(BearerError::InvalidToken(
                    "the token was issued for another audience",
                ));
            }
        }
        // The method was checked to have scopes before the token was looked at.
        let needed = auth.scopes_for(&req.method).unwrap_or_default();
        if needed.iter().any(|s| !validated.token.has_scope(s)) {
            return Err(BearerError::InsufficientScope(needed.join(" ")));
        }
        Ok(Some((validated.token, validated.cached)))
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// The configuration this request lives under, from start to end.
    config: Arc<Snapshot>,
    route: Option<Arc<Route>>,
    /// The validated bearer token of a protected route.
    identity: Option<Arc<VerifiedToken>>,
    /// Set when the gateway answered the request itself (an OAuth endpoint).
    local_route: Option<&'static str>,
    /// Upstream addresses this request already tried (and failed on).
    tried: Vec<std::net::SocketAddr>,
    /// The normal-form path routes were matched on, when it differs from `uri.path()`.
    matched_path: Option<String>,
    /// The origin-form target the upstream receives, when it differs from the client's.
    upstream_target: Option<Vec<u8>>,
    /// `Host` for the upstream of an absolute-form request that came without one.
    host_from_target: Option<String>,
    /// The address of the connection's peer: the client, or a proxy in front of it.
    peer: Option<IpAddr>,
    /// The client's address (see [`crate::client_address`]).
    client: Option<IpAddr>,
    /// The upstream of the last attempt.
    upstream: Option<std::net::SocketAddr>,
    /// CORS headers for an allowed cross-origin request on a route with a CORS policy.
    cors: Vec<(&'static str, String)>,
}

/// Writes `response` for a request that reached a route: with the route's CORS headers, so
/// a page can read why it was refused.
async fn answer(
    session: &mut Session,
    ctx: &RequestCtx,
    mut response: token_module::Response,
) -> Result<()> {
    response.headers.extend(ctx.cors.iter().cloned());
    respond::write(session, response).await
}

impl RequestCtx {
    /// The path the request was matched on: normal form.
    fn path<'a>(&'a self, req: &'a RequestHeader) -> &'a str {
        self.matched_path.as_deref().unwrap_or(req.uri.path())
    }
}

/// The request's host in the form routes compare (see [`normalize_host`]): the authority
/// of an HTTP/2 or absolute-form target, else `Host`. Pingora has already refused a request
/// whose `Host` disagrees with its target's authority.
fn request_host(req: &RequestHeader) -> Option<std::borrow::Cow<'_, str>> {
    use pingora::http::authority::raw_target_authority;
    let raw = match req.uri.authority() {
        Some(authority) => authority.as_str(),
        None => match raw_target_authority(req.raw_path()).authority() {
            Some(authority) => std::str::from_utf8(authority).ok()?,
            None => req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())?,
        },
    };
    Some(normalize_host(raw))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            config: self.live.load(),
            route: None,
            local_route: None,
            identity: None,
            tried: Vec::new(),
            matched_path: None,
            upstream_target: None,
            host_from_target: None,
            peer: None,
            client: None,
            upstream: None,
            cors: Vec::new(),
        }
    }

    /// Request phase: admission and route selection. Answers 400 for a target, method or
    /// credential spelling that must not be forwarded, serves the OAuth endpoints, answers
    /// 404 when no route matches and 405 for a method a protected route has no scopes for;
    /// otherwise checks the bearer token of a protected route and lets the request go
    /// upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let timeouts = ctx.config.connection_timeouts;
        connection::head_received(session, &timeouts);
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            session.set_keepalive(None);
        } else if timeouts.keepalive > PINGORA_KEEPALIVE && session.get_keepalive().is_some() {
            // Pingora bounds each read of an idle connection by its own keep-alive timeout
            // (60 s); a longer configured one must lift it (the stream enforces ours).
            session.set_keepalive(Some(timeouts.keepalive.as_secs() + 1));
        }
        ctx.peer = client_ip(session);
        ctx.client = ctx.peer.map(|peer| {
            ctx.config
                .trusted_proxies
                .client_address(peer, &session.req_header().headers)
        });
        if let Err(e) = self.admit(session.req_header(), ctx) {
            respond::write(session, e.into_response()).await?;
            return Ok(true);
        }
        let config = Arc::clone(&ctx.config);
        let req = session.req_header();
        if let Some(oauth) = &config.oauth {
            if let Some(endpoint) = oauth.endpoint_for(ctx.path(req)) {
                ctx.local_route = Some(endpoint.label());
                let limit = config
                    .oauth_rate_limit
                    .as_ref()
                    .map(|l| (l.as_ref(), config.store.as_ref()));
                let body_timeout = config.connection_timeouts.body;
                oauth
                    .serve(session, endpoint, ctx.client, limit, body_timeout)
                    .await?;
                return Ok(true);
            }
        }
        // The host is read into normal form once, and only if a route names one.
        let host = std::cell::OnceCell::new();
        let selected = config.routes.select(
            || host.get_or_init(|| request_host(req)).as_deref(),
            &req.method,
            ctx.path(req),
        );
        let selected = match selected {
            Ok(selected) => selected,
            Err(loose) => {
                let refused = GatewayError::InvalidRequest(loose.to_string());
                respond::write(session, refused.into_response()).await?;
                return Ok(true);
            }
        };
        let Some(route) = selected.map(Arc::clone) else {
            respond::write(session, GatewayError::NoRoute.into_response()).await?;
            return Ok(true);
        };
        if let Some(cors) = &route.cors {
            let req = session.req_header();
            if cors::is_preflight(req) {
                let reply = cors.preflight(req);
                ctx.route = Some(route);
                respond::write(session, reply).await?;
                return Ok(true);
            }
            if let Some(origin) = cors::origin(req).filter(|o| cors.allows(o)) {
                ctx.cors = cors.grant(origin);
            }
        }
        // A limit by address is checked before any token is looked at; one by client or
        // subject needs the validated token.
        let limit_first = route
            .rate_limit
            .as_ref()
            .filter(|l| l.key == RateKey::Address || route.auth.is_none());
        if let Some(limit) = limit_first {
            if self.over_limit(session, ctx, &route, limit).await? {
                return Ok(true);
            }
        }
        if let Some(auth) = &route.auth {
            if auth.scopes_for(&session.req_header().method).is_none() {
                let allow = auth.allowed_methods();
                ctx.route = Some(route);
                let refused = GatewayError::MethodNotAllowed { allow };
                answer(session, ctx, refused.into_response()).await?;
                return Ok(true);
            }
            match self.check_bearer(&config, session, auth).await {
                Ok(identity) => ctx.identity = identity,
                Err(e) => {
                    ctx.route = Some(route);
                    answer(session, ctx, e.into_response()).await?;
                    return Ok(true);
                }
            }
            let limit_after = route
                .rate_limit
                .as_ref()
                .filter(|l| l.key != RateKey::Address);
            if let Some(limit) = limit_after {
                if self.over_limit(session, ctx, &route, limit).await? {
                    return Ok(true);
                }
            }
        }
        ctx.route = Some(route);
        Ok(false)
    }

    /// Upstream phase: the route's next upstream, skipping those that refused a connection
    /// for this request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route selected"))?;
        let Some((addr, sni)) = route.balancer.select(&ctx.tried) else {
            let mut e = Error::new_up(ErrorType::ConnectNoRoute);
            e.context = Some("no upstream address to try".into());
            return Err(e);
        };
        ctx.upstream = Some(addr);
        let mut peer = HttpPeer::new(addr, route.tls.is_some(), sni.to_owned());
        peer.options.connection_timeout = Some(route.connect_timeout);
        peer.options.read_timeout = Some(route.read_timeout);
        peer.options.write_timeout = Some(route.write_timeout);
        if let Some(tls) = &route.tls {
            peer.options.verify_cert = tls.verify;
            peer.options.verify_hostname = tls.verify;
            peer.options.ca = tls.ca.clone();
            peer.group_key = tls.ca_pool_key;
        }
        Ok(Box::new(peer))
    }

    /// A connection to the upstream is up: its address's failure count starts over.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(route), Some(addr)) = (&ctx.route, ctx.upstream) {
            route.balancer.connected(addr);
        }
        Ok(())
    }

    /// A failed connect counts towards ejecting the address and is retried on another one
    /// until every address was tried. Nothing was sent yet, so this is safe for any method.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let Some(route) = &ctx.route else {
            return e;
        };
        if let Some(addr) = ctx.upstream {
            route.balancer.connect_failed(addr);
            ctx.tried.push(addr);
        }
        if ctx.tried.len() < route.balancer.len() {
            tracing::warn!(upstream = %peer, error = ?e.etype(), "upstream connect failed; trying another one");
            e.set_retry(true);
        }
        e
    }

    /// A failure after the request was (partly) sent: retried on another address when the
    /// method is idempotent, the route allows it and the request can be sent again whole;
    /// otherwise Pingora's rule (idempotent requests on a reused connection only).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let resendable = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none();
        if !resendable {
            e.set_retry(false);
            return e;
        }
        let others_left = ctx
            .route
            .as_ref()
            .is_some_and(|r| r.retry_idempotent && ctx.tried.len() + 1 < r.balancer.len());
        if others_left {
            // Sent again elsewhere: this address is not tried twice.
            if let Some(addr) = ctx.upstream {
                ctx.tried.push(addr);
            }
            e.set_retry(true);
        } else {
            // A stale pooled connection: the same address, on a fresh connection.
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    /// Sends the upstream the normal-form target that was matched, replaces client-sent
    /// identity headers with the token's, drops `Authorization` where the route says so, and
    /// adds the forwarding headers (`server.upstream_forwarded_header`).
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(target) = &ctx.upstream_target {
            upstream_request.set_raw_path(target)?;
        }
        if let Some(host) = ctx.host_from_target.take() {
            upstream_request.insert_header(http::header::HOST, host)?;
        }
        let identity = &ctx.config.bearer.identity;
        identity.strip_spoofed(upstream_request);
        if let Some(token) = &ctx.identity {
            identity.add(upstream_request, token)?;
        }
        let auth = ctx.route.as_ref().and_then(|r| r.auth.as_ref());
        if let Some((auth, ttl)) = auth.and_then(|a| a.upstream_jwt_ttl.map(|ttl| (a, ttl))) {
            // A phantom token: the upstream gets a JWT standing for the client's token.
            upstream_request.remove_header(&http::header::AUTHORIZATION);
            if let (Some(token), Some(audience), Some(oauth)) =
                (&ctx.identity, &auth.audience, &ctx.config.oauth)
            {
                let jwt = oauth
                    .provider
                    .upstream_token(token, audience, ttl)
                    .map_err(|_| {
                        Error::explain(ErrorType::InternalError, "cannot sign an upstream token")
                    })?;
                upstream_request
                    .insert_header(http::header::AUTHORIZATION, format!("Bearer {jwt}"))?;
            }
        } else if auth.is_some_and(|a| !a.forward_authorization) {
            upstream_request.remove_header(&http::header::AUTHORIZATION);
        }
        let keep = ctx.route.as_ref().map_or(&[][..], |r| &r.keep_headers);
        forwarding::strip_meaning_changers(upstream_request, keep);
        let proto = if is_tls(session) { "https" } else { "http" };
        let style = ctx.config.upstream_forwarded;
        let trusted = ctx
            .peer
            .is_some_and(|peer| ctx.config.trusted_proxies.trusts(peer));
        forwarding::add(style, upstream_request, ctx.peer, trusted, proto)?;
        Ok(())
    }

    /// Response phase (upstream responses): on a route with a CORS policy the gateway's
    /// CORS headers replace the upstream's.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.route.as_ref().is_some_and(|r| r.cors.is_some()) {
            use http::header::*;
            for name in [
                ACCESS_CONTROL_ALLOW_ORIGIN,
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                ACCESS_CONTROL_EXPOSE_HEADERS,
                ACCESS_CONTROL_ALLOW_METHODS,
                ACCESS_CONTROL_ALLOW_HEADERS,
                ACCESS_CONTROL_MAX_AGE,
            ] {
                upstream_response.remove_header(&name);
            }
            for (name, value) in &ctx.cors {
                upstream_response.append_header(*name, value)?;
            }
        }
        Ok(())
    }

    /// Fatal errors become a JSON error response: 504 when the upstream timed out, 502 when
    /// it could not be reached or misbehaved, 400 for a malformed request, 500 otherwise.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let error = GatewayError::from_proxy_error(e);
        let code = error.as_ref().map_or(0, GatewayError::status);
        if let Some(error) = error.filter(|_| session.response_written().is_none()) {
            // The connection is not reused after this; say so, so clients do not try.
            session.set_keepalive(None);
            if let Err(write_err) = answer(session, ctx, error.into_response()).await {
                tracing::debug!(error = %write_err, "could not write the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Metrics and the access-log line of every request, answered here or upstream.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        connection::response_sent(session);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = match (&ctx.route, ctx.local_route) {
            (Some(r), _) => r.name.as_str(),
            (None, Some(local)) => local,
            (None, None) => "unmatched",
        };
        let access_log = &ctx.config.access_log;
        if access_log.is_on() {
            let req = session.req_header();
            let token = ctx.identity.as_deref();
            access_log.write(&Entry {
                time: Entry::now(),
                client: ctx.client,
                method: req.method.as_str(),
                path: ctx.path(req),
                route,
                upstream: ctx.upstream.map(|a| a.to_string()),
                status,
                bytes: session.body_bytes_sent(),
                duration_ms: Entry::millis(ctx.started.elapsed()),
                client_id: token.map(|t| t.client_id.as_str()),
                sub: token
                    .and_then(|t| t.subject.as_ref())
                    .map(|s| s.user_id.as_str()),
            });
        }
        let elapsed = ctx.started.elapsed();
        match &ctx.route {
            Some(r) => r
                .metrics
                .get_or_init(|| self.metrics.for_route(&r.name))
                .observe(status, elapsed),
            None => match self.local_metrics.iter().find(|(l, _)| *l == route) {
                Some((_, m)) => m.observe(status, elapsed),
                None => self.metrics.for_route(route).observe(status, elapsed),
            },
        }
    }

    /// What Pingora's error logs say about a request: method, path and host. The query string
    /// is left out: it can carry codes and tokens.
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}",
            req.method,
            ctx.path(req),
            request_host(req).as_deref().unwrap_or("-")
        )
    }
}
