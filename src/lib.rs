//! Coworking analytics gateway: GraphQL for BI tools and the legacy REST reports over one schema.

/// Report queries; the only place with backend-specific SQL.
pub mod analytics;
/// Application lifecycle: build, run until stopped, drain.
pub mod app;
/// API keys and JWT bearer tokens.
pub mod auth;
/// What each subcommand does.
pub mod cli;
/// Error codes and the one JSON error body (a leaf: imports nothing).
pub mod codes;
/// Settings from flags and env vars.
pub mod config;
/// Connection pool and migrations.
pub mod db;
/// The GraphQL schema.
pub mod graphql;
/// The HTTP layer: router, tower stack, handlers, error body.
pub mod http;
/// Prometheus metrics.
pub mod metrics;
/// Deterministic demo data.
pub mod seed;
/// Logging setup.
pub mod telemetry;
