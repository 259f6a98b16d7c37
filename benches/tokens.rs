//! Criterion benches of the token path, in-process: JWT signing per algorithm, access-token
//! verification with and without the verified-token cache, and whole token requests (form
//! parsing, client authentication, grant).
//!
//! `cargo bench -p token_module --bench tokens`

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use token_module::keys::{SigningAlgorithm, SigningKey};
use token_module::{MemoryStore, OAuthConfig, OAuthProvider, TokenRequest};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

/// The demo configuration's OAuth section, plus a confidential client with opaque tokens.
fn provider() -> OAuthProvider {
    /// The part of the demo file this bench reads.
    #[derive(serde::Deserialize)]
    struct Demo {
        oauth: token_module::config::file::OAuth,
    }
    let demo = std::fs::read_to_string(conf_dir().join("gateway.yaml")).expect("demo config");
    let opaque_client = format!(
        "  clients:\n    - {{client_id: bench-opaque, secret_hash: \"{}\", grants: [client_credentials], scopes: [read], token_format: opaque}}\n",
        token_module::secrets::hash_secret(b"bench-secret").expect("hash")
    );
    let demo = demo.replacen("  clients:\n", &opaque_client, 1);
    let file: Demo = serde_saphyr::from_str(&demo).expect("the demo config");
    let config =
        OAuthConfig::from_file(file.oauth, &conf_dir(), "https://localhost:6882").expect("valid");
    OAuthProvider::new(config, Arc::new(MemoryStore::new("bench:"))).expect("provider")
}

fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": "urn:com:networknt:oauth2:v1", "aud": "urn:com.networknt", "exp": 4_000_000_000u64,
        "jti": "oGmuq3J_9wKe9EHOdV3mOQ", "iat": 1_483_208_886u64, "nbf": 1_483_208_886u64, "version": "1.0",
        "client_id": "f7d42348-c647-4efb-a52d-4c5787421e72", "scope": ["petstore.r", "petstore.w"],
        "user_id": "admin", "user_type": "admin", "sub": "admin",
    })
}

fn signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign");
    for (name, alg, file) in [
        ("RS256", SigningAlgorithm::Rs256, "demo-rs256-100.pem"),
        ("ES256", SigningAlgorithm::Es256, "demo-es256.pem"),
        ("EdDSA", SigningAlgorithm::EdDsa, "demo-ed25519.pem"),
    ] {
        let pem = std::fs::read(conf_dir().join("keys").join(file)).expect("key");
        let key = SigningKey::from_pem("bench", alg, &pem).expect("key");
        let claims = claims();
        group.bench_function(name, |b| b.iter(|| key.sign_jwt(&claims).expect("sign")));
    }
    group.finish();
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let provider = provider();
    let token = provider
        .config()
        .keys
        .active()
        .sign_jwt(&claims())
        .expect("sign");
    let mut group = c.benchmark_group("verify");
    group.bench_function("RS256 uncached", |b| {
        b.iter(|| provider.verify_jwt_uncached(&token).expect("valid"))
    });
    group.bench_function("RS256 cached", |b| {
        b.to_async(&rt).iter(|| async {
            provider
                .validate_access_token(&token, false)
                .await
                .expect("valid")
        })
    });
    group.finish();
}

fn token_requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let provider = provider();
    let mut group = c.benchmark_group("token_request");
    let requests = [
        (
            "client_credentials JWT (Basic, RS256)",
            "Basic f7d42348-c647-4efb-a52d-4c5787421e72:f6h1FTI8Q3-7UScPZDzfXA",
            "grant_type=client_credentials",
        ),
        (
            "client_credentials opaque (form and client auth)",
            "Basic bench-opaque:bench-secret",
            "grant_type=client_credentials&scope=read",
        ),
    ];
    for (name, authorization, body) in requests {
        let request = || TokenRequest {
            content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
            authorization: Some(authorization),
            query: None,
            body: body.as_bytes(),
            client_ip: None,
        };
        // The first request verifies the argon2 hash; the rest hit the verified-secret cache.
        let first = rt.block_on(provider.token(request()));
        assert_eq!(first.response.status, 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { provider.token(request()).await })
        });
    }
    group.bench_function("form parsing", |b| {
        b.iter(|| {
            token_module::form::Params::parse(b"grant_type=password&username=Hillary&password=12345678&scope=openid%20email%20profile&client_id=1421589198")
                .expect("form")
        })
    });
    group.finish();
}

criterion_group!(benches, signing, verification, token_requests);
criterion_main!(benches);
