//! Random values and digests: codes, tokens, ids, and the store keys derived from them.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

/// `n` bytes from the system CSPRNG. The CSPRNG failing is unrecoverable.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    #[allow(clippy::expect_used)] // no randomness left means no safe way to go on
    SystemRandom::new().fill(&mut buf).expect("system CSPRNG");
    buf
}

/// Two random 64-bit words: a SipHash key.
pub fn random_u64s() -> [u64; 2] {
    [
        u64::from_le_bytes(random_bytes()),
        u64::from_le_bytes(random_bytes()),
    ]
}

/// An authorization code: 256 random bits, base64url (43 characters).
pub fn authorization_code() -> String {
    B64.encode(random_bytes::<32>())
}

/// An opaque access or refresh token: 384 random bits as hex (96 characters), the look of
/// the EQdkp seed's tokens.
pub fn opaque_token() -> String {
    hex::encode(random_bytes::<48>())
}

/// A refresh-token family id: 128 random bits as hex (32 characters).
pub fn family_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// A refresh-token family's key (256 random bits, hex): it tags every token of the family,
/// so a token that was the family's (retired or current) can be told from a forgery that
/// only carries the family id.
pub fn family_key() -> String {
    hex::encode(random_bytes::<32>())
}

/// A refresh token of `family_id`: the family id, a 128-bit nonce and a 128-bit tag of both
/// under the family's key, all hex (96 characters, the look of the EQdkp seed's tokens).
/// Carrying its family lets a refresh find the family in one store read; the nonce is what
/// proves possession of the current token, the tag that a retired one is genuine.
pub fn refresh_token(family_id: &str, family_key: &str) -> String {
    let nonce = hex::encode(random_bytes::<16>());
    let tag = family_tag(family_key, family_id, &nonce);
    format!("{family_id}{nonce}{tag}")
}

fn family_tag(family_key: &str, family_id: &str, nonce: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, family_key.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(family_id.as_bytes());
    ctx.update(nonce.as_bytes());
    hex::encode(&ctx.sign().as_ref()[..16])
}

/// Whether `refresh_token` was made by [`refresh_token`] with `family_key` (any generation
/// of the family, retired ones included).
pub fn is_family_token(refresh_token: &str, family_key: &str) -> bool {
    if family_of(refresh_token).is_none() {
        return false;
    }
    let (id, rest) = refresh_token.split_at(32);
    let (nonce, tag) = rest.split_at(32);
    ct_eq(
        family_tag(family_key, id, nonce).as_bytes(),
        tag.to_ascii_lowercase().as_bytes(),
    )
}

/// The family id a refresh token names, if it is shaped like one.
pub fn family_of(refresh_token: &str) -> Option<&str> {
    (refresh_token.len() == 96 && refresh_token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| &refresh_token[..32])
}

/// A token id (`jti`) or a CSRF token: 128 random bits, base64url.
pub fn id() -> String {
    B64.encode(random_bytes::<16>())
}

/// SHA-256 of `value` as hex: how codes and tokens are named in the store, so that the store
/// never holds a usable secret.
pub fn digest_hex(value: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, value.as_bytes()))
}

/// The PKCE S256 transform: base64url(SHA-256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    B64.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Encrypts `plaintext` (AES-256-GCM, random nonce) under a key derived from `secret`, a
/// high-entropy token: only someone who presents `secret` again can read it back (see
/// [`open`]). base64url of nonce and ciphertext.
pub fn seal(secret: &str, plaintext: &[u8]) -> Option<String> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &sealing_key(secret)).ok()?);
    let nonce = random_bytes::<12>();
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::empty(),
        &mut sealed,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Some(B64.encode(out))
}

/// The plaintext [`seal`] sealed under `secret`; `None` for anything else.
pub fn open(secret: &str, sealed: &str) -> Option<Vec<u8>> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    let bytes = B64.decode(sealed).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &sealing_key(secret)).ok()?);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ciphertext.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// A 256-bit key from a token of at least 256 random bits: one SHA-256 in its own domain.
fn sealing_key(secret: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"tollgate sealed answer\0");
    ctx.update(secret.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_uniqueness() {
        assert_eq!(authorization_code().len(), 43);
        assert_eq!(opaque_token().len(), 96);
        assert_ne!(opaque_token(), opaque_token());
        assert_eq!(id().len(), 22);
        let family = family_id();
        let key = family_key();
        let token = refresh_token(&family, &key);
        assert_eq!(family_of(&token), Some(family.as_str()));
        assert!(is_family_token(&token, &key));
        assert!(
            !is_family_token(&token, &family_key()),
            "another family's key"
        );
        let forged = format!("{family}{}", "0".repeat(64));
        assert!(!is_family_token(&forged, &key), "the family id alone");
        let mut tampered = token.clone().into_bytes();
        tampered[40] = if tampered[40] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("hex");
        assert!(!is_family_token(&tampered, &key), "another nonce");
        assert_eq!(family_of("short"), None);
        assert_eq!(family_of(&"z".repeat(96)), None);
    }

    #[test]
    fn pkce_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn sealed_answers_open_only_with_their_token() {
        let sealed = super::seal("token-one", b"the answer").expect("sealed");
        assert_eq!(
            super::open("token-one", &sealed).as_deref(),
            Some(&b"the answer"[..])
        );
        assert_eq!(super::open("token-two", &sealed), None);
        assert_eq!(super::open("token-one", "bm9uc2Vuc2U"), None);
        assert_ne!(
            super::seal("token-one", b"the answer").expect("sealed"),
            sealed
        );
    }
}
