//! Migrations: adopting a database made by the legacy scripts, and idempotence on both backends.

use rstest::rstest;
use sea_orm::{ConnectionTrait, Database};

use crate::helpers::{Backend, PgDatabase, TestApp, legacy_dir, pg_admin_url, unavailable};

/// Loads the legacy DDL and seed into a fresh PostgreSQL database, as the legacy scripts did.
pub async fn legacy_loaded_database() -> Option<PgDatabase> {
    pg_admin_url()?;
    let dir = legacy_dir()?;
    let pg = PgDatabase::create().await;
    let db = Database::connect(&pg.url).await.expect("connect");
    for file in [
        "1_create_tables.sql",
        "2_seed_users.sql",
        "3_seed_tokens.sql",
    ] {
        let sql = std::fs::read_to_string(dir.join("db").join(file)).expect("legacy sql");
        db.execute_unprepared(&sql)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    db.close().await.ok();
    Some(pg)
}

/// A fingerprint of every legacy row, computed by PostgreSQL itself.
async fn fingerprint(url: &str) -> (i64, i64, String) {
    let db = Database::connect(url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT (SELECT COUNT(*) FROM users) AS u, (SELECT COUNT(*) FROM tokens) AS t, \
             md5((SELECT string_agg(concat_ws(',', id, first_name, last_name, joined_at, is_active), ';' ORDER BY id) FROM users) || \
                 (SELECT string_agg(concat_ws(',', id, user_id, token, created_at, used_at), ';' ORDER BY id) FROM tokens)) AS h",
        ))
        .await
        .expect("query")
        .expect("row");
    let out = (
        row.try_get("", "u").expect("u"),
        row.try_get("", "t").expect("t"),
        row.try_get("", "h").expect("h"),
    );
    db.close().await.ok();
    out
}

#[tokio::test]
async fn migrate_adopts_a_legacy_database_twice_without_touching_rows() {
    let Some(pg) = legacy_loaded_database().await else {
        eprintln!(
            "NOTE: legacy adoption case not run (needs TEST_DATABASE_URL and ../shared/legacy)"
        );
        return;
    };
    let before = fingerprint(&pg.url).await;
    assert_eq!((before.0, before.1), (1_000, 2_500));
    let admin = url::Url::parse(&pg.url).expect("url");
    for run in 1..=2 {
        // Exactly how operators run it: the legacy variables, no DATABASE_URL.
        let out = crate::helpers::gateway_command()
            .env("DB_USERNAME", admin.username())
            .env("DB_HOST", admin.host_str().expect("host"))
            .env("DB_PORT", admin.port().unwrap_or(5432).to_string())
            .env("DB_NAME", &pg.name)
            .env("LOG_FORMAT", "json")
            .arg("migrate")
            .output()
            .expect("run migrate");
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fingerprint(&pg.url).await,
            before,
            "run {run} changed legacy rows"
        );
    }
    // The gateway's own index exists next to the legacy ones.
    let db = Database::connect(&pg.url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT string_agg(indexname, ',' ORDER BY indexname) AS names FROM pg_indexes WHERE tablename IN ('users', 'tokens')",
        ))
        .await
        .expect("query")
        .expect("row");
    let names: String = row.try_get("", "names").expect("names");
    assert_eq!(
        names,
        "tokens_created_at_used_at_user_id_index,tokens_pk,tokens_user_id_token_used_at_index,users_is_active_index,users_pk"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn migrations_create_the_legacy_schema_and_rerun_as_a_no_op(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let applied = app.query_i64("SELECT COUNT(*) FROM seaql_migrations").await;
    assert_eq!(applied, 3, "{backend:?}");
    app.insert(
        &[crate::reference::user(1, "2023-01-01 00:00:00", true)],
        &[crate::reference::token(1, 1, "2023-01-02 10:00:00", None)],
    )
    .await;
    coworking_gateway::db::migrate(&app.db)
        .await
        .expect("second run");
    assert_eq!(
        app.query_i64("SELECT COUNT(*) FROM seaql_migrations").await,
        3
    );
    assert_eq!(app.query_i64("SELECT COUNT(*) FROM tokens").await, 1);
    // The legacy foreign key holds on both backends.
    let orphan = app.db.execute_unprepared("INSERT INTO tokens (user_id, token, created_at) VALUES (999, '000000', '2023-01-01 00:00:00')").await;
    assert!(orphan.is_err(), "{backend:?}: token without user accepted");
    if backend == Backend::Postgres {
        let pk = app.query_i64("SELECT COUNT(*) FROM pg_constraint WHERE conname IN ('users_pk', 'tokens_pk', 'tokens_users_id_fk')").await;
        assert_eq!(pk, 3);
    }
}
