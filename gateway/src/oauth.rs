//! The OAuth and OpenID Connect endpoints inside the proxy: reads what token_module needs from
//! the Pingora session, hands it over, and writes back the response it returns.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora::proxy::Session;
use pingora::Result;
use token_module::form::named_client;
use token_module::{
    AuthorizeRequest, LogoutRequest, OAuthError, OAuthProvider, Response, Store, TokenRequest,
};

use crate::cors::{self, CorsPolicy};
use crate::metrics::Metrics;
use crate::rate_limit::{KeyValue, RateKey, RateLimit};
use crate::request::{cookies, header, is_tls};
use crate::respond;

/// The authorization server's endpoints.
pub struct OAuthEndpoints {
    pub provider: OAuthProvider,
    pub metrics: Arc<Metrics>,
}

/// One of the endpoints the gateway answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Authorize,
    Jwks,
    Discovery,
    Revoke,
    Introspect,
    Userinfo,
    Logout,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::Token,
        Endpoint::Authorize,
        Endpoint::Jwks,
        Endpoint::Discovery,
        Endpoint::Revoke,
        Endpoint::Introspect,
        Endpoint::Userinfo,
        Endpoint::Logout,
    ];

    /// The route label in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Token => "oauth-token",
            Endpoint::Authorize => "oauth-authorize",
            Endpoint::Jwks => "oauth-jwks",
            Endpoint::Discovery => "oidc-discovery",
            Endpoint::Revoke => "oauth-revoke",
            Endpoint::Introspect => "oauth-introspect",
            Endpoint::Userinfo => "oidc-userinfo",
            Endpoint::Logout => "oidc-logout",
        }
    }
}

/// What the token-endpoint metrics count.
struct Outcome {
    grant: Option<&'static str>,
    error: Option<&'static str>,
}

/// The discovery document's fixed path (OpenID Connect Discovery 1.0, section 4).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// A second, conventional home of the JWKS.
pub const WELL_KNOWN_JWKS_PATH: &str = "/.well-known/jwks.json";

/// A request body as read for an OAuth endpoint.
enum Body {
    Read(Vec<u8>),
    /// Past the limit (the rest left unread).
    TooLarge,
    /// Not whole within the deadline.
    TimedOut,
}

/// Reads the whole request body: at most `limit` bytes, within `deadline` (whatever the
/// protocol: an HTTP/2 stream that sends its headers and no DATA ends there too). Nothing is
/// allocated from what `Content-Length` claims, only from what arrives.
async fn read_body(session: &mut Session, limit: usize, deadline: Duration) -> Result<Body> {
    let declared = header(session, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Ok(Body::TooLarge);
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > limit {
                return Ok(Body::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Body::Read(body))
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Ok(Body::TimedOut))
}

impl OAuthEndpoints {
    /// The endpoint at `path`, if it is one.
    pub fn endpoint_for(&self, path: &str) -> Option<Endpoint> {
        let c = self.provider.config();
        let table = [
            (c.token_path.as_str(), Endpoint::Token),
            (c.authorize_path.as_str(), Endpoint::Authorize),
            (c.jwks_path.as_str(), Endpoint::Jwks),
            (WELL_KNOWN_JWKS_PATH, Endpoint::Jwks),
            (DISCOVERY_PATH, Endpoint::Discovery),
            (c.revoke_path.as_str(), Endpoint::Revoke),
            (c.introspect_path.as_str(), Endpoint::Introspect),
            (c.userinfo_path.as_str(), Endpoint::Userinfo),
            (c.logout_path.as_str(), Endpoint::Logout),
        ];
        table.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
    }

    /// Answers a request for `endpoint` from `client` (the address brute-force counters
    /// and rate limits count), under the endpoints' rate limit if there is one.
    /// `body_timeout` bounds the reading of its body.
    pub async fn serve(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        client: Option<IpAddr>,
        rate_limit: Option<(&RateLimit, &dyn Store)>,
        body_timeout: Duration,
    ) -> Result<()> {
        let method = session.req_header().method.clone();
        let allow = match endpoint {
            Endpoint::Token | Endpoint::Revoke | Endpoint::Introspect => "POST",
            Endpoint::Jwks | Endpoint::Discovery => "GET, HEAD",
            Endpoint::Authorize | Endpoint::Userinfo | Endpoint::Logout => "GET, HEAD, POST",
        };
        if let Some(policy) = self.cors_policy(endpoint) {
            if cors::is_preflight(session.req_header()) {
                let reply = policy.preflight(session.req_header());
                return respond::write(session, reply).await;
            }
        }
        if !allow.split(", ").any(|m| m == method.as_str()) {
            return self
                .refuse(session, endpoint, OAuthError::MethodNotAllowed { allow })
                .await;
        }
        let limit = self.provider.config().max_body_bytes;
        let body = match read_body(session, limit, body_timeout).await? {
            Body::Read(body) => body,
            Body::TooLarge => {
                // The rest of the body stays unread: this connection cannot carry another
                // request.
                session.set_keepalive(None);
                return self
                    .refuse(session, endpoint, OAuthError::PayloadTooLarge { limit })
                    .await;
            }
            Body::TimedOut => {
                session.set_keepalive(None);
                let timed_out = crate::error::GatewayError::RequestTimeout.into_response();
                return respond::write(session, timed_out).await;
            }
        };
        if let Some((limit, store)) = rate_limit {
            let named = match limit.key {
                RateKey::Address => None,
                // Only a registered client_id is a key: any other name is counted by
                // address, so inventing client_ids neither escapes the limit nor grows it.
                RateKey::Client | RateKey::Subject => named_client(
                    header(session, "authorization"),
                    header(session, "content-type"),
                    &body,
                )
                .filter(|id| self.provider.config().clients.contains_key(id)),
            };
            let value = KeyValue::of(limit.key, client, None, named.as_deref());
            if let Err(refused) = limit.check(value, store).await {
                self.metrics
                    .rate_limited
                    .with_label_values(&["oauth"])
                    .inc();
                return respond::write(session, refused.into_response()).await;
            }
        }
        let query = session.req_header().uri.query().map(str::to_string);
        let form = TokenRequest {
            content_type: header(session, "content-type"),
            authorization: header(session, "authorization"),
            query: query.as_deref(),
            body: &body,
            client_ip: client,
        };
        let response = match endpoint {
            Endpoint::Token => {
                let mut outcome = self.provider.token(form).await;
                let counted = Outcome {
                    grant: outcome.grant.map(|g| g.as_str()),
                    error: outcome.error,
                };
                self.add_cors(session, endpoint, &body, &mut outcome.response)
                    .await;
                return self
                    .finish(session, endpoint, counted, outcome.response)
                    .await;
            }
            Endpoint::Revoke => self.provider.revoke(form).await,
            Endpoint::Introspect => self.provider.introspect(form).await,
            Endpoint::Userinfo => {
                self.provider
                    .userinfo(
                        method.as_str(),
                        header(session, "authorization"),
                        query.as_deref(),
                    )
                    .await
            }
            Endpoint::Jwks => self.provider.jwks(),
            Endpoint::Discovery => self.provider.discovery(),
            Endpoint::Authorize => {
                let cookie = cookies(session);
                self.provider
                    .authorize(AuthorizeRequest {
                        method: method.as_str(),
                        query: query.as_deref(),
                        content_type: header(session, "content-type"),
                        body: &body,
                        authorization: header(session, "authorization"),
                        cookie: cookie.as_deref(),
                        client_ip: client,
                        secure: is_tls(session),
                    })
                    .await
            }
            Endpoint::Logout => {
                let cookie = cookies(session);
                self.provider
                    .logout(LogoutRequest {
                        method: method.as_str(),
                        query: query.as_deref(),
                        content_type: header(session, "content-type"),
                        body: &body,
                        cookie: cookie.as_deref(),
                        secure: is_tls(session),
                    })
                    .await
            }
        };
        let mut response = response;
        self.add_cors(session, endpoint, &body, &mut response).await;
        respond::write(session, response).await
    }

    /// The CORS policy of the endpoints browsers call with credentials of a client: the
    /// origins any client allows (a preflight does not say which client is calling).
    fn cors_policy(&self, endpoint: Endpoint) -> Option<CorsPolicy> {
        let methods: &[http::Method] = match endpoint {
            Endpoint::Token | Endpoint::Revoke => &[http::Method::POST],
            Endpoint::Userinfo => &[http::Method::GET, http::Method::POST],
            _ => return None,
        };
        let mut origins: Vec<String> = self
            .provider
            .config()
            .clients
            .values()
            .flat_map(|c| c.allowed_origins.iter().cloned())
            .collect();
        origins.sort();
        origins.dedup();
        Some(CorsPolicy::for_endpoint(origins, methods))
    }

    /// CORS headers of an actual response: JWKS and discovery are public documents, readable
    /// from any page; token, revoke and userinfo answers are readable by the origins the
    /// calling client allows (the client the request names, or the token's at userinfo).
    async fn add_cors(
        &self,
        session: &Session,
        endpoint: Endpoint,
        body: &[u8],
        response: &mut Response,
    ) {
        let Some(origin) = cors::origin(session.req_header()) else {
            return;
        };
        let authorization = header(session, "authorization");
        let client = match endpoint {
            Endpoint::Jwks | Endpoint::Discovery => {
                response
                    .headers
                    .push(("access-control-allow-origin", "*".into()));
                return;
            }
            Endpoint::Token | Endpoint::Revoke => {
                named_client(authorization, header(session, "content-type"), body)
            }
            Endpoint::Userinfo => {
                let query = session.req_header().uri.query();
                match token_module::bearer::extract(authorization, query, false) {
                    Ok(token) => self
                        .provider
                        .validate_access_token(&token, false)
                        .await
                        .ok()
                        .map(|v| v.token.client_id.clone()),
                    Err(_) => None,
                }
            }
            Endpoint::Authorize | Endpoint::Introspect | Endpoint::Logout => None,
        };
        if client.is_some_and(|c| self.provider.client_allows_origin(&c, origin)) {
            let policy = CorsPolicy::for_endpoint(Vec::new(), &[]);
            response.headers.extend(policy.grant(origin));
        }
    }

    /// Answers with `error` before the request reached token_module.
    async fn refuse(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        error: OAuthError,
    ) -> Result<()> {
        let outcome = Outcome {
            grant: None,
            error: Some(error.code()),
        };
        self.finish(session, endpoint, outcome, error.into_response())
            .await
    }

    /// Writes `response`, counting token-endpoint outcomes by grant and error code.
    async fn finish(
        &self,
        session: &mut Session,
        endpoint: Endpoint,
        outcome: Outcome,
        response: Response,
    ) -> Result<()> {
        if endpoint == Endpoint::Token {
            let grant = outcome.grant.unwrap_or("unknown");
            match outcome.error {
                None => self.metrics.tokens_issued.with_label_values(&[grant]).inc(),
                Some(error) => self
                    .metrics
                    .token_failures
                    .with_label_values(&[grant, error])
                    .inc(),
            }
        }
        respond::write(session, response).await
    }
}
