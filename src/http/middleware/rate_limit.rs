//! Request limits: header and body size (431/413), time (504), per-client rate (429), and a
//! JSON body on every error response, whoever produced it (axum, the GraphQL extractor, us).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::Principal;
use crate::config::RateLimit;
use crate::http::error::AppError;

/// Headers beyond this many bytes in total get a 431 (hyper's own limit is far larger
/// and answers without a body).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// Refuses oversized headers and bodies before a handler reads them; bodies without a
/// Content-Length are cut off at the limit while they stream.
pub async fn size_limits(State(max_body): State<usize>, req: Request, next: Next) -> Response {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HEADERS_TOO_LARGE",
            &format!("request headers are {header_bytes} bytes; the limit is {MAX_HEADER_BYTES}"),
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            &format!("the request body is over the limit of {max_body} bytes (MAX_BODY_BYTES)"),
        );
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(http_body_util::Limited::new(body, max_body));
    next.run(Request::from_parts(parts, body)).await
}

/// A request that takes longer than the limit gets a 504; dropping its future drops
/// its database work with it.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::RequestTimeout(limit).into_response(),
    }
}

/// Every 4xx/5xx gets a JSON body, except the legacy probes' `text/html` answers.
pub async fn json_errors(req: Request, next: Next) -> Response {
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
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        s if s.is_server_error() => "INTERNAL",
        _ => "BAD_REQUEST",
    };
    let body = json!({ "error": { "code": code, "message": message } }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Per-client rate limits (GCRA, `governor`): keyed by the authenticated principal,
/// else by the client address: the peer's, or with `TRUSTED_PROXY_HOPS=N` the N-th
/// address from the right of `X-Forwarded-For`, the one the outermost trusted proxy
/// saw. Entries to its left are the client's own words and never chosen.
pub struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    trusted_proxy_hops: usize,
    checks: std::sync::atomic::AtomicU64,
}

/// Every this many checks, clients whose budget is full again are forgotten.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let period = Duration::from_secs_f64(1.0 / limit.per_second).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(limit.burst.ceil().clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: governor::RateLimiter::dashmap(quota),
            trusted_proxy_hops: limit.trusted_proxy_hops,
            checks: Default::default(),
        }
    }

    /// `Err(wait)` when the client must wait before its next request.
    fn take(&self, client: &str) -> Result<(), Duration> {
        use governor::clock::{Clock, DefaultClock};
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.limiter.retain_recent();
        }
        let key = client.to_owned();
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The key of a request that carries no principal.
    fn client_address(&self, req: &Request) -> String {
        let peer = || {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
        };
        if self.trusted_proxy_hops == 0 {
            return peer();
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        // Fewer entries than trusted proxies: the leftmost is still one a proxy wrote.
        match hops.len().checked_sub(self.trusted_proxy_hops) {
            Some(i) => hops[i].to_owned(),
            None => hops.first().map_or_else(peer, |h| (*h).to_owned()),
        }
    }
}

pub async fn rate_limit(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(req).await;
    };
    let client = match req.extensions().get::<Principal>() {
        Some(p) => format!("principal:{}", p.0),
        None => limiter.client_address(&req),
    };
    match limiter.take(&client) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0);
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                &format!("too many requests: retry after {secs} s"),
            );
            if let Ok(value) = HeaderValue::from_str(&format!("{secs}")) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}
