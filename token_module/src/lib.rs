//! OAuth 2.0 / OpenID Connect for Tollgate, free of any HTTP framework.
//!
//! This crate owns the protocol logic and the token store. The gateway hands it parsed
//! requests ([`TokenRequest`], [`AuthorizeRequest`]) and writes back the [`Response`] values
//! it returns; nothing here knows Pingora.

pub mod authorize;
pub mod bearer;
mod clock;
pub mod config;
pub mod error;
pub mod form;
pub mod keys;
pub mod lifecycle;
pub mod oidc;
pub mod provider;
pub mod random;
pub mod records;
pub mod response;
pub mod secrets;
pub mod store;
pub mod token;
pub mod validate;

pub use authorize::AuthorizeRequest;
pub use config::{ConfigError, OAuthConfig};
pub use error::OAuthError;
pub use provider::OAuthProvider;
pub use response::Response;
pub use store::{MemoryStore, RedisStore, Store, StoreError, StoreUrl};
pub use token::{TokenOutcome, TokenRequest};
pub use validate::{Rejection, Validated, VerifiedToken};
