//! Database pool and migrations, configured once from `Config`; each statement is timed in the metrics.
//! `dialect` holds everything that differs between the backends' SQL.

pub mod dialect;
pub mod rollup;

use std::sync::Arc;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::Config;
use crate::metrics::Metrics;

tokio::task_local! {
    static QUERY_NAME: &'static str;
}

/// Runs `fut` with its statements labelled `name` in `db_query_duration_seconds`.
/// (The pool's callback runs in the task that issued the statement.)
pub async fn named<F: std::future::Future>(name: &'static str, fut: F) -> F::Output {
    QUERY_NAME.scope(name, fut).await
}

fn current_query() -> &'static str {
    QUERY_NAME.try_with(|name| *name).unwrap_or("other")
}

/// Pool connections (size, idle, max) for `db_pool_connections`.
pub fn pool_state(db: &DatabaseConnection) -> (u32, u32, u32) {
    let (size, idle, max) = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    };
    (size, u32::try_from(idle).unwrap_or(u32::MAX), max)
}

/// Opens the pool lazily: the gateway starts (and answers liveness) while
/// the database is still down, and readiness tells the truth about it.
pub async fn connect(
    config: &Config,
    metrics: Option<Arc<Metrics>>,
) -> Result<DatabaseConnection, DbErr> {
    let url = config.database.url();
    if config.database.is_sqlite() && !url.contains(":memory:") {
        prepare_sqlite_file(&url).await?;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(
            if config.database.is_sqlite() && config.database.url().contains(":memory:") {
                1
            } else {
                config.db_pool_max
            },
        )
        // One connection kept open (and opened in the background at start, the pool
        // being lazy): a TLS handshake costs ~0.1 s, which readiness and the first
        // request should not pay.
        .min_connections(1)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_timeout(config.db_acquire_timeout)
        .statement_timeout(config.db_statement_timeout)
        .sqlx_logging(false)
        .connect_lazy(!config.database.is_sqlite());
    if config.database.is_sqlite() {
        // In-memory databases vanish with their last connection: never let it go.
        options
            .idle_timeout(None::<std::time::Duration>)
            .max_lifetime(None::<std::time::Duration>);
    }
    // WAL lets readers run while the demo seeder writes (ignored by :memory:).
    options.map_sqlx_sqlite_opts(|o| {
        o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
            .foreign_keys(true)
    });
    // Named so the cancel of an abandoned statement (analytics::CancelOnDrop) and
    // operators' pg_stat_activity queries can find the gateway's sessions; the
    // check interval makes PostgreSQL stop the work of a client that vanished.
    options
        .set_application_name("coworking-gateway")
        .map_sqlx_postgres_opts(|o| {
            // No JIT: the rollup reads are small, but a plan that *might* read many raw
            // rows (a sliver join estimated at millions) costs ~200 ms of compiling.
            o.options([("client_connection_check_interval", "1000"), ("jit", "off")])
        });
    let mut db = Database::connect(options).await?;
    // Every statement the pool runs, failed or not, is one observation.
    if let Some(metrics) = metrics {
        db.set_metric_callback(move |info| {
            metrics
                .db_histogram(current_query())
                .observe(info.elapsed.as_secs_f64());
        });
    }
    Ok(db)
}

/// Creates the SQLite file if needed and switches it to WAL on one connection, before any
/// pool exists: WAL is a property of the file, and several fresh connections racing to set it
/// on a new file can fail with "database is locked" instead of waiting.
async fn prepare_sqlite_file(url: &str) -> Result<(), DbErr> {
    use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    use std::str::FromStr as _;
    let conn_err =
        |e: sea_orm::sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::Internal(e.to_string()));
    let conn = SqliteConnectOptions::from_str(url)
        .map_err(conn_err)?
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .map_err(conn_err)?;
    conn.close().await.map_err(conn_err)
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}
