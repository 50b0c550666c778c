//! `Application::build` binds the listener and wires state; `run_until_stopped` serves until SIGTERM/ctrl-c and drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::analytics::cache::CachePolicy;
use crate::analytics::{Analytics, Limits};
use crate::auth::AuthConfig;
use crate::config::{Config, ConfigError, DatabaseTarget};
use crate::db;
use crate::graphql::{self, AppSchema, SchemaLimits};
use crate::http::error::AppError;
use crate::http::middleware::observe as middleware;
use crate::http::middleware::rate_limit::{self as limits, RateLimiter};
use crate::http::{self as rest, graphiql, graphql as api};
use crate::metrics::Metrics;
use crate::seed;
use axum::middleware::{from_fn, from_fn_with_state};

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub analytics: Analytics,
    pub schema: AppSchema,
    pub db: DatabaseConnection,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<AuthConfig>,
    pub rate_limiter: Option<Arc<RateLimiter>>,
    /// Rendered legacy report bodies (see `rest::reports`).
    pub rendered: rest::reports::RenderedCache,
    /// Set on SIGTERM so readiness fails while in-flight requests drain.
    pub shutting_down: Arc<AtomicBool>,
    pub config: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("seeding demo data: {0}")]
    Seed(#[from] seed::SeedError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Every route, each its own metrics label; any other path is `unmatched`.
pub const ROUTES: &[&str] = &[
    "/graphql",
    "/api/reports/daily_usage",
    "/api/reports/user_visits",
    "/health_check",
    "/readiness_check",
    "/metrics",
];

/// The router as a plain function of the state, so tests can drive it without a socket.
///
/// Outermost first: metrics and the access log see every answer, including
/// the limits' own; error bodies become JSON; then the time and size limits;
/// on the data roads, authentication and the rate limit.
pub fn router(state: AppState) -> Router {
    // The IDE page on GET /graphql needs no credentials (it carries no data).
    let auth = from_fn_with_state(
        graphiql::AuthExceptPage {
            auth: state.auth.clone(),
            page_on: state.config.graphql_playground,
        },
        graphiql::require_auth_except_page,
    );
    let rate = from_fn_with_state(state.rate_limiter.clone(), limits::rate_limit);
    let mut data = Router::new()
        .route("/graphql", get(api::graphql_get).post(api::graphql_post))
        .merge(rest::report_routes());
    let mut open = rest::probe_routes();
    if state.config.graphql_playground {
        open = open.merge(graphiql::routes());
    }
    if state.config.metrics_port.is_none() {
        if state.auth.metrics {
            data = data.route("/metrics", get(metrics_endpoint));
        } else {
            open = open.route("/metrics", get(metrics_endpoint));
        }
    }
    // The later route_layer wraps the earlier: authentication runs first, so
    // the rate limiter can key on the authenticated client.
    data.route_layer(rate)
        .route_layer(auth)
        .merge(open)
        .fallback(not_found)
        .layer(from_fn_with_state(
            state.config.max_body_bytes,
            limits::size_limits,
        ))
        .layer(from_fn_with_state(
            state.config.request_timeout,
            limits::timeout,
        ))
        .layer(from_fn(limits::json_errors))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

/// The router of the separate metrics port, when `METRICS_PORT` is set.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn metrics_endpoint(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle, max) = db::pool_state(&state.db);
    state
        .metrics
        .db_pool
        .with_label_values(&["idle"])
        .set(i64::from(idle));
    state
        .metrics
        .db_pool
        .with_label_values(&["active"])
        .set(i64::from(size.saturating_sub(idle)));
    state
        .metrics
        .db_pool
        .with_label_values(&["max"])
        .set(i64::from(max));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// How often the business gauges are refreshed (the legacy scheduler's period).
pub const GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

/// Refreshes today's token figures and the active users for the dashboards.
async fn refresh_business_gauges(state: AppState) {
    let mut tick = tokio::time::interval(GAUGE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let today = chrono::Utc::now().date_naive();
        match state
            .analytics
            .summary_now(Some(today), Some(today), &chrono_tz::UTC)
            .await
        {
            Ok(s) => {
                state.metrics.tokens_used_today.set(s.tokens_used);
                state.metrics.tokens_issued_today.set(s.tokens_issued);
                state.metrics.active_users.set(s.active_users);
                tracing::debug!(
                    used = s.tokens_used,
                    issued = s.tokens_issued,
                    active = s.active_users,
                    "business gauges refreshed"
                );
            }
            Err(e) => tracing::warn!(error = %e, "refreshing business gauges failed"),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new(&config.graphql_known_operations)?);
        let db = db::connect(&config, Some(metrics.clone())).await?;
        if config.database.is_sqlite() || config.migrate_on_start {
            db::migrate(&db).await?;
        }
        if matches!(config.database, DatabaseTarget::EmbeddedDefault { .. })
            && seed::is_empty(&db).await?
        {
            seed::seed(&db, seed::SeedPlan::DEMO, |_, _| {}).await?;
        }
        let cache = CachePolicy::from(config.cache);
        let analytics = Analytics::new(
            db.clone(),
            Limits {
                max_buckets: config.max_buckets,
                max_page_size: config.max_page_size,
            },
            cache,
            metrics.refresh_failures("reports"),
        );
        let schema = graphql::build_schema(
            analytics.clone(),
            SchemaLimits {
                max_depth: config.graphql_max_depth,
                max_complexity: config.graphql_max_complexity,
                max_aliases: config.graphql_max_aliases,
                introspection: config.graphql_introspection,
                apq_max_bytes: cache.budget().persisted_queries,
            },
            metrics.clone(),
        );
        let addr = SocketAddr::new(config.bind_address, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let metrics_listener = match config.metrics_port {
            Some(port) => {
                let addr = SocketAddr::new(config.bind_address, port);
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?;
                Some(listener)
            }
            None => None,
        };
        let state = AppState {
            analytics,
            schema,
            db,
            metrics,
            auth: Arc::new(AuthConfig::from_settings(&config.auth)?),
            rate_limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            rendered: rest::reports::rendered_cache(config.cache.ttl, cache.budget().rest_bodies),
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        };
        Ok(Self {
            listener,
            metrics_listener,
            state,
        })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The bound metrics address when /metrics has a port of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` resolves, then fails readiness, lets in-flight
    /// requests finish for up to the drain time, and returns.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let drain = state.config.shutdown_drain;
        let gauges = tokio::spawn(refresh_business_gauges(state.clone()));
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = metrics_router(state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let stopping = Arc::new(tokio::sync::Notify::new());
        let notify = stopping.clone();
        let flag = state.shutting_down.clone();
        let server = axum::serve(
            self.listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await;
            flag.store(true, Ordering::SeqCst);
            tracing::info!(
                drain_seconds = drain.as_secs(),
                "shutting down: readiness now fails, draining in-flight requests"
            );
            notify.notify_one();
        });
        let deadline = async move {
            stopping.notified().await;
            tokio::time::sleep(drain).await;
        };
        let result = tokio::select! {
            served = server => served,
            () = deadline => {
                tracing::warn!("drain time exceeded; exiting with requests still in flight");
                Ok(())
            }
        };
        gauges.abort();
        if let Some(handle) = metrics_server {
            handle.abort();
        }
        result
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
