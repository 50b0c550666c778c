//! `Application::build` binds the listener and wires state; `run_until_stopped` serves until SIGTERM/ctrl-c and drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::analytics::{Analytics, Limits};
use crate::config::{Config, DatabaseTarget};
use crate::db::{self, DbStats};
use crate::graphql::{self, AppSchema, SchemaLimits};
use crate::{api, rest, seed};

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub analytics: Analytics,
    pub schema: AppSchema,
    pub db: DatabaseConnection,
    pub db_stats: Arc<DbStats>,
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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The router as a plain function of the state, so tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(api::graphql_get).post(api::graphql_post))
        .merge(rest::routes())
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

/// Demo data for the embedded default: the legacy seed's shape and size.
pub const DEMO_PLAN: seed::SeedPlan = seed::SeedPlan {
    users: 1_000,
    tokens: 2_500,
    seed: 42,
    append: false,
};

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let db_stats = Arc::new(DbStats::default());
        let db = db::connect(&config, db_stats.clone()).await?;
        if config.database.is_sqlite() || config.migrate_on_start {
            db::migrate(&db).await?;
        }
        if matches!(config.database, DatabaseTarget::EmbeddedDefault { .. })
            && seed::is_empty(&db).await?
        {
            seed::seed(&db, DEMO_PLAN, |_, _| {}).await?;
        }
        let analytics = Analytics::new(
            db.clone(),
            Limits {
                max_buckets: config.max_buckets,
                max_page_size: config.max_page_size,
            },
        );
        let schema = graphql::build_schema(
            analytics.clone(),
            SchemaLimits {
                max_depth: config.graphql_max_depth,
                max_complexity: config.graphql_max_complexity,
            },
        );
        let addr = SocketAddr::new(config.bind_address, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let state = AppState {
            analytics,
            schema,
            db,
            db_stats,
            shutting_down: Arc::new(AtomicBool::new(false)),
            config: Arc::new(config),
        };
        Ok(Self { listener, state })
    }

    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
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
        let stopping = Arc::new(tokio::sync::Notify::new());
        let notify = stopping.clone();
        let flag = state.shutting_down.clone();
        let server = axum::serve(self.listener, router(state)).with_graceful_shutdown(async move {
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
        tokio::select! {
            served = server => served,
            () = deadline => {
                tracing::warn!("drain time exceeded; exiting with requests still in flight");
                Ok(())
            }
        }
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
