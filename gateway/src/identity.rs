//! The caller's identity towards upstreams: the headers Tollgate sets from a validated token,
//! and the removal of every copy a client tried to send itself.

use http::HeaderName;
use pingora::http::RequestHeader;
use token_module::VerifiedToken;

/// The configured identity header names.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user_id: HeaderName,
    pub user_type: HeaderName,
    pub client_id: HeaderName,
    pub scopes: HeaderName,
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
            &self.user_id,
            &self.user_type,
            &self.client_id,
            &self.scopes,
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
        req.insert_header(self.client_id.clone(), token.client_id.as_str())?;
        req.insert_header(self.scopes.clone(), token.scope.join(" "))?;
        if let Some(subject) = &token.subject {
            req.insert_header(self.user_id.clone(), subject.user_id.as_str())?;
            if let Some(user_type) = &subject.user_type {
                req.insert_header(self.user_type.clone(), user_type.as_str())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> IdentityHeaders {
        IdentityHeaders {
            user_id: HeaderName::from_static("x-user-id"),
            user_type: HeaderName::from_static("x-user-type"),
            client_id: HeaderName::from_static("x-client-id"),
            scopes: HeaderName::from_static("x-scopes"),
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
}
