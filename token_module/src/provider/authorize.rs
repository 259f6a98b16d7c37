//! The authorization endpoint (RFC 6749 4.1.1–4.1.2, RFC 7636): checks the request, signs the
//! user in (an HTML form with a CSRF token, or HTTP Basic for non-browser callers), and
//! redirects back with a single-use code.

use std::net::IpAddr;

use crate::config::{Client, Grant};
use crate::crypto::{self, ct_eq};
use crate::error::{error_page, sign_in_failed, AuthorizeError, OAuthError};
use crate::form::{basic_credentials, Params};
use crate::provider::OAuthProvider;
use crate::records::{store_key, CodeRecord, Subject};
use crate::response::Response;
use crate::response::{append_query, html_escape};

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
const FORWARDED: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// The request checked: who asks, where to send the answer, for what.
struct Checked<'c> {
    client: &'c Client,
    redirect_uri: String,
    redirect_uri_given: bool,
    scope: Vec<String>,
    challenge: Option<(String, String)>,
}

fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
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
                    return error_page(
                        400,
                        "The login form must be sent as application/x-www-form-urlencoded.",
                    );
                }
                Params::parse(req.body)
            }
            _ => return OAuthError::MethodNotAllowed { allow: "GET, POST" }.into_response(),
        };
        let params = match params {
            Ok(p) => p,
            Err(e) => return error_page(400, &e.description()),
        };

        // Until the client and its redirect URI are known good, errors are shown, not sent.
        let Some(client) = params
            .get("client_id")
            .and_then(|id| self.config.clients.get(id))
        else {
            return error_page(400, "The client_id is missing or unknown.");
        };
        let (redirect_uri, given) = match params.get("redirect_uri") {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_string(), true),
            Some(_) => {
                return error_page(400, "The redirect_uri is not registered for this client.")
            }
            None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
            None => {
                return error_page(
                    400,
                    "The redirect_uri is missing and the client registered several.",
                )
            }
        };
        let state = params.get("state");
        let send_back = |e: AuthorizeError| e.into_redirect(&redirect_uri, state);
        let checked = match self.check_authorization(client, &params, redirect_uri.clone(), given) {
            Ok(c) => c,
            Err(e) => return send_back(e),
        };

        // Sign the user in.
        let basic = req.authorization.and_then(basic_credentials);
        let user = if let Some(creds) = basic {
            let Ok(creds) = creds else {
                return sign_in_failed();
            };
            match self
                .authenticate_user(&creds.id, &creds.secret, req.client_ip)
                .await
            {
                Ok(Some(user)) => user,
                Ok(None) => return sign_in_failed(),
                Err(e) => return send_back(e.into()),
            }
        } else if req.method == "POST" {
            let form_token = params.get("csrf_token").unwrap_or("");
            let cookie_token = cookie_value(req.cookie, CSRF_COOKIE).unwrap_or("");
            if form_token.is_empty() || !ct_eq(form_token.as_bytes(), cookie_token.as_bytes()) {
                return error_page(
                    403,
                    "The sign-in form expired or was not sent from this site. Start again.",
                );
            }
            let (Some(username), Some(password)) = (params.get("username"), params.get("password"))
            else {
                return self.login_form(
                    &params,
                    req.secure,
                    Some("Enter a username and a password."),
                );
            };
            match self
                .authenticate_user(username, password, req.client_ip)
                .await
            {
                Ok(Some(user)) => user,
                Ok(None) => {
                    return self.login_form(
                        &params,
                        req.secure,
                        Some("The username or password is incorrect."),
                    )
                }
                Err(OAuthError::TooManyAttempts { .. }) => {
                    return self.login_form(
                        &params,
                        req.secure,
                        Some("Too many failed attempts. Try again later."),
                    )
                }
                Err(e) => return send_back(e.into()),
            }
        } else {
            return self.login_form(&params, req.secure, None);
        };

        let subject = Subject {
            user_id: user.user_id.clone(),
            user_type: user.user_type.clone(),
            username: Some(user.username.clone()),
        };
        let (challenge, method) = checked
            .challenge
            .map_or((None, None), |(c, m)| (Some(c), Some(m)));
        let record = CodeRecord {
            client_id: checked.client.client_id.clone(),
            redirect_uri: checked.redirect_uri.clone(),
            redirect_uri_given: checked.redirect_uri_given,
            scope: checked.scope,
            subject,
            nonce: params.get("nonce").map(str::to_string),
            code_challenge: challenge,
            code_challenge_method: method,
            auth_time: self.now(),
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
            return send_back(e.into());
        }
        let mut pairs = vec![("code", code.as_str())];
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        Response::redirect(append_query(&checked.redirect_uri, &pairs))
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
        let scope = self
            .resolve_scope(client, params.get("scope"), None)
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

    /// The sign-in page, with a fresh CSRF token in a cookie and in the form.
    fn login_form(&self, params: &Params, secure: bool, message: Option<&str>) -> Response {
        let csrf = crypto::id();
        let mut hidden = String::new();
        for name in FORWARDED {
            if let Some(value) = params.get(name) {
                hidden.push_str(&format!(
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    html_escape(value)
                ));
            }
        }
        let client = params.get("client_id").unwrap_or("");
        let alert = message
            .map(|m| {
                format!(
                    "<p role=\"alert\" style=\"color:#b00\">{}</p>",
                    html_escape(m)
                )
            })
            .unwrap_or_default();
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title></head><body>\
             <h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{alert}\
             <form method=\"post\" action=\"{action}\">{hidden}\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
             <label>Username <input name=\"username\" autocomplete=\"username\" required></label><br>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label><br>\
             <button type=\"submit\">Sign in</button></form></body></html>",
            client = html_escape(client),
            action = html_escape(&self.config.authorize_path),
        );
        let status = if message.is_some() { 401 } else { 200 };
        let mut resp = Response::html(status, page);
        let secure = if secure { "; Secure" } else { "" };
        resp.headers.push((
            "set-cookie",
            format!(
                "{CSRF_COOKIE}={csrf}; Path={}; HttpOnly; SameSite=Strict{secure}",
                self.config.authorize_path
            ),
        ));
        resp
    }
}
