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

/// Rows of a catalogue query, each row's columns joined with ` | `, sorted.
async fn catalogue(url: &str, sql: &str) -> Vec<String> {
    let db = Database::connect(url).await.expect("connect");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "line").expect("line"))
        .collect();
    out.sort();
    db.close().await.ok();
    out
}

const LEGACY_COLUMNS: &str = "SELECT concat_ws(' | ', table_name, ordinal_position, column_name, data_type, \
    character_maximum_length, is_nullable, column_default) AS line \
    FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN ('users', 'tokens')";
const LEGACY_CONSTRAINTS: &str = "SELECT concat_ws(' | ', conrelid::regclass::text, conname, contype, \
    pg_get_constraintdef(oid)) AS line FROM pg_constraint WHERE conrelid IN ('users'::regclass, 'tokens'::regclass)";
const LEGACY_INDEXES: &str = "SELECT concat_ws(' | ', tablename, indexname, indexdef) AS line \
    FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ('users', 'tokens')";
const TRIGGERS: &str = "SELECT concat_ws(' | ', tgname, tgrelid::regclass::text, \
    substring(pg_get_triggerdef(oid) from 'AFTER (\\w+) ON')) AS line \
    FROM pg_trigger WHERE NOT tgisinternal AND tgrelid IN ('users'::regclass, 'tokens'::regclass)";

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
    let columns = catalogue(&pg.url, LEGACY_COLUMNS).await;
    let constraints = catalogue(&pg.url, LEGACY_CONSTRAINTS).await;
    let indexes = catalogue(&pg.url, LEGACY_INDEXES).await;
    assert_eq!(
        (columns.len(), constraints.len(), indexes.len()),
        (10, 3, 4)
    );
    assert!(catalogue(&pg.url, TRIGGERS).await.is_empty());
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
        assert_eq!(
            catalogue(&pg.url, LEGACY_COLUMNS).await,
            columns,
            "run {run}: legacy columns"
        );
        assert_eq!(
            catalogue(&pg.url, LEGACY_CONSTRAINTS).await,
            constraints,
            "run {run}: legacy constraints"
        );
        // The legacy indexes, plus the gateway's one covering index.
        let mut want = indexes.clone();
        want.push(
            "tokens | tokens_created_at_used_at_user_id_index | CREATE INDEX tokens_created_at_used_at_user_id_index ON public.tokens USING btree (created_at, used_at, user_id)"
                .to_owned(),
        );
        want.sort();
        assert_eq!(
            catalogue(&pg.url, LEGACY_INDEXES).await,
            want,
            "run {run}: indexes"
        );
        // Only the rollups' triggers are added to the legacy tables.
        assert_eq!(
            catalogue(&pg.url, TRIGGERS).await,
            [
                "gw_rollup_tokens_delete | tokens | DELETE",
                "gw_rollup_tokens_insert | tokens | INSERT",
                "gw_rollup_tokens_truncate | tokens | TRUNCATE",
                "gw_rollup_tokens_update | tokens | UPDATE",
                "gw_rollup_users_delete | users | DELETE",
                "gw_rollup_users_truncate | users | TRUNCATE",
                "gw_rollup_users_update | users | UPDATE",
            ],
            "run {run}: triggers"
        );
    }
    // The rollups built from the legacy rows equal a reference computed from them.
    let db = Database::connect(&pg.url).await.expect("connect");
    crate::rollups::assert_rollups_exact(&db, "the legacy database").await;
    db.close().await.ok();
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
    assert_eq!(applied, 5, "{backend:?}");
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
        5
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
