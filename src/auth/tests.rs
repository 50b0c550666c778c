//! Unit tests of the credential checks: failures, header shapes, token validation, key parsing.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use jsonwebtoken::{EncodingKey, Header, encode};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use jsonwebtoken::Algorithm;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::keys::{digest_of, rsa_keys};
use super::{AuthConfig, AuthFailure};
use crate::config::AuthSettings;

/// SHA-256("abc"), the FIPS 180-2 test vector.
const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SECRET: &str = "unit-test-hs256-secret-of-at-least-32-bytes";
const AUD: &str = "unit-aud";
/// Two test-only 1024-bit RSA public keys (generated for these tests), with text around them.
const TWO_RSA: &str = "# first\n-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCjm9Fg4P6/T2ZQACZJG+ZoOROW
O0JCYbiarrR1cTUU/OQG02rPEP16b3LKpVpJpRL/uSM/sAZDAQvOLcseNf41ICoL
TCG8uZq7TbrY0TNeu5QBT3vShHYU8yEeGjex4YIs+yyp41jtGwSc7kN4DQn51+hU
PWmUPUbwoQtw8CKrUQIDAQAB
-----END PUBLIC KEY-----
# second
-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC8Nk57730ayRjNoi/o5Uk582dt
fsLsBVCtv81UNA4D12t+wP1jMz1yXi+81Ugv9EI8qTNcDHQmyB7nMRv7/oUC5FRY
qUuGXmRgrNVq1A+ZWplXQHb95AQcFMOmuf5/F6v+f3ow95aYHDmFXG3lNAYwes39
llaaKYAIBHTKl/cZTQIDAQAB
-----END PUBLIC KEY-----
";
/// A P-256 public key: PEM, but not RSA.
const EC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJuWmXLtJIL0js/+mlv/kQkaRxvjM
MzOGJVqu7xxJWRMJo+wNLzy3PyQiiRt7YzVZFL7FR3sctMXENGKXj9Y1/Q==
-----END PUBLIC KEY-----
";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh file per call, so tests running in parallel never read a half-written one.
fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gw-auth-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("{n}-{name}"));
    std::fs::write(&path, text).expect("write");
    path
}

/// API key "abc" and the HS256 secret, built the way the server builds it.
fn config() -> AuthConfig {
    let secret = temp_file("hs256", &format!("{SECRET}\n"));
    AuthConfig::from_settings(&AuthSettings {
        auth_api_key_hashes: Some(ABC_SHA256.into()),
        auth_jwt_hs256_secret_file: Some(secret.display().to_string()),
        auth_jwt_audience: Some(AUD.into()),
        ..AuthSettings::default()
    })
    .expect("config")
}

fn hs256(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    encode(&Header::new(Algorithm::HS256), &claims, &key).expect("encode")
}

fn headers(name: &'static str, value: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(name, HeaderValue::from_str(value).expect("header"));
    map
}

#[tokio::test]
async fn each_failure_answers_401_with_its_challenge_and_message() {
    let bare = r#"Bearer realm="coworking-gateway""#;
    let invalid = r#"Bearer realm="coworking-gateway", error="invalid_token""#;
    let cases = [
        (
            AuthFailure::MissingCredentials,
            bare,
            "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>",
        ),
        (
            AuthFailure::UnsupportedScheme,
            invalid,
            "unsupported Authorization scheme: use Bearer",
        ),
        (AuthFailure::InvalidApiKey, invalid, "invalid API key"),
        (
            AuthFailure::InvalidToken,
            invalid,
            "invalid or expired token",
        ),
    ];
    for (failure, challenge, message) in cases {
        let response = failure.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{failure:?}");
        let headers = response.headers();
        assert_eq!(
            headers.get_all(header::WWW_AUTHENTICATE).iter().count(),
            1,
            "{failure:?}"
        );
        assert_eq!(
            headers
                .get(header::WWW_AUTHENTICATE)
                .map(HeaderValue::as_bytes),
            Some(challenge.as_bytes()),
            "{failure:?}"
        );
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            body,
            json!({ "error": { "code": "UNAUTHENTICATED", "message": message } }),
            "{failure:?}"
        );
    }
}

#[test]
fn authenticate_names_the_failure_of_each_header_shape() {
    let auth = config();
    let valid = hs256(json!({ "sub": "ana", "aud": AUD, "exp": now() + 600 }));
    let cases = [
        (HeaderMap::new(), Err(AuthFailure::MissingCredentials)),
        (headers("x-api-key", "abc"), Ok("api-key-0")),
        (headers("x-api-key", "abd"), Err(AuthFailure::InvalidApiKey)),
        (
            headers("x-api-key", ABC_SHA256),
            Err(AuthFailure::InvalidApiKey),
        ),
        (
            headers("authorization", "Basic dXNlcjpwYXNz"),
            Err(AuthFailure::UnsupportedScheme),
        ),
        (headers("authorization", "Bearer abc"), Ok("api-key-0")),
        (headers("authorization", "bearer abc"), Ok("api-key-0")),
        (
            headers("authorization", "Bearer abd"),
            Err(AuthFailure::InvalidApiKey),
        ),
        (
            headers("authorization", &format!("Bearer {valid}")),
            Ok("jwt:ana"),
        ),
        (
            headers("authorization", "Bearer a.b.c"),
            Err(AuthFailure::InvalidToken),
        ),
    ];
    for (map, expected) in cases {
        let got = auth.authenticate(&map);
        assert_eq!(
            got.as_ref().map(|p| p.0.as_str()),
            expected.as_ref().copied(),
            "{map:?}"
        );
    }
}

#[test]
fn the_validation_built_with_the_config_checks_exp_nbf_aud_with_5s_leeway() {
    let auth = config();
    let bearer = |claims| headers("authorization", &format!("Bearer {}", hs256(claims)));
    let now = now();
    let cases = [
        (json!({ "aud": AUD, "exp": now - 2 }), true),
        (json!({ "aud": AUD, "exp": now - 60 }), false),
        (
            json!({ "aud": AUD, "exp": now + 600, "nbf": now + 60 }),
            false,
        ),
        (json!({ "aud": "other", "exp": now + 600 }), false),
        (json!({ "exp": now + 600 }), false),
        (json!({ "aud": AUD }), false),
    ];
    for (claims, accepted) in cases {
        let got = auth.authenticate(&bearer(claims.clone()));
        assert_eq!(got.is_ok(), accepted, "{claims}: {got:?}");
        if !accepted {
            assert_eq!(got, Err(AuthFailure::InvalidToken), "{claims}");
        }
    }
}

#[test]
fn digests_are_64_hex_characters_of_either_case() {
    let expected: [u8; 32] = Sha256::digest(b"abc").into();
    assert_eq!(digest_of(ABC_SHA256, "S").ok(), Some(expected));
    assert_eq!(
        digest_of(&format!(" {}\n", ABC_SHA256.to_uppercase()), "S").ok(),
        Some(expected)
    );
    let plus = "+f".repeat(32);
    let bad = [
        &ABC_SHA256[..63],
        &ABC_SHA256[..62],
        &format!("{ABC_SHA256}00"),
        &format!("{}g", &ABC_SHA256[..63]),
        plus.as_str(),
        "",
    ];
    for hex in bad {
        let err = digest_of(hex, "AUTH_API_KEY_HASHES").expect_err(hex);
        assert_eq!(err.setting, "AUTH_API_KEY_HASHES", "{hex}");
        assert_eq!(err.problem, "an entry is not a SHA-256 hex digest");
    }
}

#[test]
fn rs256_files_hold_one_or_more_rsa_pem_blocks() {
    assert_eq!(rsa_keys(TWO_RSA).map(|k| k.len()).ok(), Some(2));
    // A block cut short at the end of the file is skipped, as before.
    let cut = format!("{TWO_RSA}-----BEGIN PUBLIC KEY-----\nMIGf");
    assert_eq!(rsa_keys(&cut).map(|k| k.len()).ok(), Some(2));
    let broken = TWO_RSA.replacen("MIGf", "M!Gf", 1);
    for bad in ["", "# no keys here\n", EC_KEY, broken.as_str()] {
        let err = rsa_keys(bad).err().map(|e| (e.setting, e.problem));
        assert_eq!(
            err,
            Some((
                "AUTH_JWT_RS256_PUBLIC_KEYS_FILE",
                "not PEM RSA public keys".to_owned()
            )),
            "{bad}"
        );
    }
    let file = temp_file("rsa.pub", TWO_RSA);
    let auth = AuthConfig::from_settings(&AuthSettings {
        auth_jwt_rs256_public_keys_file: Some(file.display().to_string()),
        auth_jwt_audience: Some(AUD.into()),
        ..AuthSettings::default()
    })
    .expect("config");
    assert_eq!(auth.jwt_keys.len(), 2);
    assert!(auth.enabled());
}
