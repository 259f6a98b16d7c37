//! The token lifecycle endpoints: revocation (RFC 7009) and introspection (RFC 7662).

use super::client_auth::AuthPurpose;
use super::token_endpoint::TokenRequest;
use super::OAuthProvider;
use crate::crypto;
use crate::error::OAuthError;
use crate::form::Params;
use crate::records::{store_key, IssuedTokens, OpaqueAccessToken, RefreshFamily};
use crate::response::Response;
use crate::validate::Rejection;

/// A refresh token's family, if the token is the family's current one and it is alive.
enum RefreshLookup {
    Live(String, RefreshFamily),
    /// Known but retired or revoked (still names its family).
    Dead(String, RefreshFamily),
    Unknown,
}

impl OAuthProvider {
    async fn lookup_refresh(&self, token: &str) -> Result<RefreshLookup, OAuthError> {
        let digest = crypto::digest_hex(token);
        let Some(id) = crypto::family_of(token).map(str::to_string) else {
            return Ok(RefreshLookup::Unknown);
        };
        let (_, Some(raw)) = self.family_record(&id).await? else {
            return Ok(RefreshLookup::Unknown);
        };
        let Ok(family) = serde_json::from_slice::<RefreshFamily>(&raw) else {
            return Ok(RefreshLookup::Unknown);
        };
        // Only a token the family handed out names it: the id alone revokes nothing.
        if !family.handed_out(token) {
            return Ok(RefreshLookup::Unknown);
        }
        let live = !family.revoked && family.current == digest && family.expires_at > self.now();
        Ok(if live {
            RefreshLookup::Live(id, family)
        } else {
            RefreshLookup::Dead(id, family)
        })
    }

    /// RFC 7009: revokes a token of the authenticated client. Unknown tokens and other
    /// clients' tokens are left alone and still answered 200; a store failure is 503.
    pub async fn revoke(&self, req: TokenRequest<'_>) -> Response {
        self.revoke_inner(&req)
            .await
            .unwrap_or_else(OAuthError::into_response)
    }

    async fn revoke_inner(&self, req: &TokenRequest<'_>) -> Result<Response, OAuthError> {
        let params = Params::from_form_body(req.content_type, req.body)?;
        let client = self
            .authenticate_client(
                req.authorization,
                &params,
                AuthPurpose::Revocation,
                req.client_ip,
            )
            .await?
            .client;
        let token = params.require("token")?;
        let ok = Response::json(200, &serde_json::json!({}));
        let hint = params.get("token_type_hint");
        // Refresh tokens first unless told otherwise (cheap: one lookup each).
        if hint != Some("access_token") {
            if let RefreshLookup::Live(id, family) | RefreshLookup::Dead(id, family) =
                self.lookup_refresh(token).await?
            {
                if family.client_id == client.client_id {
                    self.revoke_family(&id).await?;
                }
                return Ok(ok);
            }
        }
        if token.split('.').count() == 3 {
            if let Ok((verified, _)) = self.verify_jwt(token) {
                if verified.client_id == client.client_id {
                    let issued = IssuedTokens {
                        access_jti: verified.jti.clone(),
                        access_exp: verified.exp,
                        access_key: None,
                        family_id: None,
                    };
                    self.deny_access_token(&issued).await?;
                    self.validator.forget_verified(token);
                }
            }
        } else {
            let key = store_key::opaque_access(&crypto::digest_hex(token));
            if let Some(record) = self
                .store
                .get(&key)
                .await?
                .and_then(|r| serde_json::from_slice::<OpaqueAccessToken>(&r).ok())
            {
                if record.client_id == client.client_id {
                    let issued = IssuedTokens {
                        access_jti: record.jti,
                        access_exp: record.exp,
                        access_key: Some(key),
                        family_id: None,
                    };
                    self.deny_access_token(&issued).await?;
                }
            }
        }
        Ok(ok)
    }

    /// RFC 7662: what an authenticated client may know about a token. Anything not active is
    /// only `{"active":false}`.
    pub async fn introspect(&self, req: TokenRequest<'_>) -> Response {
        self.introspect_inner(&req)
            .await
            .unwrap_or_else(OAuthError::into_response)
    }

    async fn introspect_inner(&self, req: &TokenRequest<'_>) -> Result<Response, OAuthError> {
        let params = Params::from_form_body(req.content_type, req.body)?;
        self.authenticate_client(
            req.authorization,
            &params,
            AuthPurpose::Introspection,
            req.client_ip,
        )
        .await?;
        let token = params.require("token")?;
        let inactive = || Response::json(200, &serde_json::json!({ "active": false }));
        if params.get("token_type_hint") != Some("access_token") {
            match self.lookup_refresh(token).await? {
                RefreshLookup::Live(_, family) => {
                    let mut body = serde_json::json!({
                        "active": true,
                        "token_type": "refresh_token",
                        "client_id": family.client_id,
                        "scope": family.scope.join(" "),
                        "exp": family.expires_at,
                    });
                    if let (Some(map), Some(subject)) = (body.as_object_mut(), &family.subject) {
                        map.insert("sub".into(), subject.user_id.clone().into());
                        if let Some(username) = &subject.username {
                            map.insert("username".into(), username.clone().into());
                        }
                    }
                    return Ok(Response::json(200, &body));
                }
                RefreshLookup::Dead(..) => return Ok(inactive()),
                RefreshLookup::Unknown => {}
            }
        }
        let verified = match self.validate(token, false, true).await {
            Ok(v) => v.token,
            Err(Rejection::Invalid(_)) => return Ok(inactive()),
            Err(Rejection::StoreUnavailable) => return Err(OAuthError::TemporarilyUnavailable),
        };
        let client = self.config.clients.get(&verified.client_id);
        let mut body = serde_json::json!({
            "active": true,
            "token_type": client.map_or("Bearer", |c| c.token_type.as_str()),
            "client_id": verified.client_id,
            "scope": verified.scope.join(" "),
            "exp": verified.exp,
            "iat": verified.iat,
            "nbf": verified.nbf.unwrap_or(verified.iat),
            "jti": verified.jti,
            "iss": verified.iss.clone().or_else(|| client.map(|c| c.issuer.clone())),
            "aud": verified.aud.clone().or_else(|| client.map(|c| c.audience.clone())),
        });
        if let (Some(map), Some(subject)) = (body.as_object_mut(), &verified.subject) {
            map.insert("sub".into(), subject.user_id.clone().into());
            let username = subject
                .username
                .clone()
                .or_else(|| self.user_for(subject).map(|u| u.username.clone()));
            if let Some(username) = username {
                map.insert("username".into(), username.into());
            }
        }
        Ok(Response::json(200, &body))
    }
}
