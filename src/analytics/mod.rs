//! The report queries over `users` and `tokens`: plain Rust types in and out, no HTTP or GraphQL here.

pub mod cache;
pub mod summary;
pub mod time;
pub mod usage;
pub mod users;
pub mod visits;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, RuntimeErr};

use cache::{CachePolicy, Cached, Key, ReportCache, Source, Value};

use crate::db::dialect::Dialect;

/// Why a report could not be computed; each kind maps to one client-facing code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyticsError {
    /// An argument the caller can fix; `argument` names it.
    #[error("{message}")]
    BadInput {
        argument: &'static str,
        message: String,
    },
    /// The database cannot be reached (refused, cut, pool exhausted).
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    /// The statement ran past its time limit.
    #[error("the query took too long and was cancelled")]
    Timeout,
    /// Anything else; the detail is for the log only.
    #[error("internal error")]
    Internal(String),
}

impl AnalyticsError {
    pub fn bad_input(argument: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            argument,
            message: message.into(),
        }
    }
}

impl From<DbErr> for AnalyticsError {
    fn from(err: DbErr) -> Self {
        use sea_orm::sqlx::Error as Sqlx;
        let runtime = match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return Self::Unavailable,
            DbErr::Exec(r) | DbErr::Query(r) => r,
            _ => return Self::Internal(err.to_string()),
        };
        let RuntimeErr::SqlxError(sqlx) = runtime else {
            return Self::Internal(err.to_string());
        };
        match sqlx.as_ref() {
            Sqlx::Io(_)
            | Sqlx::Tls(_)
            | Sqlx::Protocol(_)
            | Sqlx::PoolTimedOut
            | Sqlx::PoolClosed
            | Sqlx::WorkerCrashed => Self::Unavailable,
            Sqlx::Database(db) => match db.code().as_deref() {
                // query_canceled: statement_timeout fired.
                Some("57014") => Self::Timeout,
                // connection exceptions, server shutting down or starting up.
                Some(code) if code.starts_with("08") || code.starts_with("57P") => {
                    Self::Unavailable
                }
                _ => Self::Internal(err.to_string()),
            },
            _ => Self::Internal(err.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, AnalyticsError>;

/// Cancels a tagged statement still running when its future is dropped: sqlx would
/// otherwise let it run to the end for nobody, holding a connection and locks.
struct CancelOnDrop {
    db: DatabaseConnection,
    dialect: Dialect,
    tag: Option<String>,
}

impl CancelOnDrop {
    fn disarm(mut self) {
        self.tag = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(tag) = self.tag.take() else { return };
        let Some(stmt) = self.dialect.cancel_statement(&tag) else {
            return;
        };
        let db = self.db.clone();
        // Drop may run outside a runtime (shutdown): then there is nothing to cancel from.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                use sea_orm::ConnectionTrait;
                match db.execute_raw(stmt).await {
                    Ok(_) => tracing::info!(tag = %tag, "cancelled an abandoned statement"),
                    Err(e) => {
                        tracing::warn!(error = %e, "cancelling an abandoned statement failed")
                    }
                }
            });
        }
    }
}

/// Limits the report queries enforce on their arguments.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_buckets: usize,
    pub max_page_size: usize,
}

/// Entry point to every report; cheap to clone.
#[derive(Clone)]
pub struct Analytics {
    db: DatabaseConnection,
    dialect: Dialect,
    limits: Limits,
    /// `None` when caching is off (a zero freshness bound).
    cache: Option<Arc<ReportCache>>,
    /// Users by id, under the same freshness bound.
    user_cache: Option<moka::future::Cache<i32, entity::users::Model>>,
}

impl Analytics {
    /// `refresh_failures` counts background refreshes of the report cache that failed.
    pub fn new(
        db: DatabaseConnection,
        limits: Limits,
        cache: CachePolicy,
        refresh_failures: prometheus::IntCounter,
    ) -> Self {
        let dialect = Dialect::of(&db);
        let user_cache = (cache.ttl > Duration::ZERO).then(|| cache::user_cache(&cache));
        let cache = (cache.ttl > Duration::ZERO)
            .then(|| Arc::new(ReportCache::new(cache, refresh_failures)));
        Self {
            db,
            dialect,
            limits,
            cache,
            user_cache,
        }
    }

    /// `fetch`'s answer through the report cache (or straight, when it is off).
    async fn cached<F, Fut>(&self, key: Key, fetch: F) -> Result<Cached<Value>>
    where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        match &self.cache {
            Some(cache) => cache.get(key, fetch).await,
            None => Ok(Cached {
                value: fetch().await?,
                age: Duration::ZERO,
                source: Source::Miss,
            }),
        }
    }

    /// The report cache, `None` when it is off (for its figures).
    pub fn report_cache(&self) -> Option<&ReportCache> {
        self.cache.as_deref()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs a statement labelled `name` in `db_query_duration_seconds`; if the
    /// caller goes away first (client gone, request timeout), the statement is cancelled.
    async fn all(
        &self,
        name: &'static str,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>> {
        use sea_orm::ConnectionTrait;
        let (stmt, guard) = self.cancellable(stmt);
        let rows = crate::db::named(name, self.db.query_all_raw(stmt)).await;
        guard.disarm();
        Ok(rows?)
    }

    async fn one(
        &self,
        name: &'static str,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>> {
        use sea_orm::ConnectionTrait;
        let (stmt, guard) = self.cancellable(stmt);
        let row = crate::db::named(name, self.db.query_one_raw(stmt)).await;
        guard.disarm();
        Ok(row?)
    }

    /// Tags the statement so it can be found in `pg_stat_activity` if it is abandoned.
    fn cancellable(&self, mut stmt: sea_orm::Statement) -> (sea_orm::Statement, CancelOnDrop) {
        let tag = self.dialect.cancel_tag();
        if let Some(tag) = &tag {
            stmt.sql = format!("{tag} {}", stmt.sql);
        }
        let guard = CancelOnDrop {
            db: self.db.clone(),
            dialect: self.dialect,
            tag,
        };
        (stmt, guard)
    }

    /// The legacy readiness check: a trivial read on `tokens`.
    pub async fn ping(&self) -> Result<()> {
        self.one(
            "ping",
            sea_orm::Statement::from_string(self.dialect.backend(), "SELECT 1 FROM tokens LIMIT 1"),
        )
        .await?;
        Ok(())
    }
}
