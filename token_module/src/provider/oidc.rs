//! OpenID Connect: id_tokens, the discovery document, the JWKS, and userinfo.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};

use crate::bearer::{self, BearerError};
use crate::config::{Client, Grant, User};
use crate::error::OAuthError;
use crate::keys::SigningAlgorithm;
use crate::provider::OAuthProvider;
use crate::records::Subject;
use crate::response::Response;

/// What an id_token is made from.
pub(crate) struct IdTokenInput<'a> {
    pub client: &'a Client,
    pub subject: &'a Subject,
    pub scope: &'a [String],
    pub access_token: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: Option<u64>,
    /// The client secret the request presented (verified), for HS256 id_tokens.
    pub client_secret: Option<&'a str>,
}

/// OIDC Core 3.1.3.6: the left half of the access token's hash, base64url.
fn at_hash(access_token: &str, sha512: bool) -> String {
    let alg = if sha512 {
        &digest::SHA512
    } else {
        &digest::SHA256
    };
    let hash = digest::digest(alg, access_token.as_bytes());
    let bytes = hash.as_ref();
    B64.encode(&bytes[..bytes.len() / 2])
}

impl OAuthProvider {
    /// The user a subject names, if it is a configured one.
    pub(crate) fn user_for(&self, subject: &Subject) -> Option<&User> {
        match &subject.username {
            Some(name) => self.config.users.get(name),
            None => self
                .config
                .users
                .values()
                .find(|u| u.user_id == subject.user_id),
        }
    }

    /// The id_token for a response whose scope holds `openid`.
    pub(crate) fn id_token(&self, input: IdTokenInput<'_>) -> Result<String, OAuthError> {
        let iat = self.now();
        let active = self.config.keys.active();
        let hs256_secret = input.client_secret.filter(|_| input.client.id_token_hs256);
        let sha512 = hs256_secret.is_none() && active.algorithm == SigningAlgorithm::EdDsa;
        let mut claims = serde_json::json!({
            "iss": self.config.issuer,
            "sub": input.subject.user_id,
            "aud": input.client.client_id,
            "exp": iat + self.config.id_token_ttl.as_secs(),
            "iat": iat,
            "nbf": iat,
            "auth_time": input.auth_time.unwrap_or(iat),
            "at_hash": at_hash(input.access_token, sha512),
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(nonce) = input.nonce {
                map.insert("nonce".into(), nonce.into());
            }
            let user = self.user_for(input.subject);
            let granted = |s: &str| input.scope.iter().any(|x| x == s);
            if granted("profile") {
                if let Some(name) = user.and_then(|u| u.name.as_ref()) {
                    map.insert("name".into(), name.clone().into());
                }
                if let Some(username) = user.map(|u| &u.username) {
                    map.insert("preferred_username".into(), username.clone().into());
                }
            }
            if granted("email") {
                if let Some(email) = user.and_then(|u| u.email.as_ref()) {
                    map.insert("email".into(), email.clone().into());
                }
            }
        }
        let signed = match hs256_secret {
            Some(secret) => encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .map_err(|e| e.to_string()),
            None => active.sign_id_token(&claims).map_err(|e| e.to_string()),
        };
        signed.map_err(|e| {
            tracing::error!(error = %e, "signing an id_token failed");
            OAuthError::ServerError
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.issuer)
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Response {
        let c = &self.config;
        let mut scopes: Vec<&str> = vec!["openid"];
        let mut grants: Vec<&str> = Vec::new();
        for client in c.clients.values() {
            for s in &client.scopes {
                if !scopes.contains(&s.as_str()) {
                    scopes.push(s);
                }
            }
            for g in &client.grants {
                if !grants.contains(&g.as_str()) {
                    grants.push(g.as_str());
                }
            }
        }
        for s in &c.route_scopes {
            if !scopes.contains(&s.as_str()) {
                scopes.push(s);
            }
        }
        scopes.sort_unstable();
        grants.sort_by_key(|g| Grant::ALL.iter().position(|x| x.as_str() == *g));
        // Each algorithm once, in key order (keys may share one: `dedup` alone only removes
        // neighbours).
        let mut algs: Vec<&str> = Vec::new();
        let hs256 = c
            .clients
            .values()
            .any(|cl| cl.id_token_hs256)
            .then_some("HS256");
        for alg in c.keys.iter().map(|k| k.algorithm.name()).chain(hs256) {
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        let plain = c.clients.values().any(|cl| cl.allow_plain_pkce);
        let doc = serde_json::json!({
            "issuer": c.issuer,
            "authorization_endpoint": self.url(&c.authorize_path),
            "token_endpoint": self.url(&c.token_path),
            "jwks_uri": self.url(&c.jwks_path),
            "userinfo_endpoint": self.url(&c.userinfo_path),
            "end_session_endpoint": self.url(&c.logout_path),
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "revocation_endpoint": self.url(&c.revoke_path),
            "introspection_endpoint": self.url(&c.introspect_path),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grants,
            "subject_types_supported": ["public"],
            "scopes_supported": scopes,
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "at_hash", "name", "preferred_username", "email"],
            "id_token_signing_alg_values_supported": algs,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": if plain { vec!["S256", "plain"] } else { vec!["S256"] },
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
        });
        Response::json_public(200, &doc, 300)
    }

    /// The JWKS: the public half of every key, active or verify-only.
    pub fn jwks(&self) -> Response {
        let keys: Vec<serde_json::Value> = self
            .config
            .keys
            .iter()
            .map(|k| {
                let mut jwk = k.public_jwk.clone();
                jwk.insert("kid".into(), k.kid.clone().into());
                jwk.insert("alg".into(), k.algorithm.name().into());
                jwk.insert("use".into(), "sig".into());
                serde_json::Value::Object(jwk)
            })
            .collect();
        Response::json_public(200, &serde_json::json!({ "keys": keys }), 300)
    }

    /// OIDC Core 5.3: the claims the token's scopes allow about its user.
    pub async fn userinfo(
        &self,
        method: &str,
        authorization: Option<&str>,
        query: Option<&str>,
    ) -> Response {
        // HEAD is GET without the body (RFC 9110 9.3.2); the caller leaves the body out.
        if !matches!(method, "GET" | "HEAD" | "POST") {
            return OAuthError::MethodNotAllowed {
                allow: "GET, HEAD, POST",
            }
            .into_response();
        }
        let result = async {
            let token = bearer::extract(authorization, query, true)?;
            let verified = self
                .validate_access_token(&token, false)
                .await
                .map_err(BearerError::from)?
                .token;
            // A token bound to a route's audience (RFC 8707) is for that audience only.
            if verified.resource.is_some() {
                return Err(BearerError::InvalidToken(
                    "the token was issued for another audience",
                ));
            }
            if !verified.has_scope("openid") {
                return Err(BearerError::InsufficientScope("openid".into()));
            }
            let subject = verified
                .subject
                .as_ref()
                .ok_or(BearerError::InvalidToken("the token speaks for no user"))?;
            let mut claims = serde_json::json!({ "sub": subject.user_id });
            let user = self.user_for(subject);
            if let (Some(map), Some(user)) = (claims.as_object_mut(), user) {
                if verified.has_scope("profile") {
                    map.insert("preferred_username".into(), user.username.clone().into());
                    if let Some(name) = &user.name {
                        map.insert("name".into(), name.clone().into());
                    }
                }
                if verified.has_scope("email") {
                    if let Some(email) = &user.email {
                        map.insert("email".into(), email.clone().into());
                    }
                }
            }
            Ok::<_, BearerError>(Response::json(200, &claims))
        }
        .await;
        result.unwrap_or_else(BearerError::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OIDC Core A.3's example access token and at_hash.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", false),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
