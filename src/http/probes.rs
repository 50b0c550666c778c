//! The legacy probes: liveness never touches the database, readiness does (bounded by a timeout).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::http::state::AppState;

const HTML: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
/// A hung database must not hang the probe (the kubelet's own timeout is 1 s by default).
pub const READINESS_TIMEOUT: Duration = Duration::from_millis(900);

pub async fn health_check() -> impl IntoResponse {
    (StatusCode::OK, HTML, "ok")
}

pub async fn readiness_check(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutting_down.load(Ordering::Relaxed) {
        return (StatusCode::INTERNAL_SERVER_ERROR, HTML, "failed");
    }
    match tokio::time::timeout(READINESS_TIMEOUT, state.analytics.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, HTML, "ok"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::INTERNAL_SERVER_ERROR, HTML, "failed")
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            (StatusCode::INTERNAL_SERVER_ERROR, HTML, "failed")
        }
    }
}
