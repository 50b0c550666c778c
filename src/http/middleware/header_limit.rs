//! Refuses oversized request headers with a 431 JSON answer before anything reads them
//! (hyper's own limit is far larger and answers without a body).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::codes;
use crate::http::error::error_response;

/// Headers beyond this many bytes in total get a 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn header_limit(req: Request, next: Next) -> Response {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            codes::HEADERS_TOO_LARGE,
            &format!("request headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"),
        );
    }
    next.run(req).await
}
