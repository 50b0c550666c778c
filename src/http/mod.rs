//! The HTTP layer: the routes, the tower stack around them, every handler, and [`Server`],
//! what `app` runs.
//!
//! `AppState` (state.rs) is what handlers share; error.rs writes every error answer;
//! graphql/ is `/graphql`, reports.rs and probes.rs the legacy REST roads, metrics.rs
//! `/metrics`, graphiql.rs the browser IDE, middleware/ what is hand-written around them.

pub mod encoding;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod metrics;
pub mod middleware;
pub mod probes;
pub mod rendered;
pub mod reports;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, map_request};
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::SizeAbove;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use crate::analytics::Analytics;
use crate::analytics::cache::CachePolicy;
use crate::auth::AuthConfig;
use crate::config::Config;
use crate::graphql::AppSchema;
use crate::metrics::Metrics;

pub use state::AppState;

use error::AppError;
use middleware::json_errors::{self, json_errors};
use middleware::rate_limit::RateLimiter;
use middleware::request_id::{self, REQUEST_ID};
use middleware::{header_limit, observe, rate_limit};
use rendered::rendered_cache;
use state::Shared;

/// The router as a plain function of the state, so tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    let routes = routes(&state);
    with_stack(routes, state)
}

/// Every route. The data roads (`/graphql`, the reports, and `/metrics` with
/// `AUTH_METRICS`) are authenticated and rate limited; the probes, the IDE's assets
/// and an open `/metrics` are not.
fn routes(state: &AppState) -> Router<AppState> {
    // The IDE page on GET /graphql needs no credentials (it carries no data).
    let auth = from_fn_with_state(
        graphiql::AuthExceptPage {
            auth: state.auth.clone(),
            page_on: state.config.graphql_playground,
        },
        graphiql::require_auth_except_page,
    );
    let rate = from_fn_with_state(state.rate_limiter.clone(), rate_limit::rate_limit);
    let mut data = Router::new()
        .route(
            "/graphql",
            get(graphql::graphql_get).post(graphql::graphql_post),
        )
        .route("/api/reports/daily_usage", get(reports::daily_usage))
        .route("/api/reports/user_visits", get(reports::user_visits));
    let mut open = Router::new()
        .route("/health_check", get(probes::health_check))
        .route("/readiness_check", get(probes::readiness_check));
    if state.config.graphql_playground {
        open = open.merge(graphiql::routes());
    }
    if state.config.metrics_port.is_none() {
        if state.auth.metrics {
            data = data.route("/metrics", get(metrics::metrics_endpoint));
        } else {
            open = open.route("/metrics", get(metrics::metrics_endpoint));
        }
    }
    // The later route_layer wraps the earlier: authentication runs first, so
    // the rate limiter can key on the authenticated client.
    data.route_layer(rate).route_layer(auth).merge(open)
}

/// `routes` inside the tower stack, which every answer passes, outermost first:
/// an unfit incoming request id is dropped, then one is set (a UUID when absent) and
/// echoed on the response; metrics and the access log (by `MatchedPath`, so inside the
/// router: `Router::layer` wraps each route and the fallback); a panic becomes a JSON
/// 500; error bodies become JSON; the time limit (504), the header limit (431) and
/// the body limit (413); answers of 1 KiB and more are compressed as the client accepts.
pub fn with_stack(routes: Router<AppState>, state: AppState) -> Router {
    let config = &state.config;
    let limits = json_errors::Limits {
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
    };
    routes
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(from_fn(header_limit::header_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout,
        ))
        .layer(from_fn_with_state(limits, json_errors))
        // Outside the JSON error bodies, which read what they rewrite; a cached answer
        // comes already encoded (`http::encoding`) and passes through as it is.
        .layer(
            // No zstd here: clients that advertise it without decoding it exist (see
            // `encoding::COMPRESSED`); streamed answers get br or gzip.
            CompressionLayer::new()
                .no_zstd()
                .compress_when(SizeAbove::new(encoding::MIN_COMPRESS_BYTES as u16)),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(from_fn_with_state(state.metrics.clone(), observe::observe))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(map_request(request_id::drop_invalid))
        .with_state(state)
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// One gateway's HTTP side as `app` runs it (its routers, the business-gauge task and the
/// draining flag), so nothing outside `http` names `AppState`.
///
/// Cheap to clone: every clone serves the same state.
#[derive(Clone)]
pub struct Server {
    state: AppState,
}

impl Server {
    /// The HTTP layer's own parts (rate limiter, rendered-body cache, the draining flag)
    /// are made here from `config`; `auth` is built by the caller, who reports a bad key file.
    pub fn new(
        config: Config,
        auth: AuthConfig,
        db: DatabaseConnection,
        analytics: Analytics,
        schema: AppSchema,
        metrics: Arc<Metrics>,
    ) -> Self {
        let policy = CachePolicy::from(config.cache);
        let budget = policy.budget();
        let (rest_counters, response_counters) = (
            metrics.cache_counters("rest_bodies"),
            metrics.cache_counters("graphql_responses"),
        );
        let state = AppState::new(Shared {
            analytics,
            schema,
            db,
            metrics,
            auth: Arc::new(auth),
            rate_limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            rendered: rendered_cache(
                config.cache.ttl,
                config.cache.stale,
                budget.rest_bodies,
                rest_counters,
            ),
            responses: graphql::response_cache(
                &policy,
                budget.graphql_responses,
                response_counters,
            ),
            bodies: graphql::body_memo(&policy, budget.graphql_bodies),
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        });
        Self { state }
    }

    /// The main port's router, with the whole tower stack.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// The router of the separate metrics port, when `METRICS_PORT` is set.
    pub fn metrics_router(&self) -> Router {
        metrics::metrics_router(self.state.clone())
    }

    /// Refreshes the business gauges forever (run it as a task).
    pub fn business_gauges(&self) -> impl Future<Output = ()> + Send + 'static {
        metrics::refresh_business_gauges(self.state.clone())
    }

    /// One sampling of the gauges [`business_gauges`](Self::business_gauges) refreshes
    /// each period (tests call it instead of waiting for a tick).
    pub async fn sample_gauges(&self) {
        metrics::sample_gauges(&self.state).await;
    }

    /// The task that folds the rollup log every `FOLD_PERIOD`, until aborted.
    pub fn background_fold(&self) -> impl Future<Output = ()> + Send + 'static {
        metrics::fold_rollups_in_background(self.state.clone())
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
