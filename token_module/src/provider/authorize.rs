//! The authorization endpoint (RFC 6749 4.1.1–4.1.2, RFC 7636): checks the request, signs the
//! user in (an HTML form with a CSRF token, or HTTP Basic for non-browser callers), and
//! redirects back with a single-use code.

use std::net::IpAddr;

use crate::config::{Client, Grant, User};
use crate::crypto::{self, ct_eq};
use crate::error::{sign_in_failed, AuthorizeError, OAuthError, PageError};
use crate::form::{basic_credentials, Params};
use crate::pages::{
    describe_scope, form_post_policy, page_policy, Page, PageClient, ScopeLine, Step,
};
use crate::provider::OAuthProvider;
use crate::records::{store_key, CodeRecord, Subject};
use crate::response::append_query;
use crate::response::Response;

/// The cookie that carries the login form's CSRF token (double-submit).
pub const CSRF_COOKIE: &str = "tollgate_csrf";

/// An authorization request as the gateway read it.
pub struct AuthorizeRequest<'a> {
    /// `GET` (parameters in the query) or `POST` (the login form, parameters in the body).
    pub method: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
    /// The request came over TLS (the CSRF cookie is then `Secure`).
    pub secure: bool,
}

/// RFC 7636 4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The OAuth parameters the login form carries through.
const FORWARDED: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// The request checked: who asks, where to send the answer, for what.
pub(crate) struct Checked<'c> {
    pub client: &'c Client,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: Vec<String>,
    pub challenge: Option<(String, String)>,
}

/// An authorization request past its checks, as the steps after them need it.
pub(crate) struct PageRequest<'a> {
    pub params: &'a Params,
    pub checked: &'a Checked<'a>,
    /// The request came over TLS (cookies are then `Secure`).
    pub secure: bool,
    pub mode: ResponseMode,
}

/// How the answer reaches the client (OAuth 2.0 Multiple Response Types, and Form Post
/// Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    /// A `302` to the redirect URI, the answer in its query (the default for `code`).
    Query,
    /// A page that posts the answer to the redirect URI: it stays out of URLs, histories
    /// and `Referer` headers.
    FormPost,
}

/// OpenID Connect's `prompt` (Core 3.1.2.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Prompt {
    /// Show nothing: answer `login_required` / `consent_required` instead.
    none: bool,
    /// Ask the user to sign in again even when signed in.
    login: bool,
    /// Ask the user to allow the client even when it was allowed.
    consent: bool,
}

impl Prompt {
    fn parse(value: Option<&str>) -> Result<Self, AuthorizeError> {
        let mut prompt = Self::default();
        for word in value.unwrap_or("").split(' ').filter(|w| !w.is_empty()) {
            match word {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                // One account per user: there is nothing to select.
                "select_account" => {}
                other => {
                    return Err(AuthorizeError::new(
                        "invalid_request",
                        format!("prompt `{other}` is not supported"),
                    ))
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(AuthorizeError::new(
                "invalid_request",
                "prompt=none cannot be combined with another value",
            ));
        }
        Ok(prompt)
    }
}

/// How the pages name a user: the configured name, else the login name.
fn display_name(user: &User) -> &str {
    user.name.as_deref().unwrap_or(&user.username)
}

pub(crate) fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

impl OAuthProvider {
    /// Answers an authorization request.
    pub async fn authorize(&self, req: AuthorizeRequest<'_>) -> Response {
        let params = match req.method {
            "GET" | "HEAD" => Params::parse(req.query.unwrap_or("").as_bytes()),
            "POST" => {
                if !crate::form::is_form(req.content_type) {
                    return PageError::bad_request(
                        "The login form must be sent as application/x-www-form-urlencoded.",
                    );
                }
                Params::parse(req.body)
            }
            _ => return OAuthError::MethodNotAllowed { allow: "GET, POST" }.into_response(),
        };
        let params = match params {
            Ok(p) => p,
            Err(e) => return PageError::bad_request(&e.description()),
        };

        // Until the client and its redirect URI are known good, errors are shown, not sent.
        let Some(client) = params
            .get("client_id")
            .and_then(|id| self.config.clients.get(id))
        else {
            return PageError::bad_request("The client_id is missing or unknown.");
        };
        let (redirect_uri, given) = match params.get("redirect_uri") {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
            Some(_) => {
                return PageError::bad_request(
                    "The redirect_uri is not registered for this client.",
                )
            }
            None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
            None => {
                return PageError::bad_request(
                    "The redirect_uri is missing and the client registered several.",
                )
            }
        };
        let state = params.get("state");
        let (mode, bad_mode) = match params.get("response_mode") {
            None | Some("query") => (ResponseMode::Query, None),
            Some("form_post") => (ResponseMode::FormPost, None),
            Some(other) => (ResponseMode::Query, Some(other)),
        };
        let send_back = |e: AuthorizeError| self.answer(&redirect_uri, mode, &e.pairs(state));
        if let Some(other) = bad_mode {
            return send_back(AuthorizeError::new(
                "invalid_request",
                format!("response_mode `{other}` is not supported"),
            ));
        }
        let checked = match self.check_authorization(client, &params, redirect_uri.clone(), given) {
            Ok(c) => c,
            Err(e) => return send_back(e),
        };

        let prompt = match Prompt::parse(params.get("prompt")) {
            Ok(p) => p,
            Err(e) => return send_back(e),
        };
        let max_age = match params.get("max_age").map(str::parse::<u64>) {
            None => None,
            Some(Ok(seconds)) => Some(seconds),
            Some(Err(_)) => {
                return send_back(AuthorizeError::new(
                    "invalid_request",
                    "max_age must be a number of seconds",
                ))
            }
        };
        let page = PageRequest {
            params: &params,
            checked: &checked,
            secure: req.secure,
            mode,
        };

        // HTTP Basic: a caller that is not a browser signs the user in with the user's own
        // password, which is the user's own act: no session, no consent page.
        if let Some(creds) = req.authorization.and_then(basic_credentials) {
            let Ok(creds) = creds else {
                return sign_in_failed();
            };
            return match self
                .authenticate_user(&creds.id, &creds.secret, req.client_ip)
                .await
            {
                Ok(Some(user)) => self.issue_code(&page, user, self.now(), None).await,
                Ok(None) => sign_in_failed(),
                Err(e) => send_back(e.into()),
            };
        }

        let session = match self.session(req.cookie).await {
            Ok(session) => session,
            Err(e) => return send_back(e.into()),
        };
        if req.method == "POST" {
            let form_token = params.get("csrf_token").unwrap_or("");
            let cookie_token = cookie_value(req.cookie, CSRF_COOKIE).unwrap_or("");
            if form_token.is_empty() || !ct_eq(form_token.as_bytes(), cookie_token.as_bytes()) {
                return PageError::forged_form(
                    "The sign-in form expired or was not sent from this site. Start again.",
                );
            }
            return match params.get("decision").unwrap_or("sign_in") {
                "cancel" | "deny" => send_back(AuthorizeError::new(
                    "access_denied",
                    "the user did not allow the request",
                )),
                "allow" => match session {
                    Some(session) => {
                        if let Err(e) = self.remember_consent(&page, session.user).await {
                            return send_back(e.into());
                        }
                        self.issue_code(&page, session.user, session.auth_time, None)
                            .await
                    }
                    None => self.page(
                        &page,
                        Step::SignIn,
                        Some("Your sign-in expired. Sign in again."),
                        None,
                        None,
                    ),
                },
                _ => self.sign_in(&page, req.client_ip).await,
            };
        }

        let now = self.now();
        let signed_in = session.as_ref().filter(|s| {
            !prompt.login && max_age.is_none_or(|m| now.saturating_sub(s.auth_time) <= m)
        });
        let Some(session) = signed_in else {
            if prompt.none {
                return send_back(AuthorizeError::new(
                    "login_required",
                    "the user is not signed in",
                ));
            }
            let user = session.as_ref().map(|s| display_name(s.user));
            return self.page(&page, Step::SignIn, None, user, None);
        };
        match self
            .needs_consent(&page, session.user, prompt.consent)
            .await
        {
            Ok(false) => {
                self.issue_code(&page, session.user, session.auth_time, None)
                    .await
            }
            Ok(true) if prompt.none => send_back(AuthorizeError::new(
                "consent_required",
                "the user has not allowed this client",
            )),
            Ok(true) => self.page(
                &page,
                Step::Consent,
                None,
                Some(display_name(session.user)),
                None,
            ),
            Err(e) => send_back(e.into()),
        }
    }

    /// The sign-in form was sent: the user signs in, a session starts, and the request
    /// goes on to the consent page or to the client.
    async fn sign_in(&self, page: &PageRequest<'_>, client_ip: Option<IpAddr>) -> Response {
        let send_back = |e: AuthorizeError| self.send_back(page, e);
        let (Some(username), Some(password)) =
            (page.params.get("username"), page.params.get("password"))
        else {
            return self.page(
                page,
                Step::SignIn,
                Some("Enter a username and a password."),
                None,
                None,
            );
        };
        let user = match self.authenticate_user(username, password, client_ip).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return self.page(
                    page,
                    Step::SignIn,
                    Some("The username or password is incorrect."),
                    None,
                    None,
                )
            }
            Err(OAuthError::TooManyAttempts { .. }) => {
                return self.page(
                    page,
                    Step::SignIn,
                    Some("Too many failed attempts. Try again later."),
                    None,
                    None,
                )
            }
            Err(e) => return send_back(e.into()),
        };
        let auth_time = self.now();
        let cookie = match self.start_session(user, auth_time, page.secure).await {
            Ok(cookie) => cookie,
            Err(e) => return send_back(e.into()),
        };
        match self.needs_consent(page, user, false).await {
            Ok(true) => self.page(page, Step::Consent, None, Some(display_name(user)), cookie),
            Ok(false) => self.issue_code(page, user, auth_time, cookie).await,
            Err(e) => send_back(e.into()),
        }
    }

    /// A code for `user`, who authenticated at `auth_time`, sent to the client; with the
    /// session cookie a sign-in just set.
    async fn issue_code(
        &self,
        page: &PageRequest<'_>,
        user: &User,
        auth_time: u64,
        cookie: Option<String>,
    ) -> Response {
        let checked = page.checked;
        let subject = Subject {
            user_id: user.user_id.clone(),
            user_type: user.user_type.clone(),
            username: Some(user.username.clone()),
        };
        let (challenge, method) = checked
            .challenge
            .clone()
            .map_or((None, None), |(c, m)| (Some(c), Some(m)));
        let record = CodeRecord {
            client_id: checked.client.client_id.clone(),
            redirect_uri: checked.redirect_uri.clone(),
            redirect_uri_given: checked.redirect_uri_given,
            scope: checked.scope.clone(),
            subject,
            nonce: page.params.get("nonce").map(str::to_string),
            code_challenge: challenge,
            code_challenge_method: method,
            auth_time,
        };
        let code = crypto::authorization_code();
        let stored = match serde_json::to_vec(&record) {
            Ok(value) => self
                .store
                .put(
                    &store_key::code(&crypto::digest_hex(&code)),
                    &value,
                    self.config.code_ttl,
                )
                .await
                .map_err(OAuthError::from),
            Err(_) => Err(OAuthError::ServerError),
        };
        if let Err(e) = stored {
            return self.send_back(page, e.into());
        }
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = page.params.get("state") {
            pairs.push(("state", s));
        }
        let mut resp = self.answer(&checked.redirect_uri, page.mode, &pairs);
        if let Some(cookie) = cookie {
            resp.headers.push(("set-cookie", cookie));
        }
        resp
    }

    /// `e` sent back to the client (RFC 6749 4.1.2.1), with the request's `state`.
    fn send_back(&self, page: &PageRequest<'_>, e: AuthorizeError) -> Response {
        let pairs = e.pairs(page.params.get("state"));
        self.answer(&page.checked.redirect_uri, page.mode, &pairs)
    }

    /// `pairs` (a code, or an error, and `state`) delivered to `redirect_uri` in `mode`.
    fn answer(&self, redirect_uri: &str, mode: ResponseMode, pairs: &[(&str, &str)]) -> Response {
        match mode {
            ResponseMode::Query => Response::redirect(append_query(redirect_uri, pairs)),
            ResponseMode::FormPost => {
                let nonce = crypto::id();
                match self
                    .config
                    .pages
                    .render_form_post(redirect_uri, pairs, &nonce)
                {
                    Ok(html) => {
                        let mut resp = Response::html(200, html);
                        resp.set_header(
                            "content-security-policy",
                            form_post_policy(redirect_uri, &nonce),
                        );
                        resp
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the form post page did not render");
                        PageError::internal("The answer could not be sent to the application.")
                    }
                }
            }
        }
    }

    /// The checks whose failures go back to the client (RFC 6749 4.1.2.1).
    fn check_authorization<'c>(
        &self,
        client: &'c Client,
        params: &Params,
        redirect_uri: String,
        redirect_uri_given: bool,
    ) -> Result<Checked<'c>, AuthorizeError> {
        match params.get("response_type") {
            Some("code") => {}
            Some(other) => {
                return Err(AuthorizeError::new(
                    "unsupported_response_type",
                    format!("response_type `{other}` is not supported"),
                ))
            }
            None => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "response_type is missing",
                ))
            }
        }
        if !client.allows(Grant::AuthorizationCode) {
            return Err(AuthorizeError::new(
                "unauthorized_client",
                "the client may not use the authorization code grant",
            ));
        }
        let scope = super::issuance::resolve_scope(client, params.get("scope"), None)
            .map_err(AuthorizeError::from)?;
        let challenge = match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            (None, Some(_)) => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                ))
            }
            (None, None) if client.public => {
                return Err(AuthorizeError::new(
                    "invalid_request",
                    "public clients must use PKCE (code_challenge)",
                ))
            }
            (None, None) => None,
            (Some(c), method) => {
                let method = method.unwrap_or("plain");
                match method {
                    "S256" => {}
                    "plain" if client.allow_plain_pkce => {}
                    "plain" => {
                        return Err(AuthorizeError::new(
                            "invalid_request",
                            "code_challenge_method must be S256",
                        ))
                    }
                    other => {
                        return Err(AuthorizeError::new(
                            "invalid_request",
                            format!("code_challenge_method `{other}` is not supported"),
                        ))
                    }
                }
                if !is_pkce_value(c) {
                    return Err(AuthorizeError::new(
                        "invalid_request",
                        "code_challenge must be 43 to 128 unreserved characters",
                    ));
                }
                Some((c.to_string(), method.to_string()))
            }
        };
        Ok(Checked {
            client,
            redirect_uri,
            redirect_uri_given,
            scope,
            challenge,
        })
    }

    /// The sign-in or consent page, with a fresh CSRF token in a cookie and in the form,
    /// under a policy that lets the form's answer reach the client (see
    /// [`crate::pages::page_policy`]); `cookie` is a session cookie a sign-in just set.
    fn page(
        &self,
        page: &PageRequest<'_>,
        step: Step,
        message: Option<&str>,
        user: Option<&str>,
        cookie: Option<String>,
    ) -> Response {
        let client = page.checked.client;
        let csrf = crypto::id();
        let hidden = FORWARDED
            .iter()
            .filter_map(|name| page.params.get(name).map(|v| (*name, v)))
            .collect();
        let scopes = page
            .checked
            .scope
            .iter()
            .map(|s| ScopeLine {
                name: s.clone(),
                description: describe_scope(s, &self.config.scope_descriptions),
            })
            .collect();
        let issuer_host = self
            .config
            .issuer
            .split_once("://")
            .map_or(self.config.issuer.as_str(), |(_, rest)| rest);
        let rendered = self.config.pages.render(&Page {
            step,
            client: PageClient {
                id: &client.client_id,
                name: &client.name,
                logo_uri: client.logo_uri.as_deref(),
            },
            issuer: issuer_host,
            scopes,
            user,
            message,
            action: &self.config.authorize_path,
            hidden,
            csrf: &csrf,
        });
        let html = match rendered {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(error = %e, "the sign-in page did not render");
                return PageError::internal("The sign-in page could not be shown.");
            }
        };
        let status = if message.is_some() { 401 } else { 200 };
        let mut resp = Response::html(status, html);
        resp.set_header(
            "content-security-policy",
            page_policy(&page.checked.redirect_uri, client.logo_uri.as_deref()),
        );
        let secure = if page.secure { "; Secure" } else { "" };
        resp.headers.push((
            "set-cookie",
            format!(
                "{CSRF_COOKIE}={csrf}; Path={}; HttpOnly; SameSite=Strict{secure}",
                self.config.authorize_path
            ),
        ));
        if let Some(cookie) = cookie {
            resp.headers.push(("set-cookie", cookie));
        }
        resp
    }
}
