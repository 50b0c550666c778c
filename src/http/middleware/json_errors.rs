//! Every 4xx/5xx gets the one JSON error body, whoever produced it (axum's rejections,
//! the tower-http timeout and body limit, us), except the legacy probes' `text/html`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::codes;
use crate::http::error::AppError;

/// The limits whose layers answer with a bare status: their JSON answer names them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

pub async fn json_errors(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let json = content_type.starts_with("application/json")
        || content_type.starts_with("application/graphql-response+json");
    if json || content_type.starts_with("text/html") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (code, message) = match status {
        // `RequestBodyLimitLayer` and `TimeoutLayer`: the only non-JSON 413 and 504.
        StatusCode::PAYLOAD_TOO_LARGE => {
            described(AppError::PayloadTooLarge(limits.max_body_bytes))
        }
        StatusCode::GATEWAY_TIMEOUT => described(AppError::RequestTimeout(limits.request_timeout)),
        _ => {
            let text = axum::body::to_bytes(body, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                .unwrap_or_default();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                text
            };
            (code_of(status), message)
        }
    };
    // The producer's status and other headers (`Allow` on a 405) stay.
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = codes::error_body(code, &message).to_string();
    Response::from_parts(parts, Body::from(body))
}

fn described(error: AppError) -> (&'static str, String) {
    (error.code(), error.to_string())
}

fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => codes::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::TOO_MANY_REQUESTS => codes::RATE_LIMITED,
        s if s.is_server_error() => codes::INTERNAL,
        _ => codes::BAD_REQUEST,
    }
}
