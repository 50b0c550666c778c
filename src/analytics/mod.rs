//! The report queries over `users` and `tokens`: plain Rust types in and out, no HTTP or GraphQL here.

pub mod cache;
pub mod error;
pub mod paging;
pub mod reports;
mod slots;
pub mod summary;
pub mod time;
pub mod usage;
pub mod users;
pub mod visits;

use std::future::Future;
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use cache::{CachePolicy, Cached, ENTRY_OVERHEAD, weight};
use reports::{Report, ReportCache};

use crate::db::dialect::Dialect;
use crate::metrics::RollupMetrics;

pub use error::{AnalyticsError, Result};

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

/// Users by id (`Analytics::users_by_ids`), fresh for the report bound, within
/// the users' share of the budget and ten times `CACHE_MAX_ENTRIES` entries.
fn user_cache(policy: &CachePolicy) -> moka::future::Cache<i32, entity::users::Model> {
    let (budget, max_entries) = (policy.budget().users, policy.max_entries.saturating_mul(10));
    moka::future::Cache::builder()
        .weigher(move |_: &i32, user: &entity::users::Model| {
            let bytes = size_of::<i32>()
                + size_of::<entity::users::Model>()
                + user.first_name.capacity()
                + user.last_name.capacity()
                + ENTRY_OVERHEAD;
            weight(bytes, budget, max_entries)
        })
        .max_capacity(budget)
        .time_to_live(policy.ttl)
        .build()
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
    rollup: Arc<Rollup>,
}

/// The rollups' read side: one fold at a time per process (others wait for it and then
/// fold what is left, usually nothing), and its figures.
struct Rollup {
    folding: tokio::sync::Mutex<()>,
    metrics: RollupMetrics,
}

impl Analytics {
    /// `counters` count the report cache's lookups and failed background refreshes.
    pub fn new(
        db: DatabaseConnection,
        limits: Limits,
        cache: CachePolicy,
        counters: cache::CacheCounters,
        rollup: RollupMetrics,
    ) -> Self {
        let dialect = Dialect::of(&db);
        let user_cache = (cache.ttl > Duration::ZERO).then(|| user_cache(&cache));
        let cache =
            (cache.ttl > Duration::ZERO).then(|| Arc::new(reports::report_cache(&cache, counters)));
        Self {
            db,
            dialect,
            limits,
            cache,
            user_cache,
            rollup: Arc::new(Rollup {
                folding: tokio::sync::Mutex::new(()),
                metrics: rollup,
            }),
        }
    }

    /// Folds the rollups' invalidation log, so that what they answer next includes every
    /// write committed before this call. Costs one read when nothing is waiting.
    pub async fn fold_rollups(&self) -> Result<()> {
        let _one_at_a_time = self.rollup.folding.lock().await;
        let started = std::time::Instant::now();
        // Cancelled like a report statement if the caller goes away (its log rows stay).
        let tag = self.dialect.cancel_tag();
        let guard = CancelOnDrop {
            db: self.db.clone(),
            dialect: self.dialect,
            tag: tag.clone(),
        };
        let fold = crate::db::rollup::fold_tagged(&self.db, tag.as_deref());
        let folded = crate::db::named("rollup_fold", fold).await;
        guard.disarm();
        let folded = folded?;
        if folded != crate::db::rollup::Folded::default() {
            let m = &self.rollup.metrics;
            m.fold_duration.observe(started.elapsed().as_secs_f64());
            m.folded_keys
                .with_label_values(&["slots"])
                .inc_by(folded.slots);
            m.folded_keys
                .with_label_values(&["users"])
                .inc_by(folded.users);
            tracing::debug!(
                slots = folded.slots,
                users = folded.users,
                "folded the rollup log"
            );
        }
        Ok(())
    }

    /// Counts a report bucket answered from raw rows (and says so in the log).
    fn raw_fallback(&self, reason: &'static str, buckets: usize, detail: &str) {
        self.rollup
            .metrics
            .raw_fallbacks
            .with_label_values(&[reason])
            .inc_by(buckets as u64);
        tracing::info!(
            reason,
            buckets,
            detail,
            "report buckets counted from raw rows, not the rollup"
        );
    }

    /// `fetch`'s answer through the report cache (or straight, when it is off).
    async fn cached<R, F, Fut>(&self, key: R::Key, fetch: F) -> Result<Cached<Arc<R>>>
    where
        R: Report,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
    {
        reports::cached(self.cache.as_deref(), key, fetch).await
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
