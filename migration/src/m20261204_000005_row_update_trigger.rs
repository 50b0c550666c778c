//! The tokens `UPDATE` trigger on PostgreSQL as a row trigger with a `WHEN` clause, instead
//! of the statement trigger with transition tables of migration 3. The legacy writer's
//! second write sets `used_at` of one token; for it the statement trigger built two
//! transition tables and ran two `EXCEPT ALL` queries (+35 % on that write in the writer
//! benchmark, over the 25 % the rollups may cost). The row trigger is skipped in C when the
//! row's `user_id`, `created_at` and `used_at` are unchanged, and otherwise appends the
//! row's old slot and user, and its new ones when they differ: the same keys as before.
//! The cost moves to bulk updates (a few log rows per changed row instead of one per
//! distinct key), which the fold handles as a rebuild past its log limit.
//!
//! SQLite's triggers are row triggers already: nothing changes there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE OR REPLACE FUNCTION gw_rollup_token_row_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO gw_rollup_dirty_slots (slot) VALUES (gw_slot(OLD.created_at));
        IF gw_slot(NEW.created_at) IS DISTINCT FROM gw_slot(OLD.created_at) THEN
            INSERT INTO gw_rollup_dirty_slots (slot) VALUES (gw_slot(NEW.created_at));
        END IF;
        INSERT INTO gw_rollup_dirty_users (user_id) VALUES (OLD.user_id);
        IF NEW.user_id IS DISTINCT FROM OLD.user_id THEN
            INSERT INTO gw_rollup_dirty_users (user_id) VALUES (NEW.user_id);
        END IF;
        RETURN NULL;
    END $$",
    // Dropped and created in this migration's transaction: no write falls between.
    "DROP TRIGGER IF EXISTS gw_rollup_tokens_update ON tokens",
    "CREATE TRIGGER gw_rollup_tokens_update AFTER UPDATE ON tokens
        FOR EACH ROW
        WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id
              OR OLD.created_at IS DISTINCT FROM NEW.created_at
              OR OLD.used_at IS DISTINCT FROM NEW.used_at)
        EXECUTE FUNCTION gw_rollup_token_row_updated()",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS gw_rollup_tokens_update ON tokens",
    "CREATE TRIGGER gw_rollup_tokens_update AFTER UPDATE ON tokens
        REFERENCING OLD TABLE AS gw_old NEW TABLE AS gw_new
        FOR EACH STATEMENT EXECUTE FUNCTION gw_rollup_tokens_updated()",
    "DROP FUNCTION IF EXISTS gw_rollup_token_row_updated()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_DOWN).await
    }
}

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Sqlite {
        return Ok(());
    }
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}
