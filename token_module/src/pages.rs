//! The sign-in and consent page: one template (built in, or `oauth.sign_in_template`),
//! rendered by minijinja with every value escaped for HTML, and the Content-Security-Policy
//! it is served under.

use serde::Serialize;

/// The built-in template.
const BUILT_IN: &str = include_str!("pages/sign_in.html");
const NAME: &str = "sign_in.html";
/// The page of `response_mode=form_post`: it posts the answer to the client at once (a
/// button without script). Not replaceable: nothing of it is shown.
const FORM_POST: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Returning to the application</title></head>
<body><form method="post" action="{{ action }}">{% for pair in fields %}<input type="hidden" name="{{ pair[0] }}" value="{{ pair[1] }}">{% endfor %}
<noscript><p>Press Continue to return to the application.</p><button type="submit">Continue</button></noscript></form>
<script nonce="{{ nonce }}">document.forms[0].submit();</script></body></html>
"#;
const FORM_POST_NAME: &str = "form_post.html";

/// The compiled page template.
pub struct Pages {
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pages")
    }
}

/// Which step of the authorization the page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    SignIn,
    Consent,
}

/// The client as the page shows it.
#[derive(Debug, Serialize)]
pub struct PageClient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub logo_uri: Option<&'a str>,
}

/// A scope as the consent page lists it.
#[derive(Debug, Serialize)]
pub struct ScopeLine {
    pub name: String,
    pub description: String,
}

/// Everything a page shows.
#[derive(Debug, Serialize)]
pub struct Page<'a> {
    pub step: Step,
    pub client: PageClient<'a>,
    pub issuer: &'a str,
    pub scopes: Vec<ScopeLine>,
    pub user: Option<&'a str>,
    pub message: Option<&'a str>,
    pub action: &'a str,
    pub hidden: Vec<(&'a str, &'a str)>,
    pub csrf: &'a str,
}

impl Pages {
    /// Compiles `custom` (an operator's template) or the built-in one; the error says what
    /// is wrong with the template.
    pub fn new(custom: Option<String>) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        let source = custom.unwrap_or_else(|| BUILT_IN.to_string());
        env.add_template_owned(NAME, source)
            .map_err(|e| format!("the template does not compile: {e}"))?;
        env.add_template(FORM_POST_NAME, FORM_POST)
            .map_err(|e| format!("the form post page does not compile: {e}"))?;
        let pages = Self { env };
        // A template that fails on the variables it is given fails here, not at a user.
        for step in [Step::SignIn, Step::Consent] {
            pages
                .render(&Page::example(step))
                .map_err(|e| format!("the template does not render: {e}"))?;
        }
        Ok(pages)
    }

    /// The page as HTML.
    pub fn render(&self, page: &Page<'_>) -> Result<String, minijinja::Error> {
        self.env.get_template(NAME)?.render(page)
    }

    /// The page that posts `fields` to `action` (under a policy allowing the script with
    /// `nonce`, see [`form_post_policy`]).
    pub fn render_form_post(
        &self,
        action: &str,
        fields: &[(&str, &str)],
        nonce: &str,
    ) -> Result<String, minijinja::Error> {
        self.env
            .get_template(FORM_POST_NAME)?
            .render(minijinja::context! {
                action => action,
                fields => fields,
                nonce => nonce,
            })
    }
}

impl Page<'static> {
    fn example(step: Step) -> Self {
        Page {
            step,
            client: PageClient {
                id: "client",
                name: "A client",
                logo_uri: Some("https://example.com/logo.png"),
            },
            issuer: "example.com",
            scopes: vec![ScopeLine {
                name: "openid".into(),
                description: "Know who you are".into(),
            }],
            user: Some("user"),
            message: Some("message"),
            action: "/oauth2/authorize",
            hidden: vec![("client_id", "client")],
            csrf: "csrf",
        }
    }
}

/// What a scope lets a client do, in words: the configured description, a built-in one for
/// the OpenID Connect scopes, else the scope's name.
pub fn describe_scope(
    scope: &str,
    configured: &std::collections::HashMap<String, String>,
) -> String {
    if let Some(text) = configured.get(scope) {
        return text.clone();
    }
    match scope {
        "openid" => "Know who you are".into(),
        "profile" => "See your name and profile".into(),
        "email" => "See your email address".into(),
        "offline_access" => "Stay connected when you are not using it".into(),
        other => format!("Use “{other}”"),
    }
}

/// The origin of an absolute http(s) URL as a CSP source (`https://app.example.com:8443`),
/// if it is one that can be written in a policy without changing its meaning.
pub fn csp_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    // Credentials are no part of an origin.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let plain = !host_port.is_empty()
        && host_port
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    plain.then(|| format!("{scheme}://{}", host_port.to_ascii_lowercase()))
}

/// The policy of a sign-in or consent page. Chromium applies `form-action` to the redirect
/// that answers the form too, so the form may go to this server and to the origin of the
/// (already exactly matched) redirect URI, and nowhere else; `img-src` allows the client's
/// logo only.
pub fn page_policy(redirect_uri: &str, logo_uri: Option<&str>) -> String {
    let mut form_action = String::from("'self'");
    if let Some(origin) = csp_origin(redirect_uri) {
        form_action.push(' ');
        form_action.push_str(&origin);
    }
    let img = logo_uri
        .and_then(csp_origin)
        .map_or_else(String::new, |o| format!("; img-src {o}"));
    format!(
        "default-src 'none'; style-src 'unsafe-inline'{img}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The policy of the form post page: its one script (by `nonce`), and a form that may go to
/// the origin of the redirect URI only.
pub fn form_post_policy(redirect_uri: &str, nonce: &str) -> String {
    let target = csp_origin(redirect_uri).unwrap_or_else(|| "'none'".into());
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; form-action {target}; frame-ancestors 'none'; base-uri 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_page_renders_each_step_with_every_value_escaped() {
        let pages = Pages::new(None).expect("built-in template");
        let mut page = Page::example(Step::SignIn);
        page.client.name = "<script>alert(1)</script>";
        page.hidden = vec![("state", "\"><img src=x>")];
        let html = pages.render(&page).expect("render");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
                || html.contains("&lt;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(!html.contains("\"><img src=x>"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("name=\"decision\" value=\"sign_in\""));
        let consent = pages.render(&Page::example(Step::Consent)).expect("render");
        assert!(consent.contains("value=\"allow\"") && consent.contains("value=\"deny\""));
        assert!(consent.contains("Know who you are"));
    }

    #[test]
    fn the_form_post_page_carries_the_fields_escaped() {
        let pages = Pages::new(None).expect("built-in template");
        let html = pages
            .render_form_post(
                "https://app.example/cb?x=\"1\"",
                &[("code", "abc"), ("state", "\"><script>")],
                "n0nce",
            )
            .expect("render");
        assert!(html.contains("name=\"code\" value=\"abc\""), "{html}");
        assert!(!html.contains("\"><script>"), "{html}");
        assert!(html.contains("<script nonce=\"n0nce\">"));
        let policy = form_post_policy("https://app.example/cb", "n0nce");
        assert!(policy.contains("script-src 'nonce-n0nce'; form-action https://app.example;"));
    }

    #[test]
    fn a_broken_template_is_refused_with_its_reason() {
        assert!(Pages::new(Some("{% if %}".into())).is_err());
        assert!(Pages::new(Some("{{ nothing.here }}".into())).is_err());
        assert!(Pages::new(Some("<p>{{ client.name }}</p>".into())).is_ok());
    }

    #[test]
    fn the_policy_names_the_redirect_origin_only() {
        assert_eq!(
            csp_origin("https://App.example.com:8443/cb?x=1").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            csp_origin("http://u:p@localhost:8080/a").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(csp_origin("https://a b/").as_deref(), None);
        assert_eq!(csp_origin("https://a;script-src *").as_deref(), None);
        assert_eq!(csp_origin("javascript:alert(1)").as_deref(), None);
        let policy = page_policy("http://localhost:8080/authorization", None);
        assert!(
            policy.contains("form-action 'self' http://localhost:8080;"),
            "{policy}"
        );
        assert!(!policy.contains("img-src"));
        let policy = page_policy("https://x/cb", Some("https://cdn.example.com/logo.png"));
        assert!(
            policy.contains("img-src https://cdn.example.com;"),
            "{policy}"
        );
    }
}
