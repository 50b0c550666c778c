//! The one application error for HTTP handlers: a JSON body with a code, never internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::graphql::codes;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "no such path: see /graphql, /api/reports/daily_usage, /api/reports/user_visits, /health_check, /readiness_check, /metrics"
    )]
    NotFound,
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is over the limit of {0} bytes (MAX_BODY_BYTES)")]
    PayloadTooLarge(usize),
    #[error("the database is unavailable; retry shortly")]
    DatabaseUnavailable,
    #[error("the query took too long and was cancelled")]
    Timeout,
    #[error("the request took longer than {} ms and was cancelled", .0.as_millis())]
    RequestTimeout(std::time::Duration),
    /// The detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, codes::BAD_USER_INPUT),
            Self::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NOT_ACCEPTABLE"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            Self::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::DATABASE_UNAVAILABLE)
            }
            Self::Timeout | Self::RequestTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, codes::TIMEOUT)
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        }
    }

    /// A copy, for errors shared by the callers of one single-flight render.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::BadRequest(m) => Self::BadRequest(m.clone()),
            Self::NotFound => Self::NotFound,
            Self::NotAcceptable(m) => Self::NotAcceptable(m.clone()),
            Self::UnsupportedMediaType(m) => Self::UnsupportedMediaType(m.clone()),
            Self::MethodNotAllowed(m) => Self::MethodNotAllowed(m.clone()),
            Self::PayloadTooLarge(n) => Self::PayloadTooLarge(*n),
            Self::DatabaseUnavailable => Self::DatabaseUnavailable,
            Self::Timeout => Self::Timeout,
            Self::RequestTimeout(d) => Self::RequestTimeout(*d),
            Self::Internal(m) => Self::Internal(m.clone()),
        }
    }

    /// Maps a GraphQL error code (from `extensions.code`) back to an HTTP error.
    pub fn from_code(code: Option<&str>, message: &str) -> Self {
        match code {
            Some(codes::DATABASE_UNAVAILABLE) => Self::DatabaseUnavailable,
            Some(codes::TIMEOUT) => Self::Timeout,
            Some(codes::BAD_USER_INPUT) => Self::BadRequest(message.to_owned()),
            _ => Self::Internal(message.to_owned()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut response = (
            status,
            Json(json!({ "error": { "code": code, "message": self.to_string() } })),
        )
            .into_response();
        if let Self::MethodNotAllowed(_) = self {
            response.headers_mut().insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static("POST"),
            );
        }
        response
    }
}
