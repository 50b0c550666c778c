//! The application's lifecycle: `Application::build` connects, migrates, seeds the embedded
//! demo database and binds the listeners; `run_until_stopped` serves until SIGTERM/ctrl-c,
//! then fails readiness and drains in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::analytics::cache::CachePolicy;
use crate::analytics::{Analytics, Limits};
use crate::auth::AuthConfig;
use crate::config::{Config, ConfigError, DatabaseTarget};
use crate::db;
use crate::graphql::{self, SchemaLimits};
use crate::http;
use crate::metrics::Metrics;
use crate::seed;

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

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    server: http::Server,
}

impl Application {
    /// Reads the auth key files first: a bad one stops the build before any connection.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let auth = AuthConfig::from_settings(&config.auth)?;
        Self::build_with_auth(config, auth).await
    }

    /// [`build`](Self::build) with the credentials already read from `config.auth`.
    pub async fn build_with_auth(config: Config, auth: AuthConfig) -> Result<Self, StartupError> {
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
            metrics.cache_counters("reports"),
            metrics.rollup.clone(),
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
        let server = http::Server::new(config, auth, db, analytics, schema, metrics);
        Ok(Self {
            listener,
            metrics_listener,
            server,
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

    pub fn server(&self) -> &http::Server {
        &self.server
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
        let http = self.server;
        let drain = http.shutdown_drain();
        let gauges = tokio::spawn(http.business_gauges());
        let fold = tokio::spawn(http.background_fold());
        let metrics_server = self.metrics_listener.map(|listener| {
            let router = http.metrics_router();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            })
        });
        let stopping = Arc::new(tokio::sync::Notify::new());
        let notify = stopping.clone();
        let draining = http.clone();
        let server = axum::serve(
            self.listener,
            http.router()
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await;
            draining.begin_draining();
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
        fold.abort();
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
