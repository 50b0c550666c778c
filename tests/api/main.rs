//! One integration-test binary: the app on port 0 against SQLite in memory and, with
//! `TEST_DATABASE_URL`, a fresh PostgreSQL database per test.

mod auth;
mod cache;
mod cache_bytes;
mod config_cli;
mod fuzz;
mod graphiql;
mod graphql_spec;
mod graphql_usage;
mod graphql_users;
mod graphql_visits;
mod helpers;
mod hostile;
mod http_cache;
mod limits;
mod migrations;
mod observability;
mod panics;
mod placeholders;
mod probes;
mod readme;
mod reference;
mod rest_reports;
mod rollups;
mod seed;
mod shutdown;
mod spawn_env;
