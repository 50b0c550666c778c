//! Authentication of the data roads: API keys (stored as SHA-256 digests, compared in
//! constant time) and JWT bearer tokens (HS256 secret or RS256 public keys; exp/nbf/aud checked).

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, RawSettings};

/// Who made a request, once authenticated; also the rate limiter's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

/// Why a request was refused; the variant alone decides the message and the
/// `WWW-Authenticate` challenge of the `401`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Neither `X-API-Key` nor `Authorization` was sent.
    MissingCredentials,
    /// `Authorization` with a scheme other than Bearer.
    UnsupportedScheme,
    /// An API key (either header) that matches no configured digest.
    InvalidApiKey,
    /// A JWT that fails its signature, `exp`/`nbf` or `aud` checks.
    InvalidToken,
}

const CHALLENGE: &str = "Bearer realm=\"coworking-gateway\"";
const CHALLENGE_INVALID: &str = "Bearer realm=\"coworking-gateway\", error=\"invalid_token\"";

impl AuthFailure {
    pub fn message(self) -> &'static str {
        match self {
            Self::MissingCredentials => {
                "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>"
            }
            Self::UnsupportedScheme => "unsupported Authorization scheme: use Bearer",
            Self::InvalidApiKey => "invalid API key",
            Self::InvalidToken => "invalid or expired token",
        }
    }

    /// The bare challenge only when no credentials came at all; every refused credential,
    /// a non-Bearer scheme included, is told `error="invalid_token"`.
    pub fn challenge(self) -> &'static str {
        match self {
            Self::MissingCredentials => CHALLENGE,
            Self::UnsupportedScheme | Self::InvalidApiKey | Self::InvalidToken => CHALLENGE_INVALID,
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl IntoResponse for AuthFailure {
    fn into_response(self) -> Response {
        let body = crate::codes::error_body(crate::codes::UNAUTHENTICATED, self.message());
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(self.challenge()),
            )],
            axum::Json(body),
        )
            .into_response()
    }
}

/// A JWT verification key with its [`Validation`], built once with the config.
#[derive(Clone)]
struct JwtKey {
    key: DecodingKey,
    validation: Validation,
}

/// The checks every token passes: its key's algorithm only (so never `none`), `exp` and `aud`
/// required, `nbf` honoured, 5 s of leeway.
fn validation(alg: Algorithm, audience: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = 5;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "aud"]);
    validation.set_audience(&[audience]);
    validation
}

#[derive(Clone, Default)]
pub struct AuthConfig {
    api_key_digests: Vec<[u8; 32]>,
    jwt_keys: Vec<JwtKey>,
    audience: Option<String>,
    /// Whether /metrics needs credentials too.
    pub metrics: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("api_keys", &self.api_key_digests.len())
            .field("jwt_keys", &self.jwt_keys.len())
            .field("audience", &self.audience)
            .field("metrics", &self.metrics)
            .finish()
    }
}

fn read_file(path: &str, setting: &'static str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            setting,
            format!("cannot read '{path}': {}", e.kind()),
            "a readable file path",
        )
    })
}

fn digest_of(hex: &str, setting: &'static str) -> Result<[u8; 32], ConfigError> {
    let hex = hex.trim();
    let bad = || {
        ConfigError::new(
            setting,
            "an entry is not a SHA-256 hex digest",
            "64 hex characters per key, e.g. from `printf %s KEY | sha256sum`",
        )
    };
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// Every PEM block of the file as an RS256 key; none, or one that is not an RSA key, is refused.
fn rsa_keys(pems: &str) -> Result<Vec<DecodingKey>, ConfigError> {
    let bad = || {
        ConfigError::new(
            "AUTH_JWT_RS256_PUBLIC_KEYS_FILE",
            "not PEM RSA public keys",
            "a file of one or more -----BEGIN PUBLIC KEY----- blocks",
        )
    };
    let blocks = pem::parse_many(pems).map_err(|_| bad())?;
    if blocks.is_empty() {
        return Err(bad());
    }
    blocks
        .iter()
        // jsonwebtoken reads the SPKI (`PUBLIC KEY`) or PKCS#1 wrapping from the PEM text.
        .map(|block| DecodingKey::from_rsa_pem(pem::encode(block).as_bytes()).map_err(|_| bad()))
        .collect()
}

impl AuthConfig {
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let mut jwt_keys: Vec<(DecodingKey, Algorithm)> = Vec::new();
        let mut digests = Vec::new();
        if let Some(list) = raw.auth_api_key_hashes.as_deref() {
            digests.extend(
                list.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| ("AUTH_API_KEY_HASHES", s.to_owned())),
            );
        }
        if let Some(path) = raw
            .auth_api_key_hashes_file
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            let text = read_file(path, "AUTH_API_KEY_HASHES_FILE")?;
            digests.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| ("AUTH_API_KEY_HASHES_FILE", l.to_owned())),
            );
        }
        for (setting, hex) in digests {
            config.api_key_digests.push(digest_of(&hex, setting)?);
        }
        if let Some(path) = raw
            .auth_jwt_hs256_secret_file
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            let secret = read_file(path, "AUTH_JWT_HS256_SECRET_FILE")?;
            let secret = secret.trim_end_matches(['\n', '\r']);
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    "AUTH_JWT_HS256_SECRET_FILE",
                    "the secret is shorter than 32 bytes",
                    "a file holding a secret of at least 32 bytes",
                ));
            }
            jwt_keys.push((
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ));
        }
        if let Some(path) = raw
            .auth_jwt_rs256_public_keys_file
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            let pems = read_file(path, "AUTH_JWT_RS256_PUBLIC_KEYS_FILE")?;
            jwt_keys.extend(rsa_keys(&pems)?.into_iter().map(|k| (k, Algorithm::RS256)));
        }
        config.audience = raw
            .auth_jwt_audience
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if !jwt_keys.is_empty() {
            let Some(audience) = config.audience.as_deref() else {
                return Err(ConfigError::new(
                    "AUTH_JWT_AUDIENCE",
                    "JWT keys are configured without an audience",
                    "the `aud` your tokens carry, e.g. coworking-gateway",
                ));
            };
            config.jwt_keys = jwt_keys
                .into_iter()
                .map(|(key, alg)| JwtKey {
                    key,
                    validation: validation(alg, audience),
                })
                .collect();
        }
        config.metrics = match raw
            .auth_metrics
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("" | "false" | "0" | "no" | "off") => false,
            Some("true" | "1" | "yes" | "on") => true,
            Some(_) => {
                return Err(ConfigError::new(
                    "AUTH_METRICS",
                    "not a boolean",
                    "true or false",
                ));
            }
        };
        Ok(config)
    }

    /// Authentication is on as soon as any credential is configured.
    pub fn enabled(&self) -> bool {
        !self.api_key_digests.is_empty() || !self.jwt_keys.is_empty()
    }

    fn check_api_key(&self, key: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Compare against every digest without stopping early, so timing tells nothing.
        let mut found = None;
        for (i, known) in self.api_key_digests.iter().enumerate() {
            if bool::from(known.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found.map(|i| Principal(format!("api-key-{i}")))
    }

    fn check_jwt(&self, token: &str) -> Option<Principal> {
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: Option<String>,
        }
        self.jwt_keys.iter().find_map(|jwt| {
            decode::<Claims>(token, &jwt.key, &jwt.validation)
                .ok()
                .map(|data| Principal(format!("jwt:{}", data.claims.sub.unwrap_or_default())))
        })
    }

    /// The caller, from `X-API-Key: <key>` or `Authorization: Bearer <jwt or key>`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return self
                .check_api_key(key.trim())
                .ok_or(AuthFailure::InvalidApiKey);
        }
        let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(AuthFailure::MissingCredentials);
        };
        let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Err(AuthFailure::UnsupportedScheme);
        };
        // A JWT has three dot-separated parts; anything else is taken as an API key.
        if token.matches('.').count() == 2 {
            self.check_jwt(token).ok_or(AuthFailure::InvalidToken)
        } else {
            self.check_api_key(token).ok_or(AuthFailure::InvalidApiKey)
        }
    }
}

/// Refuses requests without valid credentials when authentication is on.
pub async fn require(
    State(auth): State<Arc<AuthConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    if !auth.enabled() {
        return next.run(req).await;
    }
    match auth.authenticate(req.headers()) {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(failure) => failure.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use axum::http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

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
        AuthConfig::from_raw(&RawSettings {
            auth_api_key_hashes: Some(ABC_SHA256.into()),
            auth_jwt_hs256_secret_file: Some(secret.display().to_string()),
            auth_jwt_audience: Some(AUD.into()),
            ..RawSettings::default()
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
        let auth = AuthConfig::from_raw(&RawSettings {
            auth_jwt_rs256_public_keys_file: Some(file.display().to_string()),
            auth_jwt_audience: Some(AUD.into()),
            ..RawSettings::default()
        })
        .expect("config");
        assert_eq!(auth.jwt_keys.len(), 2);
        assert!(auth.enabled());
    }
}
