//! Coarser sums of the 15-minute slots, per UTC hour and per UTC day, so that a long range
//! reads about 24 rows a bucket instead of 96 (and the UTC daily report one row a day).
//! Kept by the same fold as the slots (`src/db/rollup.rs`): after it recomputes slots, it
//! recomputes their hours from the slots and their days from the hours. Additive: three
//! new tables, built here from the slots.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::m20261203_000003_rollups::build_statements;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_CREATE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS gw_usage_hours (
        hour   timestamp PRIMARY KEY,
        issued bigint NOT NULL,
        used   bigint NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS gw_usage_days (
        day    timestamp PRIMARY KEY,
        issued bigint NOT NULL,
        used   bigint NOT NULL
    )",
    // The slots one fold recomputed, for it to recompute their hours and days (folds run
    // one at a time, under the advisory lock; emptied before each fold commits).
    "CREATE UNLOGGED TABLE IF NOT EXISTS gw_rollup_folded_slots (slot timestamp NOT NULL)",
];

const POSTGRES_BUILD: &[&str] = &[
    "DELETE FROM gw_usage_hours",
    "DELETE FROM gw_usage_days",
    // In key order, as the slots (see their build).
    "INSERT INTO gw_usage_hours (hour, issued, used)
        SELECT date_trunc('hour', slot), SUM(issued), SUM(used) FROM gw_usage_slots GROUP BY 1 ORDER BY 1",
    "INSERT INTO gw_usage_days (day, issued, used)
        SELECT date_trunc('day', hour), SUM(issued), SUM(used) FROM gw_usage_hours GROUP BY 1 ORDER BY 1",
    "ANALYZE gw_usage_hours",
    "ANALYZE gw_usage_days",
];

const SQLITE_CREATE: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS gw_usage_hours (
        hour   TEXT NOT NULL PRIMARY KEY,
        issued BIGINT NOT NULL,
        used   BIGINT NOT NULL
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS gw_usage_days (
        day    TEXT NOT NULL PRIMARY KEY,
        issued BIGINT NOT NULL,
        used   BIGINT NOT NULL
    ) WITHOUT ROWID",
];

const SQLITE_BUILD: &[&str] = &[
    "DELETE FROM gw_usage_hours",
    "DELETE FROM gw_usage_days",
    "INSERT INTO gw_usage_hours (hour, issued, used)
        SELECT substr(slot, 1, 13) || ':00:00', SUM(issued), SUM(used) FROM gw_usage_slots GROUP BY 1",
    "INSERT INTO gw_usage_days (day, issued, used)
        SELECT substr(hour, 1, 10) || ' 00:00:00', SUM(issued), SUM(used) FROM gw_usage_hours GROUP BY 1",
];

fn level_statements(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Sqlite => SQLITE_BUILD,
        _ => POSTGRES_BUILD,
    }
}

/// Every statement that empties the log and rebuilds all rollups from the raw rows, in
/// order. On PostgreSQL they run in one transaction after `ROLLUP_LOCK` is taken.
pub fn rebuild_statements(backend: DbBackend) -> Vec<&'static str> {
    build_statements(backend)
        .iter()
        .chain(level_statements(backend))
        .copied()
        .collect()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let create = match backend {
            DbBackend::Sqlite => SQLITE_CREATE,
            _ => POSTGRES_CREATE,
        };
        let db = manager.get_connection();
        for sql in create.iter().chain(level_statements(backend)) {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "DROP TABLE IF EXISTS gw_usage_hours",
            "DROP TABLE IF EXISTS gw_usage_days",
            "DROP TABLE IF EXISTS gw_rollup_folded_slots",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
