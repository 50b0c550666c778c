//! Schema migrations: adopt (or create) the legacy schema, then add what the gateway needs.

pub use sea_orm_migration::prelude::*;

mod m20230207_000001_legacy_schema;
mod m20261123_000002_analytics_indexes;
mod m20261203_000003_rollups;
mod m20261203_000004_rollup_levels;
mod m20261204_000005_row_update_trigger;

/// The rollups' SQL that the gateway's fold, rebuild and verify share with their migration.
pub mod rollups {
    pub use super::m20261203_000003_rollups::{
        ROLLUP_LOCK, SQLITE_USER_VISITS_COLUMNS, create_statements, slots_from_raw,
        user_visits_from_raw,
    };
    pub use super::m20261203_000004_rollup_levels::rebuild_statements;
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20230207_000001_legacy_schema::Migration),
            Box::new(m20261123_000002_analytics_indexes::Migration),
            Box::new(m20261203_000003_rollups::Migration),
            Box::new(m20261203_000004_rollup_levels::Migration),
            Box::new(m20261204_000005_row_update_trigger::Migration),
        ]
    }
}
