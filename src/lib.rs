//! Coworking analytics gateway: GraphQL for BI tools and the legacy REST reports over one schema.

/// Report queries and their cache.
pub mod analytics;
/// Application lifecycle: build, run until stopped, drain.
pub mod app;
/// API keys and JWT bearer tokens.
pub mod auth;
/// The command line and what each subcommand does.
pub mod cli;
/// Error codes and the one JSON error body (a leaf: imports nothing).
pub mod codes;
/// Settings from flags and env vars, typed by concern; imports nothing from the crate.
pub mod config;
/// Connection pool, migrations and the backends' SQL dialect (the only backend-specific SQL).
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
