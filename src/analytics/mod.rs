//! The report queries over `users` and `tokens`: plain Rust types in and out, no HTTP or GraphQL here.

pub mod cache;
pub mod dialect;
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

pub use dialect::Dialect;

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
}

impl Analytics {
    pub fn new(db: DatabaseConnection, limits: Limits, cache: CachePolicy) -> Self {
        let dialect = Dialect::of(&db);
        let cache = (cache.ttl > Duration::ZERO).then(|| Arc::new(ReportCache::new(cache)));
        Self {
            db,
            dialect,
            limits,
            cache,
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

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs a statement labelled `name` in `db_query_duration_seconds`.
    async fn all(
        &self,
        name: &'static str,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>> {
        use sea_orm::ConnectionTrait;
        Ok(crate::db::named(name, self.db.query_all_raw(stmt)).await?)
    }

    async fn one(
        &self,
        name: &'static str,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>> {
        use sea_orm::ConnectionTrait;
        Ok(crate::db::named(name, self.db.query_one_raw(stmt)).await?)
    }

    /// The legacy readiness check: a trivial read on `tokens`.
    pub async fn ping(&self) -> Result<()> {
        self.one(
            "ping",
            self.dialect
                .statement("SELECT 1 FROM tokens LIMIT 1", vec![]),
        )
        .await?;
        Ok(())
    }
}
