//! The demo seeder: deterministic, shaped like the legacy seed, refusing non-empty databases.

use chrono::{Duration, NaiveDate};
use coworking_gateway::seed::{SeedError, SeedPlan, seed};
use entity::{tokens, users};
use rstest::rstest;
use sea_orm::{EntityTrait, QueryOrder};

use crate::helpers::{Backend, TestApp, unavailable};

async fn rows(app: &TestApp) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let u = users::Entity::find()
        .order_by_asc(users::Column::Id)
        .all(&app.db)
        .await
        .expect("users");
    let t = tokens::Entity::find()
        .order_by_asc(tokens::Column::Id)
        .all(&app.db)
        .await
        .expect("tokens");
    (u, t)
}

const PLAN: SeedPlan = SeedPlan {
    users: 300,
    tokens: 1_500,
    seed: 7,
    append: false,
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
