//! `GET /metrics` (the Prometheus text format, on the main port or `METRICS_PORT`) and the
//! tasks behind it: the business and rollup gauges, and the background fold of the rollup log.

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
    let metrics = &state.metrics;
    if let Some(reports) = state.analytics.report_cache() {
        reports.run_pending_tasks().await;
        metrics.set_cache_size("reports", reports.weighted_size(), reports.entry_count());
    }
    state.rendered.run_pending_tasks().await;
    let rendered = &state.rendered;
    metrics.set_cache_size(
        "rest_bodies",
        rendered.weighted_size(),
        rendered.entry_count(),
    );
    state.responses.run_pending_tasks().await;
    let responses = &state.responses;
    metrics.set_cache_size(
        "graphql_responses",
        responses.weighted_size(),
        responses.entry_count(),
    );
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

/// How often the background fold runs: the rollups' invalidation log is folded in at
/// least this often even when nobody reads a report, so it stays short (a fold of a
/// few seconds' writes is a few index ranges) and the read path rarely finds work.
pub const FOLD_PERIOD: Duration = Duration::from_secs(5);

/// How long after start the gauges are first sampled: their counts over `users` cost
/// ~40 ms at 100k users, and a pod's first requests should not share its cores with them.
pub const GAUGE_FIRST_DELAY: Duration = Duration::from_secs(5);

/// Refreshes the business and rollup gauges for the dashboards every [`GAUGE_PERIOD`],
/// the first time [`GAUGE_FIRST_DELAY`] after start, until aborted.
pub async fn refresh_business_gauges(state: AppState) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + GAUGE_FIRST_DELAY,
        GAUGE_PERIOD,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sample_gauges(&state).await;
    }
}

/// One sampling of every gauge the task refreshes: today's token figures, the active
/// users, the rollup log's length and the newest recorded `rollup verify`. Each failure
/// is logged at warn and leaves that gauge as it was.
pub async fn sample_gauges(state: &AppState) {
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
    db::named("rollup_gauges", sample_rollup_gauges(state)).await;
}

async fn sample_rollup_gauges(state: &AppState) {
    let m = &state.metrics.rollup;
    match db::rollup::pending(&state.db).await {
        Ok(p) => {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            m.pending.with_label_values(&["slots"]).set(gauge(p.slots));
            m.pending.with_label_values(&["users"]).set(gauge(p.users));
        }
        Err(e) => tracing::warn!(error = %e, "reading the rollup log's length failed"),
    }
    match db::rollup::last_check(&state.db).await {
        Ok(Some((checked_at, ok))) => {
            m.verify_ok.set(i64::from(ok));
            m.verify_timestamp.set(checked_at.and_utc().timestamp());
        }
        Ok(None) => {
            m.verify_ok.set(-1);
            m.verify_timestamp.set(0);
        }
        Err(e) => tracing::warn!(error = %e, "reading the last rollup verify failed"),
    }
}

/// Folds the rollups' invalidation log every [`FOLD_PERIOD`], until aborted, so the log
/// stays short when nobody reads. A failed fold is logged at warn and retried next period
/// (its log rows stay; the next read folds them too).
pub async fn fold_rollups_in_background(state: AppState) {
    // The first fold one period after start: serving starts right after the migration
    // (whose build leaves the log empty), and the first uncached read folds anyway.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FOLD_PERIOD, FOLD_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = state.analytics.fold_rollups().await {
            tracing::warn!(error = %e, "background fold of the rollup log failed");
        }
    }
}
