//! The one application error for HTTP handlers and the one way an error answer is
//! written: status, `{"error":{"code","message"}}` (see [`crate::codes`]), never internals.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::codes;

#[derive(Debug, Clone, thiserror::Error)]
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
            Self::NotFound => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            Self::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, codes::NOT_ACCEPTABLE),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
            ),
            Self::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, codes::METHOD_NOT_ALLOWED)
            }
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE),
            Self::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, codes::DATABASE_UNAVAILABLE)
            }
            Self::Timeout | Self::RequestTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, codes::TIMEOUT)
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        }
    }

    /// The code its body carries.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
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

impl From<crate::analytics::AnalyticsError> for AppError {
    fn from(e: crate::analytics::AnalyticsError) -> Self {
        use crate::analytics::AnalyticsError as E;
        match e {
            E::BadInput { message, .. } => Self::BadRequest(message),
            E::Unavailable => Self::DatabaseUnavailable,
            E::Timeout => Self::Timeout,
            E::Internal(detail) => Self::Internal(detail),
        }
    }
}

/// An error answer: `status` with the one JSON error body.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(codes::error_body(code, message))).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut response = error_response(status, code, &self.to_string());
        if let Self::MethodNotAllowed(_) = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// What a handler's panic said, carried on its 500 so the access log (which knows the
/// request id) can log it.
#[derive(Debug, Clone)]
pub struct Panicked(pub String);

/// `CatchPanicLayer`'s answer to a panic: the JSON 500 of an internal error, the
/// panic's message kept for the log, never sent.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    // Not `into_response`: that would log a detail-less line without the request id.
    let error = AppError::Internal(String::new());
    let (status, code) = error.status_and_code();
    let mut response = error_response(status, code, &error.to_string());
    response.extensions_mut().insert(Panicked(message));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_the_json_500_and_keeps_its_message_for_the_log() {
        for payload in [
            Box::new("static boom") as Box<dyn Any + Send>,
            Box::new(String::from("formatted boom")),
        ] {
            let expected = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned());
            let response = panic_response(payload);
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                response.extensions().get::<Panicked>().map(|p| p.0.clone()),
                expected
            );
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("body");
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(body, codes::error_body(codes::INTERNAL, "internal error"));
        }
    }
}
