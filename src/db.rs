//! Database pool and migrations, configured once from `Config`; counts statements for tests and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::Config;

/// Statements the pool has run, by outcome.
#[derive(Debug, Default)]
pub struct DbStats {
    statements: AtomicU64,
    failures: AtomicU64,
}

impl DbStats {
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Opens the pool lazily: the gateway starts (and answers liveness) while
/// the database is still down, and readiness tells the truth about it.
pub async fn connect(config: &Config, stats: Arc<DbStats>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.database.url());
    options
        .max_connections(
            if config.database.is_sqlite() && config.database.url().contains(":memory:") {
                1
            } else {
                config.db_pool_max
            },
        )
        .min_connections(0)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_timeout(config.db_acquire_timeout)
        .statement_timeout(config.db_statement_timeout)
        .sqlx_logging(false)
        .connect_lazy(!config.database.is_sqlite());
    if config.database.is_sqlite() {
        // In-memory databases vanish with their last connection; keep one open.
        options
            .min_connections(1)
            .idle_timeout(None::<std::time::Duration>)
            .max_lifetime(None::<std::time::Duration>);
    }
    // WAL lets readers run while the demo seeder writes (ignored by :memory:).
    options.map_sqlx_sqlite_opts(|o| {
        o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .foreign_keys(true)
    });
    let mut db = Database::connect(options).await?;
    db.set_metric_callback(move |info| {
        stats.statements.fetch_add(1, Ordering::Relaxed);
        if info.failed {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
