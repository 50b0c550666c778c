//! Why a request was refused: the `401`'s message and `WWW-Authenticate` challenge.

use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

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
