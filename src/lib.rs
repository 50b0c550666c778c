//! Coworking analytics gateway: GraphQL for BI tools and the legacy REST reports over one schema.
//!
//! Imports run one way (README, "Architecture"): `codes`, `config` and `metrics` import
//! nothing from the crate; then `db` → `analytics` (and `seed`) → `auth`, `graphql` →
//! `http` → `app` → `cli`. Only `http` names `AppState`.

/// Report queries over `users` and `tokens`, and the one generic cache they share.
pub mod analytics;
/// Application lifecycle: build, run until stopped, drain.
pub mod app;
/// API keys and JWT bearer tokens, built from config's plain auth settings.
pub mod auth;
/// The command line and what each subcommand does.
pub mod cli;
/// Error codes and the one JSON error body (a leaf: imports nothing).
pub mod codes;
/// Settings from flags and env vars, typed by concern; imports nothing from the crate.
pub mod config;
/// Connection pool, migrations and the backends' SQL dialect.
pub mod db;
/// The GraphQL schema: query roots, connections, loaders, scalars and extensions.
pub mod graphql;
/// The HTTP layer: router, tower stack, handlers, `AppState`.
pub mod http;
/// Prometheus metrics (a leaf: imports nothing from the crate).
pub mod metrics;
/// The demo and bench seeder, with its own SQL.
pub mod seed;
/// Logging setup.
pub mod telemetry;
