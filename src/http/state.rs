//! `AppState`, what every handler shares; only `http` names it (`app` builds it with [`AppState::new`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sea_orm::DatabaseConnection;

use crate::analytics::Analytics;
use crate::auth::AuthConfig;
use crate::config::Config;
use crate::db::DbStats;
use crate::graphql::AppSchema;
use crate::http::middleware::rate_limit::RateLimiter;
use crate::http::rendered::{self, RenderedCache};
use crate::metrics::Metrics;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub analytics: Analytics,
    pub schema: AppSchema,
    pub db: DatabaseConnection,
    pub db_stats: Arc<DbStats>,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthConfig>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Rendered legacy report bodies (see `http::reports`).
    pub rendered: RenderedCache,
    /// Set on SIGTERM so readiness fails while in-flight requests drain.
    pub shutting_down: Arc<AtomicBool>,
    pub config: Arc<Config>,
}

impl AppState {
    /// The state of one server: the HTTP layer's own parts (auth, rate limiter,
    /// rendered-body cache, the draining flag) are made here from `config`.
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        db_stats: Arc<DbStats>,
        analytics: Analytics,
        schema: AppSchema,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            analytics,
            schema,
            db,
            db_stats,
            metrics,
            auth: Arc::new(config.auth.clone()),
            rate_limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            rendered: rendered::rendered_cache(config.cache.ttl, config.cache.budget().rest_bodies),
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        }
    }
}
