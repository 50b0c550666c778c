//! The legacy schema, created only where it is absent so an existing legacy database is adopted as is.
//!
//! Written as plain DDL rather than the schema builder because the legacy
//! constraint names (`users_pk`, `tokens_pk`, `tokens_users_id_fk`) must be
//! reproduced exactly, and `IF NOT EXISTS` keeps rows and objects untouched.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id         SERIAL NOT NULL CONSTRAINT users_pk PRIMARY KEY,
        first_name VARCHAR(50) NOT NULL,
        last_name  VARCHAR(50) NOT NULL,
        joined_at  TIMESTAMP NOT NULL,
        is_active  BOOLEAN DEFAULT true NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS users_is_active_index ON users (is_active)",
    "CREATE TABLE IF NOT EXISTS tokens (
        id         SERIAL NOT NULL CONSTRAINT tokens_pk PRIMARY KEY,
        user_id    INTEGER NOT NULL CONSTRAINT tokens_users_id_fk REFERENCES users,
        token      VARCHAR(6) NOT NULL,
        created_at TIMESTAMP DEFAULT now() NOT NULL,
        used_at    TIMESTAMP
    )",
    "CREATE INDEX IF NOT EXISTS tokens_user_id_token_used_at_index ON tokens (user_id, token, used_at)",
];

// SQLite has no SERIAL and no named primary keys that matter; AUTOINCREMENT
// keeps ids from being reused, as a PostgreSQL sequence does.
const SQLITE_UP: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id         INTEGER NOT NULL CONSTRAINT users_pk PRIMARY KEY AUTOINCREMENT,
        first_name VARCHAR(50) NOT NULL,
        last_name  VARCHAR(50) NOT NULL,
        joined_at  TIMESTAMP NOT NULL,
        is_active  BOOLEAN DEFAULT true NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS users_is_active_index ON users (is_active)",
    "CREATE TABLE IF NOT EXISTS tokens (
        id         INTEGER NOT NULL CONSTRAINT tokens_pk PRIMARY KEY AUTOINCREMENT,
        user_id    INTEGER NOT NULL CONSTRAINT tokens_users_id_fk REFERENCES users,
        token      VARCHAR(6) NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL,
        used_at    TIMESTAMP
    )",
    "CREATE INDEX IF NOT EXISTS tokens_user_id_token_used_at_index ON tokens (user_id, token, used_at)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DbBackend::Sqlite => SQLITE_UP,
            _ => POSTGRES_UP,
        };
        let db = manager.get_connection();
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The legacy tables hold the business's data and predate the gateway:
        // rolling the gateway back must never drop them.
        Ok(())
    }
}
