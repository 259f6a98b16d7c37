//! Client authentication (RFC 6749 2.3) and user authentication, with the brute-force
//! counters both count against.

use std::net::IpAddr;
use std::time::Duration;

use super::OAuthProvider;
use crate::config::{Client, Grant, User};
use crate::error::OAuthError;
use crate::form::{basic_credentials, Params};
use crate::records::store_key;

/// What a client presented to authenticate.
pub(crate) struct PresentedClient {
    pub id: String,
    pub secret: Option<String>,
    /// The credentials came in an `Authorization: Basic` header.
    pub basic: bool,
}

/// Which endpoint a client authenticates to: it decides whether a client without a secret
/// may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthPurpose {
    Grant(Grant),
    Revocation,
    Introspection,
}

/// An authenticated client and the secret it presented (verified), if any.
pub(crate) struct AuthenticatedClient<'a> {
    pub client: &'a Client,
    pub secret: Option<String>,
}

/// The brute-force counters an authentication attempt counts against (`kind` is `client` or
/// `user`). The policy: an address that fails `max_failures` times for one account, or for
/// any accounts, is refused (429) for the window; the account itself is never locked, since
/// anyone could then lock anyone out from an address of their own. Past
/// `account_max_failures` failures from all addresses together, every attempt on the account
/// is slowed down instead (a growing, bounded delay), so a correct credential from an address
/// under its own budget still succeeds.
pub(crate) struct FailureCounters {
    /// Per (account, address): refused past `max_failures`.
    pair: String,
    /// Per address, whatever the account: refused past `max_failures`.
    address: Option<String>,
    /// Per account, every address: slowed down past `account_max_failures`.
    account: String,
}

impl FailureCounters {
    fn new(kind: &str, id: &str, client_ip: Option<IpAddr>) -> Self {
        let ip = client_ip.map_or_else(|| "local".to_string(), |ip| ip.to_string());
        Self {
            pair: store_key::failures_from(kind, id, &ip),
            address: client_ip.map(|_| store_key::failures("ip", &ip)),
            account: store_key::failures(kind, id),
        }
    }
}

/// The slow-down of an attempt on an account with `count` recent failures: none up to
/// `threshold`, then 100 ms doubling with each further failure, at most `max`.
pub(crate) fn failure_delay(count: u64, threshold: u64, max: Duration) -> Duration {
    if count < threshold {
        return Duration::ZERO;
    }
    let doublings = (count - threshold).min(16);
    (Duration::from_millis(100) * (1u32 << doublings)).min(max)
}

impl OAuthProvider {
    async fn failures(&self, key: &str) -> Result<u64, OAuthError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .unwrap_or(0))
    }
    /// Fails with 429 when this address has used up its budget (for this account or in
    /// all), and waits first when the account has had many failures from everywhere (see
    /// [`FailureCounters`]).
    pub(crate) async fn check_failures(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        for key in std::iter::once(&who.pair).chain(&who.address) {
            if self.failures(key).await? >= self.config.max_failures {
                return Err(OAuthError::TooManyAttempts {
                    retry_after_secs: self.config.failure_window.as_secs(),
                });
            }
        }
        let delay = failure_delay(
            self.failures(&who.account).await?,
            self.config.account_max_failures,
            self.config.max_failure_delay,
        );
        if !delay.is_zero() {
            self.throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }
    /// Counts a failure against each of `who`'s counters.
    pub(crate) async fn record_failure(&self, who: &FailureCounters) -> Result<(), OAuthError> {
        for key in [&who.pair, &who.account].into_iter().chain(&who.address) {
            self.store.incr(key, self.config.failure_window).await?;
        }
        Ok(())
    }
    /// Authenticates the client of a token request (RFC 6749 2.3): HTTP Basic, or
    /// `client_id`/`client_secret` in the body, never both; no secret only for a public
    /// client or one allowed the password grant without one.
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        params: &Params,
        purpose: AuthPurpose,
        client_ip: Option<IpAddr>,
    ) -> Result<AuthenticatedClient<'_>, OAuthError> {
        let presented = presented_client(authorization, params)?;
        let client = self.config.clients.get(&presented.id);
        // A secret verified minutes ago is no guess: it passes without a store round trip.
        if let (Some(c), Some(secret)) = (client, &presented.secret) {
            if let Some(hash) = &c.secret_hash {
                if self
                    .verifier
                    .remembers(&presented.id, hash, secret.as_bytes())
                {
                    return Ok(AuthenticatedClient {
                        client: c,
                        secret: presented.secret,
                    });
                }
            }
        }
        let who = FailureCounters::new("client", &presented.id, client_ip);
        self.check_failures(&who).await?;
        let ok = match (&presented.secret, client) {
            (Some(secret), client) => {
                let hash = client.and_then(|c| c.secret_hash.as_ref());
                self.verifier
                    .verify(&presented.id, hash, secret.as_bytes())
                    .await
            }
            (None, Some(c)) => match purpose {
                AuthPurpose::Grant(grant) => {
                    (c.public && matches!(grant, Grant::AuthorizationCode | Grant::RefreshToken))
                        || (c.password_grant_without_secret && grant == Grant::Password)
                }
                AuthPurpose::Revocation => c.public,
                AuthPurpose::Introspection => false,
            },
            (None, None) => false,
        };
        match client {
            Some(client) if ok => Ok(AuthenticatedClient {
                client,
                secret: presented.secret,
            }),
            _ => {
                self.record_failure(&who).await?;
                tracing::info!(client_id = %presented.id, "client authentication failed");
                Err(OAuthError::InvalidClient {
                    basic: presented.basic,
                })
            }
        }
    }
    /// Authenticates a user by username and password, counting failures per username and
    /// address. Unknown users cost the same time as known ones and get the same error.
    pub(crate) async fn authenticate_user(
        &self,
        username: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<&User>, OAuthError> {
        let user = self.config.users.get(username);
        if let Some(u) = user {
            if self
                .verifier
                .remembers(username, &u.password_hash, password.as_bytes())
            {
                return Ok(user);
            }
        }
        let who = FailureCounters::new("user", username, client_ip);
        self.check_failures(&who).await?;
        let ok = self
            .verifier
            .verify(
                username,
                user.map(|u| &u.password_hash),
                password.as_bytes(),
            )
            .await;
        if ok {
            Ok(user)
        } else {
            self.record_failure(&who).await?;
            Ok(None)
        }
    }
}

/// Reads the client's credentials from the header and the body.
fn presented_client(
    authorization: Option<&str>,
    params: &Params,
) -> Result<PresentedClient, OAuthError> {
    let basic = authorization.and_then(basic_credentials).transpose()?;
    match basic {
        Some(creds) => {
            if params.contains("client_secret") {
                return Err(OAuthError::InvalidRequest(
                    "the client authenticated with both HTTP Basic and client_secret".into(),
                ));
            }
            if params.get("client_id").is_some_and(|id| id != creds.id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id does not match the Basic credentials".into(),
                ));
            }
            Ok(PresentedClient {
                id: creds.id,
                secret: Some(creds.secret),
                basic: true,
            })
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(OAuthError::InvalidClient { basic: false });
            };
            Ok(PresentedClient {
                id: id.to_string(),
                secret: params.get("client_secret").map(str::to_string),
                basic: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_slow_down_grows_and_is_bounded() {
        let max = Duration::from_secs(5);
        let ms = |count| failure_delay(count, 100, max).as_millis();
        assert_eq!([ms(0), ms(99)], [0, 0]);
        assert_eq!([ms(100), ms(101), ms(102), ms(105)], [100, 200, 400, 3200]);
        assert_eq!([ms(106), ms(1000), ms(u64::MAX)], [5000, 5000, 5000]);
    }
}
