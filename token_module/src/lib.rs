//! OAuth 2.0 / OpenID Connect for Tollgate, free of any HTTP framework.
//!
//! This crate owns the protocol logic and the token store. The gateway hands it parsed
//! requests and writes back the response values it returns; nothing here knows Pingora.

pub mod store;

pub use store::{MemoryStore, RedisStore, Store, StoreError, StoreUrl};
