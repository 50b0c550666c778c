//! Schema migrations: adopt (or create) the legacy schema, then add what the gateway needs.

pub use sea_orm_migration::prelude::*;

mod m20230207_000001_legacy_schema;
mod m20261123_000002_analytics_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20230207_000001_legacy_schema::Migration),
            Box::new(m20261123_000002_analytics_indexes::Migration),
        ]
    }
}
