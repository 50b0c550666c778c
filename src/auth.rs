//! Authentication of the data roads: API keys (stored as SHA-256 digests, compared in
//! constant time) and JWT bearer tokens (HS256 secret or RS256 public keys; exp/nbf/aud checked).

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, RawSettings};

/// Who made a request, once authenticated; also the rate limiter's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

#[derive(Clone, Default)]
pub struct AuthConfig {
    api_key_digests: Vec<[u8; 32]>,
    jwt_keys: Vec<(DecodingKey, Algorithm)>,
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
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

impl AuthConfig {
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let mut config = Self::default();
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
            config.jwt_keys.push((
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
            let bad = || {
                ConfigError::new(
                    "AUTH_JWT_RS256_PUBLIC_KEYS_FILE",
                    "not PEM RSA public keys",
                    "a file of one or more -----BEGIN PUBLIC KEY----- blocks",
                )
            };
            let blocks: Vec<String> = pems
                .split("-----BEGIN")
                .filter(|b| b.contains("-----END"))
                .map(|b| format!("-----BEGIN{b}"))
                .collect();
            if blocks.is_empty() {
                return Err(bad());
            }
            for block in blocks {
                config.jwt_keys.push((
                    DecodingKey::from_rsa_pem(block.as_bytes()).map_err(|_| bad())?,
                    Algorithm::RS256,
                ));
            }
        }
        config.audience = raw
            .auth_jwt_audience
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if !config.jwt_keys.is_empty() && config.audience.is_none() {
            return Err(ConfigError::new(
                "AUTH_JWT_AUDIENCE",
                "JWT keys are configured without an audience",
                "the `aud` your tokens carry, e.g. coworking-gateway",
            ));
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
        self.jwt_keys.iter().find_map(|(key, alg)| {
            let mut validation = Validation::new(*alg);
            validation.leeway = 5;
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp", "aud"]);
            if let Some(aud) = &self.audience {
                validation.set_audience(&[aud]);
            }
            decode::<Claims>(token, key, &validation)
                .ok()
                .map(|data| Principal(format!("jwt:{}", data.claims.sub.unwrap_or_default())))
        })
    }

    /// The caller, from `X-API-Key: <key>` or `Authorization: Bearer <jwt or key>`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, &'static str> {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return self.check_api_key(key.trim()).ok_or("invalid API key");
        }
        let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(
                "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>",
            );
        };
        let Some(token) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .map(str::trim)
        else {
            return Err("unsupported Authorization scheme: use Bearer");
        };
        // A JWT has three dot-separated parts; anything else is taken as an API key.
        if token.matches('.').count() == 2 {
            self.check_jwt(token).ok_or("invalid or expired token")
        } else {
            self.check_api_key(token).ok_or("invalid API key")
        }
    }
}

fn unauthorized(reason: &'static str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "error": { "code": "UNAUTHENTICATED", "message": reason } })),
    )
        .into_response();
    let challenge = if reason.starts_with("missing") {
        "Bearer realm=\"coworking-gateway\"".to_owned()
    } else {
        "Bearer realm=\"coworking-gateway\", error=\"invalid_token\"".to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
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
        Err(reason) => unauthorized(reason),
    }
}
