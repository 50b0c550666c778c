//! Authentication settings as given: API key digests, key files, the JWT audience.
//! `crate::auth` reads the files and builds its keys from them.

use clap::Args;
use secrecy::SecretString;

use super::value::{boolean, defaults, secret};

/// Plain settings: paths and strings, read and checked by `crate::auth::AuthConfig`.
#[derive(Args, Debug, Clone)]
pub struct AuthSettings {
    /// Comma-separated SHA-256 hex digests of accepted API keys.
    #[arg(long, env = "AUTH_API_KEY_HASHES", global = true, hide_env_values = true,
          value_parser = secret)]
    pub auth_api_key_hashes: Option<SecretString>,
    /// File with one SHA-256 hex digest of an accepted API key per line (e.g. a mounted Secret).
    #[arg(long, env = "AUTH_API_KEY_HASHES_FILE", global = true)]
    pub auth_api_key_hashes_file: Option<String>,
    /// File holding the HS256 secret for JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_HS256_SECRET_FILE", global = true)]
    pub auth_jwt_hs256_secret_file: Option<String>,
    /// File holding one or more PEM RSA public keys for RS256 JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_RS256_PUBLIC_KEYS_FILE", global = true)]
    pub auth_jwt_rs256_public_keys_file: Option<String>,
    /// Required `aud` of JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_AUDIENCE", global = true)]
    pub auth_jwt_audience: Option<String>,
    /// Require credentials on /metrics too (true/false).
    #[arg(long, env = "AUTH_METRICS", global = true, default_value_t = false,
          action = clap::ArgAction::Set,
          value_parser = boolean(false).problem(|_| "not a boolean".to_owned()).env_name())]
    pub auth_metrics: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        defaults()
    }
}
