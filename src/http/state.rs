//! `AppState`, what every handler shares; only `http` names it (`app` builds it with [`AppState::new`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sea_orm::DatabaseConnection;

use crate::analytics::Analytics;
use crate::analytics::cache::CachePolicy;
use crate::auth::AuthConfig;
use crate::config::{Config, ConfigError};
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
    /// rendered-body cache, the draining flag) are made here from `config`; a key file
    /// that cannot be read is a [`ConfigError`].
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        analytics: Analytics,
        schema: AppSchema,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let rest_bodies = CachePolicy::from(config.cache).budget().rest_bodies;
        Ok(Self {
            analytics,
            schema,
            db,
            metrics,
            auth: Arc::new(AuthConfig::from_settings(&config.auth)?),
            rate_limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            rendered: rendered::rendered_cache(config.cache.ttl, rest_bodies),
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        })
    }
}
