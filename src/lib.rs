//! Coworking analytics gateway: GraphQL for BI tools and the legacy REST reports over one schema.

/// Report queries and their cache.
pub mod analytics;
/// `/graphql` over HTTP and the offline playground.
pub mod api;
/// API keys and JWT bearer tokens.
pub mod auth;
/// The command line and what each subcommand does.
pub mod cli;
/// Settings from flags and env vars, typed by concern; imports nothing from the crate.
pub mod config;
/// Connection pool, migrations and the backends' SQL dialect (the only backend-specific SQL).
pub mod db;
/// The HTTP error type.
pub mod error;
/// The GraphiQL IDE page and its bundled assets.
pub mod graphiql;
/// The GraphQL schema.
pub mod graphql;
/// Size, time and rate limits; JSON error bodies.
pub mod limits;
/// Prometheus metrics.
pub mod metrics;
/// HTTP middleware: request ids, metrics, access log.
pub mod middleware;
/// Legacy REST adapters and probes.
pub mod rest;
/// Deterministic demo data.
pub mod seed;
/// Application build, router and graceful shutdown.
pub mod startup;
/// Logging setup.
pub mod telemetry;
