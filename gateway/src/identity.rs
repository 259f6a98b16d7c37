//! The caller's identity towards upstreams: the headers Tollgate sets from a validated token,
//! and the removal of every copy a client tried to send itself.

use http::HeaderName;
use pingora::http::RequestHeader;
use token_module::VerifiedToken;

/// The configured identity header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user_id: IdentityHeader,
    pub user_type: IdentityHeader,
    pub client_id: IdentityHeader,
    pub scopes: IdentityHeader,
}

/// One identity header's name: to match (lower case) and as the upstream gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeader {
    name: HeaderName,
    /// As configured (`X-Client-Id`): Pingora writes these bytes as they are, where an
    /// `http::HeaderName` would be copied into them for each request.
    wire: bytes::Bytes,
}

impl IdentityHeader {
    /// `None` when `configured` is not a header name.
    pub fn parse(configured: &str) -> Option<Self> {
        Some(Self {
            name: HeaderName::from_bytes(configured.as_bytes()).ok()?,
            wire: bytes::Bytes::copy_from_slice(configured.as_bytes()),
        })
    }

    fn set(
        &self,
        req: &mut RequestHeader,
        value: impl TryInto<http::HeaderValue>,
    ) -> pingora::Result<()> {
        req.insert_header(self.wire.clone(), value)
    }
}

/// `name` is `identity`, or `identity` with some `-` written `_` (both are lower case).
fn same_but_underscores(name: &str, identity: &str) -> bool {
    name.len() == identity.len()
        && name
            .bytes()
            .zip(identity.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

impl IdentityHeaders {
    fn names(&self) -> [&HeaderName; 4] {
        [
            &self.user_id.name,
            &self.user_type.name,
            &self.client_id.name,
            &self.scopes.name,
        ]
    }

    /// Removes from an upstream request every client-sent identity header (also spelled
    /// with `_` for `-`, which some servers treat as the same header), every header the
    /// client listed in `Connection` (hop-by-hop by RFC 9110 7.6.1) and `Connection` itself.
    pub fn strip_spoofed(&self, req: &mut RequestHeader) {
        let mut doomed: Vec<HeaderName> = Vec::new();
        for value in req.headers.get_all(http::header::CONNECTION) {
            for token in value.to_str().unwrap_or("").split(',') {
                let token = token.trim();
                // Host is needed to reach the upstream; dropping it only breaks the request.
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    if name != http::header::HOST {
                        doomed.push(name);
                    }
                }
            }
        }
        for name in req.headers.keys() {
            if self
                .names()
                .iter()
                .any(|n| same_but_underscores(name.as_str(), n.as_str()))
            {
                doomed.push(name.clone());
            }
        }
        if !doomed.is_empty() {
            doomed.push(http::header::CONNECTION);
        }
        for name in doomed {
            req.remove_header(&name);
        }
    }

    /// Sets the identity headers from a validated token.
    pub fn add(&self, req: &mut RequestHeader, token: &VerifiedToken) -> pingora::Result<()> {
        self.client_id.set(req, token.client_id.as_str())?;
        self.scopes.set(req, token.scope.join(" "))?;
        if let Some(subject) = &token.subject {
            self.user_id.set(req, subject.user_id.as_str())?;
            if let Some(user_type) = &subject.user_type {
                self.user_type.set(req, user_type.as_str())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> IdentityHeaders {
        let header = |name| IdentityHeader::parse(name).expect("a header name");
        IdentityHeaders {
            user_id: header("X-User-Id"),
            user_type: header("X-User-Type"),
            client_id: header("X-Client-Id"),
            scopes: header("x-scopes"),
        }
    }

    #[test]
    fn strips_every_spelling_and_connection_listed_headers() {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        for (name, value) in [
            ("X-User-Id", "admin"),
            ("x_user_id", "admin"),
            ("X_SCOPES", "all"),
            ("connection", "keep-alive, X-Forwarded-User, host"),
            ("x-forwarded-user", "root"),
            ("host", "example.com"),
            ("x-other", "kept"),
        ] {
            req.append_header(name.to_string(), value).expect("header");
        }
        headers().strip_spoofed(&mut req);
        let left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "x-other"], "{left:?}");
    }

    /// The upstream gets each header under its name as configured, with the token's values.
    #[test]
    fn adds_the_token_under_the_configured_names() {
        let token = VerifiedToken {
            jti: "j1".into(),
            client_id: "svc".into(),
            scope: vec!["petstore.r".into(), "petstore.w".into()],
            subject: None,
            iat: 0,
            exp: 1,
            nbf: None,
            iss: None,
            aud: None,
            format: token_module::config::TokenFormat::Jwt,
            resource: None,
        };
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        headers().add(&mut req, &token).expect("add");
        let sent: Vec<(String, &str)> = req
            .case_header_iter()
            .map(|(name, value)| {
                let name = String::from_utf8_lossy(name.as_slice()).into_owned();
                (name, value.to_str().expect("ascii"))
            })
            .collect();
        let expected = [
            ("X-Client-Id", "svc"),
            ("x-scopes", "petstore.r petstore.w"),
        ];
        let expected: Vec<(String, &str)> =
            expected.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        assert_eq!(sent, expected);
    }
}
