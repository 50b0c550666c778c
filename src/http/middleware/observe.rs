//! HTTP middleware: request id (accepted or generated, always echoed), metrics by route
//! template, and one JSON log line per request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::app::ROUTES;
use crate::metrics::Metrics;
use crate::telemetry::RequestContext;

pub const REQUEST_ID: &str = "x-request-id";
/// The label for paths no route matched: one value, whatever the path.
pub const UNMATCHED: &str = "unmatched";

/// A caller's request id is kept when it is short printable ASCII, so it can go in logs safely.
fn valid_request_id(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    // Runs on completion and on cancellation (client gone) alike.
    fn drop(&mut self) {
        self.0.http_in_flight.dec();
    }
}

pub async fn observe(
    State(metrics): State<Arc<Metrics>>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(valid_request_id)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let context = Arc::new(RequestContext::new(request_id.clone()));
    req.extensions_mut().insert(context.clone());
    let method = req.method().as_str().to_owned();
    let path = req.uri().path();
    let route = ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or(UNMATCHED);
    metrics.http_in_flight.inc();
    let guard = InFlight(metrics.clone());
    let mut response = next.run(req).await;
    drop(guard);
    let status = response.status().as_u16();
    let latency = started.elapsed();
    metrics
        .http_requests
        .with_label_values(&[method.as_str(), route, &status.to_string()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method.as_str(), route])
        .observe(latency.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match context.operation() {
        Some(operation) => tracing::info!(
            request_id, method, route, status, latency_ms, operation, "request"
        ),
        None => tracing::info!(request_id, method, route, status, latency_ms, "request"),
    }
    response
}
