//! Building the accepted credentials from the plain auth settings: API key digests from
//! hex, the HS256 secret and RS256 PEM keys from their files, each with its JWT `Validation`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;

use super::AuthConfig;
use crate::config::{AuthSettings, ConfigError};

/// A JWT verification key with its [`Validation`], built once with the config.
#[derive(Clone)]
pub(super) struct JwtKey {
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
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

fn read_file(path: &str, setting: &'static str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            setting,
            format!("cannot read '{path}': {}", e.kind()),
            "a readable file path",
        )
    })
}

pub(super) fn digest_of(hex: &str, setting: &'static str) -> Result<[u8; 32], ConfigError> {
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
pub(super) fn rsa_keys(pems: &str) -> Result<Vec<DecodingKey>, ConfigError> {
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

/// A path setting that is set and not blank.
fn path(setting: &Option<String>) -> Option<&str> {
    setting.as_deref().filter(|p| !p.trim().is_empty())
}

impl AuthConfig {
    /// Reads the key files and checks every credential; a bad one is refused naming its setting.
    pub fn from_settings(settings: &AuthSettings) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        let mut jwt_keys: Vec<(DecodingKey, Algorithm)> = Vec::new();
        let mut digests = Vec::new();
        if let Some(list) = settings.auth_api_key_hashes.as_ref() {
            let list = list.expose_secret();
            digests.extend(
                list.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| ("AUTH_API_KEY_HASHES", s.to_owned())),
            );
        }
        if let Some(path) = path(&settings.auth_api_key_hashes_file) {
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
        if let Some(path) = path(&settings.auth_jwt_hs256_secret_file) {
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
        if let Some(path) = path(&settings.auth_jwt_rs256_public_keys_file) {
            let pems = read_file(path, "AUTH_JWT_RS256_PUBLIC_KEYS_FILE")?;
            jwt_keys.extend(rsa_keys(&pems)?.into_iter().map(|k| (k, Algorithm::RS256)));
        }
        config.audience = settings
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
        config.metrics = settings.auth_metrics;
        Ok(config)
    }
}
