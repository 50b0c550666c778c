//! Authentication of the data roads: API keys (stored as SHA-256 digests, compared in
//! constant time) and JWT bearer tokens (HS256 secret or RS256 public keys; exp/nbf/aud checked).

mod failure;
mod keys;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::decode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use failure::AuthFailure;
use keys::JwtKey;

/// Who made a request, once authenticated; also the rate limiter's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

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

impl AuthConfig {
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
