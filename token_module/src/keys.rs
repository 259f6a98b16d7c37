//! Signing keys: parsed once from PEM at start, then used for every token.
//!
//! Signing goes straight to aws-lc-rs with the parsed key pair (`jsonwebtoken::encode` would
//! re-parse the private key on every call, a third of the throughput). Each key is pinned to
//! one algorithm; its public half is kept as a `jsonwebtoken::DecodingKey` for validation and
//! as JWK parameters for the JWKS document.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;

/// The JWS algorithms a key can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl SigningAlgorithm {
    /// The algorithm a key declares by its JWS name (`RS256`, `ES256`, `EdDSA`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Rs256, Self::Es256, Self::EdDsa]
            .into_iter()
            .find(|alg| alg.name() == name)
    }

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The same algorithm as jsonwebtoken names it, for validation.
    pub fn jsonwebtoken(self) -> Algorithm {
        match self {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A key that signs (when active) and verifies tokens.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pair: Pair,
    /// base64url of the JWS header `{"kid":…,"alg":…}`, computed once.
    header_b64: String,
    /// The same with `"typ":"at+jwt"`, for RFC 9068 access tokens.
    at_header_b64: String,
    /// The same with `"typ":"JWT"`, for id_tokens (access tokens carry no `typ` or `at+jwt`,
    /// so the two cannot be mistaken for each other).
    id_header_b64: String,
    /// The public key, for validation.
    pub decoding_key: DecodingKey,
    /// The public JWK members (`kty`, `n`/`e` or `crv`/`x`/`y`).
    pub public_jwk: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Signing failed inside the crypto library (practically never happens).
#[derive(Debug, thiserror::Error)]
#[error("signing with key `{0}` failed")]
pub struct SignError(pub String);

impl SigningKey {
    /// Parses a PEM private key for `algorithm`.
    pub fn from_pem(kid: &str, algorithm: SigningAlgorithm, pem: &[u8]) -> Result<Self, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| format!("not a PEM private key: {e}"))?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            format!("not a usable {} key: {e}", algorithm.name())
        };
        let b64 = |bytes: &[u8]| serde_json::Value::String(B64.encode(bytes));
        let mut jwk = serde_json::Map::new();
        let (pair, decoding_key) = match (algorithm, &der) {
            (SigningAlgorithm::Rs256, PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Pkcs1(_)) => {
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
                    _ => RsaKeyPair::from_der(der.secret_der()),
                }
                .map_err(rejected)?;
                if pair.public_modulus_len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".into());
                }
                let public = pair.public_key();
                let n = public.modulus().big_endian_without_leading_zero().to_vec();
                let e = public.exponent().big_endian_without_leading_zero().to_vec();
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), b64(&n));
                jwk.insert("e".into(), b64(&e));
                let key = DecodingKey::from_rsa_raw_components(&n, &e);
                (Pair::Rsa(pair), key)
            }
            (SigningAlgorithm::Es256, PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Sec1(_)) => {
                let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(k) => EcdsaKeyPair::from_pkcs8(alg, k.secret_pkcs8_der()),
                    _ => EcdsaKeyPair::from_private_key_der(alg, der.secret_der()),
                }
                .map_err(rejected)?;
                // Uncompressed point: 0x04 || x || y
                let point = pair.public_key().as_ref().to_vec();
                let (x, y) = point
                    .get(1..)
                    .filter(|p| p.len() == 64)
                    .map(|p| p.split_at(32))
                    .ok_or("unexpected P-256 public key encoding")?;
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), "P-256".into());
                jwk.insert("x".into(), b64(x));
                jwk.insert("y".into(), b64(y));
                let key = DecodingKey::from_ec_components(&B64.encode(x), &B64.encode(y))
                    .map_err(|e| e.to_string())?;
                (Pair::Ecdsa(pair), key)
            }
            (SigningAlgorithm::EdDsa, PrivateKeyDer::Pkcs8(k)) => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(k.secret_pkcs8_der())
                    .map_err(rejected)?;
                let x = pair.public_key().as_ref().to_vec();
                jwk.insert("kty".into(), "OKP".into());
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64(&x));
                let key =
                    DecodingKey::from_ed_components(&B64.encode(&x)).map_err(|e| e.to_string())?;
                (Pair::Ed25519(pair), key)
            }
            _ => {
                return Err(
                    format!("the PEM does not hold a {} private key", algorithm.name()).into(),
                )
            }
        };
        let header = serde_json::json!({ "kid": kid, "alg": algorithm.name() });
        let at_header = serde_json::json!({ "kid": kid, "alg": algorithm.name(), "typ": "at+jwt" });
        let id_header = serde_json::json!({ "kid": kid, "alg": algorithm.name(), "typ": "JWT" });
        Ok(Self {
            kid: kid.to_string(),
            algorithm,
            pair,
            header_b64: B64.encode(header.to_string()),
            at_header_b64: B64.encode(at_header.to_string()),
            id_header_b64: B64.encode(id_header.to_string()),
            decoding_key,
            public_jwk: jwk,
        })
    }

    /// Signs access-token `claims` as a compact JWS: `header.payload.signature`.
    pub fn sign_jwt(&self, claims: &impl Serialize) -> Result<String, SignError> {
        self.sign_with_header(&self.header_b64, claims)
    }

    /// Signs RFC 9068 access-token `claims` (header `typ: at+jwt`).
    pub fn sign_rfc9068(&self, claims: &impl Serialize) -> Result<String, SignError> {
        self.sign_with_header(&self.at_header_b64, claims)
    }

    /// Signs id_token `claims` (header `typ: JWT`).
    pub fn sign_id_token(&self, claims: &impl Serialize) -> Result<String, SignError> {
        self.sign_with_header(&self.id_header_b64, claims)
    }

    fn sign_with_header(
        &self,
        header_b64: &str,
        claims: &impl Serialize,
    ) -> Result<String, SignError> {
        let fail = |_| SignError(self.kid.clone());
        // Serialized straight into bytes: `Value`'s `Display` goes through a formatter, a
        // call per token of JSON.
        let payload = serde_json::to_vec(claims).map_err(|_| SignError(self.kid.clone()))?;
        let mut token = String::with_capacity(512);
        token.push_str(header_b64);
        token.push('.');
        B64.encode_string(payload, &mut token);
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    token.as_bytes(),
                    &mut sig,
                )
                .map_err(fail)?;
                sig
            }
            Pair::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(fail)?
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        B64.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// Every configured key; exactly one is active and signs.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    active: usize,
}

/// Why a PEM file does not make a [`SigningKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl From<String> for KeyError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for KeyError {
    fn from(message: &str) -> Self {
        Self(message.to_string())
    }
}

/// Why keys do not make a [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    #[error("the kid `{0}` is used twice")]
    DuplicateKid(String),
    #[error("no key is active")]
    NoActiveKey,
}

impl KeySet {
    /// `keys` in configuration order (the JWKS lists them so); the one at `active` signs new
    /// tokens, the others (demoted ones, during a rotation) still validate what they signed.
    /// Exactly one key is active by construction; kids must be unique.
    pub fn new(keys: Vec<SigningKey>, active: usize) -> Result<Self, KeySetError> {
        if active >= keys.len() {
            return Err(KeySetError::NoActiveKey);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(KeySetError::DuplicateKid(key.kid.clone()));
            }
        }
        Ok(Self { keys, active })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.keys[self.active]
    }

    /// The key with this `kid`, active or verify-only.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, Validation};

    fn key_pem(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../conf/keys")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn roundtrip(kid: &str, alg: SigningAlgorithm, pem: &[u8]) {
        let key = SigningKey::from_pem(kid, alg, pem).expect("parse");
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64, "scope": ["a"]});
        let token = key.sign_jwt(&claims).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(kid));
        assert_eq!(header.alg, alg.jsonwebtoken());
        let mut validation = Validation::new(alg.jsonwebtoken());
        validation.validate_aud = false;
        let data =
            decode::<serde_json::Value>(&token, &key.decoding_key, &validation).expect("verifies");
        assert_eq!(data.claims, claims);
        // A flipped payload byte breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = B64.encode(r#"{"sub":"y","exp":4000000000,"scope":["a"]}"#);
        assert!(
            decode::<serde_json::Value>(&parts.join("."), &key.decoding_key, &validation).is_err()
        );
    }

    #[test]
    fn every_algorithm_signs_tokens_that_verify() {
        roundtrip(
            "100",
            SigningAlgorithm::Rs256,
            &key_pem("demo-rs256-100.pem"),
        );
        roundtrip("es", SigningAlgorithm::Es256, &key_pem("demo-es256.pem"));
        roundtrip("ed", SigningAlgorithm::EdDsa, &key_pem("demo-ed25519.pem"));
    }

    #[test]
    fn a_key_is_pinned_to_its_algorithm() {
        assert!(
            SigningKey::from_pem("x", SigningAlgorithm::Es256, &key_pem("demo-rs256-100.pem"))
                .is_err()
        );
        assert!(
            SigningKey::from_pem("x", SigningAlgorithm::Rs256, &key_pem("demo-es256.pem")).is_err()
        );
        assert!(SigningKey::from_pem("x", SigningAlgorithm::Rs256, b"not pem").is_err());
    }
}
