//! Settings from CLI flags and environment variables (including the legacy `DB_*` ones),
//! typed and range-checked by clap, grouped by concern. Imports nothing from the crate.

mod auth;
mod cache;
mod db;
mod graphql;
mod http;
mod metrics;
mod rate_limit;
#[cfg(test)]
mod tests;
mod value;

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

pub use auth::AuthSettings;
pub use cache::{CacheArgs, CacheSettings, DEFAULT_CACHE_MAX_BYTES};
pub use db::{DatabaseTarget, DbArgs};
pub use graphql::GraphqlArgs;
pub use http::{HttpArgs, LogFormat};
pub use metrics::{DEFAULT_KNOWN_OPERATIONS, MetricsArgs, OperationNames};
pub use rate_limit::{RateLimit, RateLimitArgs};
pub use value::{ConfigError, int, refused_value};

/// Every setting, as clap parsed it; [`Config::from_settings`] resolves what depends on
/// several of them (the database target, the rate limit, the metrics port).
#[derive(Args, Debug, Clone, Default)]
pub struct Settings {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub graphql: GraphqlArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
    #[command(flatten)]
    pub auth: AuthSettings,
}

impl Settings {
    /// Reads the password from the environment only, so it never shows in `ps`.
    pub fn with_env_password(mut self) -> Self {
        self.db.db_password = std::env::var("DB_PASSWORD").ok().map(Into::into);
        self
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseTarget,
    pub bind_address: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub db_pool_max: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    pub max_page_size: usize,
    pub max_buckets: usize,
    pub shutdown_drain: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub graphql_max_batch: usize,
    pub graphql_max_aliases: usize,
    pub graphql_introspection: bool,
    pub graphql_playground: bool,
    /// `None`: no per-client rate limit.
    pub rate_limit: Option<RateLimit>,
    /// As given; `crate::auth` reads its files and builds the keys.
    pub auth: AuthSettings,
    /// Run pending migrations before serving (`serve --migrate`); SQLite always migrates.
    pub migrate_on_start: bool,
    pub cache: CacheSettings,
    /// `None`: /metrics on the main port.
    pub metrics_port: Option<u16>,
    pub graphql_known_operations: Vec<String>,
}

impl Config {
    /// The settings resolved; with `Settings::default()`, what works on a laptop: embedded
    /// SQLite, port 5153, every limit at its documented value.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let Settings {
            db,
            http,
            graphql,
            cache,
            metrics,
            rate_limit,
            auth,
        } = settings;
        Ok(Self {
            database: db.target()?,
            bind_address: http.bind_address,
            port: http.app_port,
            log_format: http.log_format,
            db_pool_max: db.db_pool_max,
            db_acquire_timeout: db.acquire_timeout(),
            db_statement_timeout: db.statement_timeout(),
            graphql_max_depth: graphql.graphql_max_depth,
            graphql_max_complexity: graphql.graphql_max_complexity,
            max_page_size: graphql.max_page_size,
            max_buckets: graphql.max_buckets,
            shutdown_drain: http.shutdown_drain(),
            max_body_bytes: http.max_body_bytes,
            request_timeout: http.request_timeout(),
            graphql_max_batch: graphql.graphql_max_batch,
            graphql_max_aliases: graphql.graphql_max_aliases,
            graphql_introspection: graphql.graphql_introspection,
            graphql_playground: graphql.graphql_playground,
            rate_limit: rate_limit.limit(),
            auth: auth.clone(),
            migrate_on_start: false,
            cache: cache.into(),
            metrics_port: metrics.port(),
            graphql_known_operations: metrics.graphql_known_operations.0.clone(),
        })
    }

    /// Settings for tests and tools: defaults around an explicit database URL.
    pub fn for_database_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_settings(&Settings {
            db: DbArgs {
                database_url: Some(url.into()),
                ..DbArgs::default()
            },
            ..Settings::default()
        })
    }
}
