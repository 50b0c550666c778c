//! The request id's header, and the check that drops an incoming id unfit for logs,
//! so `SetRequestIdLayer` gives that request a fresh one.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's request id is kept when it is short printable ASCII, so it can go in logs safely.
fn valid(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
}

/// Removes an `x-request-id` that is not [`valid`] (runs before `SetRequestIdLayer`).
pub async fn drop_invalid(mut req: Request) -> Request {
    // The first value is the one the request-id layers read.
    if req.headers().get(&REQUEST_ID).is_some_and(|v| !valid(v)) {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}
