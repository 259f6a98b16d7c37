//! OAuth 2.0 / OpenID Connect for Tollgate, free of any HTTP framework.
//!
//! This crate owns the protocol logic and the token store. The gateway hands it parsed
//! requests ([`TokenRequest`], [`AuthorizeRequest`]) and writes back the [`Response`] values
//! it returns; nothing here knows Pingora. The public surface is what the gateway, the tests
//! and the benches use; everything else is private.

pub mod bearer;
mod cache;
pub mod clock;
pub mod config;
mod crypto;
/// Constant-time equality, for the secrets the gateway compares itself.
pub use crypto::ct_eq;
pub mod error;
mod events;
pub mod form;
pub mod keys;
pub mod pages;
mod provider;
mod records;
mod response;
pub mod secrets;
pub mod store;
mod validate;

pub use config::{ConfigError, OAuthConfig};
pub use error::{BearerError, OAuthError};
pub use provider::{
    AuthorizeRequest, LogoutRequest, OAuthProvider, TokenOutcome, TokenRequest, SESSION_COOKIE,
};
pub use response::Response;
pub use store::{MemoryStore, RedisStore, Store, StoreError, StoreUrl};
pub use validate::{Rejection, Validated, VerifiedToken};
