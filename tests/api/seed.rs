//! The demo seeder: deterministic, shaped like the legacy seed, refusing non-empty databases.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use coworking_gateway::seed::{SeedError, SeedPlan, seed};
use entity::{tokens, users};
use rstest::rstest;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder, Statement};
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, TestApp, unavailable};

async fn rows(app: &TestApp) -> (Vec<users::Model>, Vec<tokens::Model>) {
    rows_of(&app.db).await
}

async fn rows_of(db: &DatabaseConnection) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let u = users::Entity::find()
        .order_by_asc(users::Column::Id)
        .all(db)
        .await
        .expect("users");
    let t = tokens::Entity::find()
        .order_by_asc(tokens::Column::Id)
        .all(db)
        .await
        .expect("tokens");
    (u, t)
}

const PLAN: SeedPlan = SeedPlan {
    users: 300,
    tokens: 1_500,
    seed: 7,
    append: false,
    days: 7,
};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn same_seed_gives_the_same_rows_and_another_seed_does_not(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let a = TestApp::spawn(backend).await;
    let b = TestApp::spawn(backend).await;
    let c = TestApp::spawn(backend).await;
    seed(&a.db, PLAN, |_, _| {}).await.expect("seed a");
    seed(&b.db, PLAN, |_, _| {}).await.expect("seed b");
    seed(&c.db, SeedPlan { seed: 8, ..PLAN }, |_, _| {})
        .await
        .expect("seed c");
    let (ra, rb, rc) = (rows(&a).await, rows(&b).await, rows(&c).await);
    assert_eq!((ra.0.len(), ra.1.len()), (300, 1_500), "{backend:?}");
    assert_eq!(ra, rb, "{backend:?}: same seed, different rows");
    assert_ne!(ra.1, rc.1, "{backend:?}: another seed gave the same tokens");
}

/// Both backends compute the same pure functions of (row, seed).
#[tokio::test]
async fn sqlite_and_postgresql_seed_the_same_rows() {
    if unavailable(Backend::Postgres) {
        return;
    }
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    let pg = TestApp::spawn(Backend::Postgres).await;
    seed(&sqlite.db, PLAN, |_, _| {})
        .await
        .expect("seed sqlite");
    seed(&pg.db, PLAN, |_, _| {}).await.expect("seed postgres");
    assert_eq!(
        rows(&sqlite).await,
        rows(&pg).await,
        "SQLite and PostgreSQL seeds differ"
    );
}

/// The wide offsets of a long span are the same pure functions on both backends too.
#[tokio::test]
async fn sqlite_and_postgresql_seed_the_same_rows_over_three_years() {
    if unavailable(Backend::Postgres) {
        return;
    }
    let sqlite = TestApp::spawn(Backend::Sqlite).await;
    let pg = TestApp::spawn(Backend::Postgres).await;
    let plan = SeedPlan { days: 1095, ..PLAN };
    seed(&sqlite.db, plan, |_, _| {})
        .await
        .expect("seed sqlite");
    seed(&pg.db, plan, |_, _| {}).await.expect("seed postgres");
    let (lite, postgres) = (rows(&sqlite).await, rows(&pg).await);
    assert_eq!(lite, postgres, "SQLite and PostgreSQL seeds differ");
    assert!(
        lite.1
            .iter()
            .any(|t| t.created_at.date() < NaiveDate::from_ymd_opt(2021, 1, 1).expect("date")),
        "no token before 2021 over three years"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn seeded_data_is_shaped_like_the_legacy_seed(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    seed(
        &app.db,
        SeedPlan {
            users: 1_000,
            tokens: 2_500,
            seed: 42,
            append: false,
            days: 7,
        },
        |_, _| {},
    )
    .await
    .expect("seed");
    let (users, tokens) = rows(&app).await;
    let used = tokens.iter().filter(|t| t.used_at.is_some()).count();
    assert!(
        (1_100..=1_400).contains(&used),
        "{backend:?}: {used} of 2500 used, expected about half"
    );
    let week_start = NaiveDate::from_ymd_opt(2023, 2, 7)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    for t in &tokens {
        assert!(
            t.created_at >= week_start && t.created_at < week_start + Duration::days(7),
            "{t:?}"
        );
        if let Some(used) = t.used_at {
            let gap = used - t.created_at;
            assert!(
                gap >= Duration::minutes(1) && gap <= Duration::minutes(15),
                "{backend:?}: used_at {gap:?} after created_at"
            );
        }
        assert_eq!(t.token.len(), 6);
        assert!(t.token.chars().all(|c| c.is_ascii_digit()));
        assert!(users.iter().any(|u| u.id == t.user_id));
    }
    let joined_min = users.iter().map(|u| u.joined_at).min().expect("users");
    let joined_max = users.iter().map(|u| u.joined_at).max().expect("users");
    assert!(
        joined_max - joined_min > Duration::days(50) && joined_max < week_start + Duration::days(7),
        "{joined_min} .. {joined_max}"
    );
    let days: std::collections::BTreeSet<_> = tokens.iter().map(|t| t.created_at.date()).collect();
    assert_eq!(days.len(), 7, "{backend:?}: tokens over a week");
    assert!(
        tokens
            .iter()
            .any(|t| t.created_at.and_utc().timestamp_subsec_micros() != 0),
        "microsecond timestamps"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn seeding_a_non_empty_database_is_refused_unless_appending(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    seed(&app.db, PLAN, |_, _| {}).await.expect("first seed");
    let before = rows(&app).await;
    let refused = seed(&app.db, PLAN, |_, _| {}).await;
    assert!(
        matches!(
            refused,
            Err(SeedError::NotEmpty {
                users: 300,
                tokens: 1_500
            })
        ),
        "{backend:?}: {refused:?}"
    );
    assert!(
        refused
            .err()
            .map(|e| e.to_string())
            .is_some_and(|m| m.contains("--append"))
    );
    assert_eq!(
        rows(&app).await,
        before,
        "{backend:?}: a refused seed wrote rows"
    );
    seed(
        &app.db,
        SeedPlan {
            append: true,
            users: 10,
            tokens: 20,
            ..PLAN
        },
        |_, _| {},
    )
    .await
    .expect("append");
    let after = rows(&app).await;
    assert_eq!((after.0.len(), after.1.len()), (310, 1_520));
}

#[tokio::test]
async fn seed_command_reports_progress_and_refuses_a_second_run() {
    let dir = std::env::temp_dir().join(format!("gw-seed-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("demo.db");
    let run = || {
        crate::helpers::gateway_command()
            .env("SQLITE_PATH", &path)
            .args(["seed", "--users", "50", "--tokens", "120", "--seed", "3"])
            .output()
            .expect("run seed")
    };
    let first = run();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(
        stderr.contains("120/120 tokens"),
        "no progress line: {stderr}"
    );
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("--append"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// SHA-256 of the demo rows as the seeder wrote them before `--days` existed (computed from
/// the SQLite file the earlier binary's `seed` wrote, with the same line format as below).
const DEMO_ROWS_SHA256: &str = "c73ebcdd9191520e15b1763e3959da5ce25db07214c9d9f968918ecebf14f306";

fn rows_digest((users, tokens): &(Vec<users::Model>, Vec<tokens::Model>)) -> String {
    const TS: &str = "%Y-%m-%d %H:%M:%S%.6f";
    let mut hash = Sha256::new();
    for u in users {
        hash.update(format!(
            "u|{}|{}|{}|{}|{}\n",
            u.id,
            u.first_name,
            u.last_name,
            u.joined_at.format(TS),
            u.is_active
        ));
    }
    for t in tokens {
        let used = t
            .used_at
            .map_or("-".to_owned(), |u| u.format(TS).to_string());
        hash.update(format!(
            "t|{}|{}|{}|{}|{used}\n",
            t.id,
            t.user_id,
            t.token,
            t.created_at.format(TS)
        ));
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `--days` changed nothing in the demo data, on either backend.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_demo_plan_writes_the_same_rows_as_before_days_existed(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    seed(&app.db, SeedPlan::DEMO, |_, _| {})
        .await
        .expect("seed");
    assert_eq!(
        rows_digest(&rows(&app).await),
        DEMO_ROWS_SHA256,
        "{backend:?}: the demo rows changed"
    );
}

fn seed_file(path: &std::path::Path, days: Option<&str>) -> std::process::Output {
    let mut cmd = crate::helpers::gateway_command();
    cmd.env("SQLITE_PATH", path).arg("seed");
    if let Some(days) = days {
        cmd.args(["--days", days]);
    }
    cmd.output().expect("run seed")
}

async fn file_rows(path: &std::path::Path) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let db = Database::connect(format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("open the seeded file");
    rows_of(&db).await
}

#[tokio::test]
async fn seed_without_days_writes_the_rows_of_days_7() {
    let dir = std::env::temp_dir().join(format!("gw-seed-days-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (default, seven, eight) = (dir.join("default.db"), dir.join("7.db"), dir.join("8.db"));
    for (path, days) in [(&default, None), (&seven, Some("7")), (&eight, Some("8"))] {
        let out = seed_file(path, days);
        assert!(
            out.status.success(),
            "{days:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (a, b, c) = (
        file_rows(&default).await,
        file_rows(&seven).await,
        file_rows(&eight).await,
    );
    assert_eq!((a.0.len(), a.1.len()), (1_000, 2_500));
    assert_eq!(a, b, "seed and seed --days 7 differ");
    assert_eq!(rows_digest(&a), DEMO_ROWS_SHA256);
    assert_ne!(a.1, c.1, "--days 8 wrote the demo's tokens");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_days_exit_2_with_one_line_naming_days() {
    for bad in ["0", "36501", "seven", "", "1.5", "-3"] {
        let out = crate::helpers::gateway_command()
            .env("SQLITE_PATH", "/nonexistent/never-written.db")
            .args(["seed", &format!("--days={bad}")])
            .output()
            .expect("run seed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--days={bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "--days={bad}: {stderr}");
        assert!(
            stderr.starts_with("error: invalid --days: ") && stderr.contains("from 1 to 36500"),
            "--days={bad}: {stderr}"
        );
    }
}

async fn plain_i64(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row")
        .try_get_by_index(0)
        .expect("an integer")
}

/// Rows `(k text, a bigint, b bigint)` of a plain query, keyed by `k`.
async fn pairs(db: &DatabaseConnection, sql: &str) -> BTreeMap<String, (i64, i64)> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .iter()
        .map(|r| {
            (
                r.try_get::<String>("", "k").expect("k"),
                (
                    r.try_get::<i64>("", "a").expect("a"),
                    r.try_get::<i64>("", "b").expect("b"),
                ),
            )
        })
        .collect()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

/// Users joined before their first token, whatever the span (checked with plain SQL).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_user_joined_before_their_first_token(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    for (days, first_day) in [(1095, day(2020, 2, 15)), (1, day(2023, 2, 13))] {
        let app = TestApp::spawn(backend).await;
        let plan = SeedPlan {
            users: 400,
            tokens: 4_000,
            seed: 5,
            append: false,
            days,
        };
        seed(&app.db, plan, |_, _| {}).await.expect("seed");
        let early = plain_i64(
            &app.db,
            "SELECT COUNT(*) FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.created_at < u.joined_at",
        )
        .await;
        let users_with_tokens =
            plain_i64(&app.db, "SELECT COUNT(DISTINCT user_id) FROM tokens").await;
        assert_eq!(early, 0, "{backend:?} --days {days}: tokens before joining");
        assert!(users_with_tokens > 300, "{backend:?}: {users_with_tokens}");
        let (users, tokens) = rows(&app).await;
        let start = first_day.and_hms_opt(0, 0, 0).expect("midnight");
        let end = day(2023, 2, 14).and_hms_opt(0, 0, 0).expect("midnight");
        assert!(
            tokens
                .iter()
                .all(|t| t.created_at >= start && t.created_at < end),
            "{backend:?} --days {days}: a token outside the span"
        );
        assert!(
            users
                .iter()
                .all(|u| u.joined_at >= start - Duration::days(60) && u.joined_at < start),
            "{backend:?} --days {days}: a join outside the 60 days before the span"
        );
        if days == 1095 {
            let years: std::collections::BTreeSet<_> = tokens
                .iter()
                .map(|t| t.created_at.date().format("%Y").to_string())
                .collect();
            assert_eq!(years.len(), 4, "{backend:?}: {years:?}");
        }
    }
}

/// Tokens over 30 days: every day has some, none lies outside, and the rollups the seed
/// folded, and the reports that read them, agree with a plain-SQL GROUP BY of the raw rows.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn thirty_days_of_tokens_fill_every_day_and_the_reports_match_raw_sql(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let plan = SeedPlan {
        users: 500,
        tokens: 3_000,
        seed: 11,
        append: false,
        days: 30,
    };
    seed(&app.db, plan, |_, _| {}).await.expect("seed");
    let raw = pairs(
        &app.db,
        "SELECT SUBSTR(CAST(created_at AS TEXT), 1, 10) AS k, COUNT(*) AS a, COUNT(used_at) AS b \
         FROM tokens GROUP BY SUBSTR(CAST(created_at AS TEXT), 1, 10)",
    )
    .await;
    let expected_days: Vec<String> = (0..30)
        .map(|i| {
            (day(2023, 1, 15) + Duration::days(i))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    assert_eq!(
        raw.keys().cloned().collect::<Vec<_>>(),
        expected_days,
        "{backend:?}: the days with tokens"
    );
    assert_eq!(raw.values().map(|v| v.0).sum::<i64>(), 3_000);

    // The seed folded what the triggers logged: nothing waits, and the rollup tables as they
    // stand (before any report folds) hold the GROUP BY of the raw rows.
    let waiting = plain_i64(
        &app.db,
        "SELECT (SELECT COUNT(*) FROM gw_rollup_dirty_slots) + (SELECT COUNT(*) FROM gw_rollup_dirty_users)",
    )
    .await;
    assert_eq!(waiting, 0, "{backend:?}: log rows left after seeding");
    let slots = pairs(
        &app.db,
        "SELECT SUBSTR(CAST(slot AS TEXT), 1, 10) AS k, CAST(SUM(issued) AS BIGINT) AS a, \
         CAST(SUM(used) AS BIGINT) AS b FROM gw_usage_slots GROUP BY SUBSTR(CAST(slot AS TEXT), 1, 10)",
    )
    .await;
    assert_eq!(slots, raw, "{backend:?}: gw_usage_slots by day vs GROUP BY");
    let per_user = pairs(
        &app.db,
        "SELECT CAST(user_id AS TEXT) AS k, CAST(tokens AS BIGINT) AS a, CAST(used AS BIGINT) AS b \
         FROM gw_user_visits",
    )
    .await;
    let raw_per_user = pairs(
        &app.db,
        "SELECT CAST(user_id AS TEXT) AS k, COUNT(*) AS a, COUNT(used_at) AS b FROM tokens GROUP BY user_id",
    )
    .await;
    assert_eq!(
        per_user, raw_per_user,
        "{backend:?}: gw_user_visits vs GROUP BY"
    );

    let daily: BTreeMap<String, i64> = app
        .get("/api/reports/daily_usage")
        .await
        .json()
        .await
        .expect("daily_usage JSON");
    let raw_used: BTreeMap<String, i64> = raw
        .iter()
        .filter(|(_, v)| v.1 > 0)
        .map(|(d, v)| (d.clone(), v.1))
        .collect();
    assert_eq!(daily, raw_used, "{backend:?}: daily_usage vs GROUP BY");

    let data = app
        .graphql_ok(
            "{ usageByDay(from: \"2023-01-15\", to: \"2023-02-13\", granularity: DAY) \
             { date visits tokensIssued } }",
            serde_json::json!({}),
        )
        .await;
    let buckets: BTreeMap<String, (i64, i64)> = data["usageByDay"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| {
            (
                b["date"].as_str().expect("date").to_owned(),
                (
                    b["tokensIssued"].as_i64().expect("tokensIssued"),
                    b["visits"].as_i64().expect("visits"),
                ),
            )
        })
        .collect();
    assert_eq!(buckets, raw, "{backend:?}: usageByDay vs GROUP BY");
}
