//! Metrics by route template and one log line per request, with its request id
//! (set by `tower_http`'s request-id layers outside this one).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;

use crate::http::error::Panicked;
use crate::metrics::Metrics;
use crate::telemetry::RequestContext;

/// The label for paths no route matched: one value, whatever the path.
pub const UNMATCHED: &str = "unmatched";

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
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let context = Arc::new(RequestContext::new(request_id.clone()));
    req.extensions_mut().insert(context.clone());
    let method = req.method().as_str().to_owned();
    // The router's template (`/graphql/assets/{file}`), never the raw path.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.http_in_flight.inc();
    let guard = InFlight(metrics.clone());
    let response = next.run(req).await;
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
    if let Some(Panicked(panic)) = response.extensions().get::<Panicked>() {
        tracing::error!(request_id, method, route, panic, "handler panicked");
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
