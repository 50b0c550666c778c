//! `Server`: one gateway's HTTP side as `app` runs it (its routers, the business-gauge task and
//! the draining flag), so nothing outside `http` names `AppState`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use sea_orm::DatabaseConnection;

use crate::analytics::Analytics;
use crate::analytics::cache::CachePolicy;
use crate::auth::AuthConfig;
use crate::config::{Config, ConfigError};
use crate::graphql::AppSchema;
use crate::metrics::Metrics;

use super::middleware::rate_limit::RateLimiter;
use super::rendered::rendered_cache;
use super::state::{AppState, Shared};

/// Cheap to clone: every clone serves the same state.
#[derive(Clone)]
pub struct Server {
    state: AppState,
}

impl Server {
    /// The HTTP layer's own parts (auth, rate limiter, rendered-body cache, the draining
    /// flag) are made here from `config`; a key file that cannot be read is a [`ConfigError`].
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        analytics: Analytics,
        schema: AppSchema,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let rest_bodies = CachePolicy::from(config.cache).budget().rest_bodies;
        let state = AppState::new(Shared {
            analytics,
            schema,
            db,
            metrics,
            auth: Arc::new(AuthConfig::from_settings(&config.auth)?),
            rate_limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            rendered: rendered_cache(config.cache.ttl, rest_bodies),
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        });
        Ok(Self { state })
    }

    /// The main port's router, with the whole tower stack.
    pub fn router(&self) -> Router {
        super::router(self.state.clone())
    }

    /// The router of the separate metrics port, when `METRICS_PORT` is set.
    pub fn metrics_router(&self) -> Router {
        super::metrics::metrics_router(self.state.clone())
    }

    /// Refreshes the business gauges forever (run it as a task).
    pub fn business_gauges(&self) -> impl Future<Output = ()> + Send + 'static {
        super::metrics::refresh_business_gauges(self.state.clone())
    }

    /// How long in-flight requests get after the stop signal.
    pub fn shutdown_drain(&self) -> Duration {
        self.state.config.shutdown_drain
    }

    /// From now on readiness fails, so the load balancer sends no new requests.
    pub fn begin_draining(&self) {
        self.state.shutting_down.store(true, Ordering::SeqCst);
    }

    /// What the handlers share (for tests that drive a handler or read the pool).
    pub fn state(&self) -> &AppState {
        &self.state
    }
}
