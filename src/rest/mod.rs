//! Legacy REST: the two reports as thin adapters over persisted GraphQL operations, and the probes.

pub mod probes;
pub mod reports;

use axum::Router;
use axum::routing::get;

use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health_check", get(probes::health_check))
        .route("/readiness_check", get(probes::readiness_check))
        .route("/api/reports/daily_usage", get(reports::daily_usage))
        .route("/api/reports/user_visits", get(reports::user_visits))
}
