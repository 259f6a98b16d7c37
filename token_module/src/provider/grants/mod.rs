//! One file per grant (RFC 6749 section 4 and the custom `client_authenticated_user`), each
//! read top to bottom: parse → authenticate → check → one atomic store step → issue. The
//! token endpoint has already authenticated the client and checked that it may use the grant;
//! the shared steps (scope, access token, refresh family) are in `issuance.rs`.

mod authorization_code;
mod client_authenticated_user;
mod client_credentials;
mod password;
mod refresh_token;
