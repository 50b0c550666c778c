//! `GET /metrics` (the Prometheus text format, on the main port or `METRICS_PORT`) and the
//! task that refreshes the business gauges behind it.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::db;
use crate::http::state::AppState;

/// The router of the separate metrics port, when `METRICS_PORT` is set.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .with_state(state)
}

pub async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle, max) = db::pool_state(&state.db);
    let pool = &state.metrics.db_pool;
    pool.with_label_values(&["idle"]).set(i64::from(idle));
    pool.with_label_values(&["active"])
        .set(i64::from(size.saturating_sub(idle)));
    pool.with_label_values(&["max"]).set(i64::from(max));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// How often the business gauges are refreshed (the legacy scheduler's period).
pub const GAUGE_PERIOD: Duration = Duration::from_secs(30);

/// Refreshes today's token figures and the active users for the dashboards, until aborted.
pub async fn refresh_business_gauges(state: AppState) {
    let mut tick = tokio::time::interval(GAUGE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let today = chrono::Utc::now().date_naive();
        match state
            .analytics
            .summary_now(Some(today), Some(today), &chrono_tz::UTC)
            .await
        {
            Ok(s) => {
                state.metrics.tokens_used_today.set(s.tokens_used);
                state.metrics.tokens_issued_today.set(s.tokens_issued);
                state.metrics.active_users.set(s.active_users);
                tracing::debug!(
                    used = s.tokens_used,
                    issued = s.tokens_issued,
                    active = s.active_users,
                    "business gauges refreshed"
                );
            }
            Err(e) => tracing::warn!(error = %e, "refreshing business gauges failed"),
        }
    }
}
