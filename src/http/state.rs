//! `AppState`, what every handler shares; only `http` names it ([`super::Server`] builds it).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sea_orm::DatabaseConnection;

use crate::analytics::Analytics;
use crate::auth::AuthConfig;
use crate::config::Config;
use crate::graphql::AppSchema;
use crate::http::graphql::{BodyMemo, ResponseCache};
use crate::http::middleware::rate_limit::RateLimiter;
use crate::http::rendered::RenderedCache;
use crate::metrics::Metrics;

/// Shared by every handler: one `Arc`, so the clone each request makes is one
/// reference count, not one per cache and pool inside (those are contended atomics).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub analytics: Analytics,
    pub schema: AppSchema,
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthConfig>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Rendered legacy report bodies (see `http::reports`).
    pub rendered: RenderedCache,
    /// Whole GraphQL answers (see `http::graphql::cached`).
    pub responses: ResponseCache,
    /// What the POST bodies read so far asked (see `http::graphql::cached::BodyMemo`).
    pub bodies: BodyMemo,
    /// Set on SIGTERM so readiness fails while in-flight requests drain.
    pub shutting_down: Arc<AtomicBool>,
    pub config: Arc<Config>,
}
