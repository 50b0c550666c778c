//! Legacy REST: the two reports as thin adapters over persisted GraphQL operations, and the probes.

pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod middleware;
pub mod probes;
pub mod reports;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;

/// The legacy reports: data roads (authenticated when auth is on).
pub fn report_routes() -> Router<AppState> {
    Router::new()
        .route("/api/reports/daily_usage", get(reports::daily_usage))
        .route("/api/reports/user_visits", get(reports::user_visits))
}

/// The probes: never authenticated, never rate limited.
pub fn probe_routes() -> Router<AppState> {
    Router::new()
        .route("/health_check", get(probes::health_check))
        .route("/readiness_check", get(probes::readiness_check))
}
