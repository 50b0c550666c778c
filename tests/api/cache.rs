//! The report cache: freshness bound, single flight, equal answers, stale answers in an outage.

use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, PgDatabase, Proxy, TestApp, pg_admin_url, unavailable};
use crate::reference::{legacy_daily_usage, random_dataset, token, user};

const VISITS: &str = "{ visitsPerUser(first: 1000, orderBy: VISITS_DESC) { totalCount edges { node { userId visits checkIns lastVisitAt } } } }";
const USAGE: &str = r#"{ usageByDay(granularity: DAY, timezone: "Europe/Berlin") { date visits tokensIssued uniqueUsers } }"#;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_newly_used_token_appears_within_the_freshness_bound(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.cache.ttl = Duration::from_millis(800);
        c.cache.stale = Duration::from_secs(5);
    })
    .await;
    app.insert(
        &[user(1, "2023-01-01 00:00:00", true)],
        &[token(
            1,
            1,
            "2023-01-02 10:00:00",
            Some("2023-01-02 10:01:00"),
        )],
    )
    .await;
    let before = app
        .get("/api/reports/daily_usage")
        .await
        .text()
        .await
        .expect("body");
    assert_eq!(before, "{\"2023-01-02\":1}\n");
    app.insert(
        &[],
        &[token(
            2,
            1,
            "2023-01-02 11:00:00",
            Some("2023-01-02 11:01:00"),
        )],
    )
    .await;
    let inserted = Instant::now();
    // Within the bound the cached answer may be served…
    let cached = app.get("/api/reports/daily_usage").await;
    assert_eq!(cached.headers()["x-cache"], "HIT", "{backend:?}");
    assert!(
        cached.headers()["cache-control"]
            .to_str()
            .unwrap_or("")
            .starts_with("max-age=")
    );
    // …and once it has passed, the new token shows (after at most one stale answer).
    loop {
        let body = app
            .get("/api/reports/daily_usage")
            .await
            .text()
            .await
            .expect("body");
        if body == "{\"2023-01-02\":2}\n" {
            break;
        }
        assert!(
            inserted.elapsed() < Duration::from_millis(800 + 1_000),
            "{backend:?}: still {body} after {:?}",
            inserted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_burst_of_identical_requests_runs_one_query(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(4, 200, 2_000);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let before = app.statements();
    let burst: Vec<_> = (0..40).map(|_| app.graphql(VISITS, json!({}))).collect();
    let answers = futures_util::future::join_all(burst).await;
    let statements = app.statements() - before;
    // One page read from the rollup and one count for totalCount, once for all 40.
    assert_eq!(
        statements, 2,
        "{backend:?}: {statements} statements for 40 identical requests"
    );
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    assert!(answers[0].get("errors").is_none(), "{}", answers[0]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn cached_answers_equal_uncached_ones(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(6, 150, 1_500);
    if unavailable(backend) {
        return;
    }
    let cached = TestApp::spawn(backend).await;
    let uncached = TestApp::spawn_with(backend, |c| c.cache.ttl = Duration::ZERO).await;
    cached.insert(&users, &tokens).await;
    uncached.insert(&users, &tokens).await;
    for query in [
        VISITS,
        USAGE,
        "{ summary(timezone: \"Asia/Kathmandu\") { users activeUsers tokensIssued tokensUsed usageRate } }",
    ] {
        let mut miss = cached.graphql(query, json!({})).await;
        let mut hit = cached.graphql(query, json!({})).await;
        let straight = uncached.graphql(query, json!({})).await;
        // The hit is the stored answer itself, its cache note included.
        assert_eq!(hit, miss, "{backend:?} {query}");
        assert!(miss["extensions"]["cache"]["dataAt"].is_string(), "{miss}");
        assert!(straight.get("extensions").is_none(), "{straight}");
        crate::helpers::strip_cache_note(&mut miss);
        crate::helpers::strip_cache_note(&mut hit);
        assert_eq!(miss, straight, "{backend:?} {query}");
        assert_eq!(hit, straight, "{backend:?} {query}");
    }
    // Each request runs the page and the count again.
    for _ in 0..2 {
        let before = uncached.statements();
        uncached.graphql(VISITS, json!({})).await;
        assert_eq!(
            uncached.statements() - before,
            2,
            "CACHE_TTL_SECONDS=0 turns the cache off"
        );
    }
}

#[tokio::test]
async fn during_an_outage_cached_reports_are_served_marked_stale() {
    if pg_admin_url().is_none() {
        eprintln!("NOTE: stale-if-error case not run (needs TEST_DATABASE_URL)");
        return;
    }
    let pg = PgDatabase::create().await;
    let (proxy, via_proxy) = Proxy::in_front_of(&pg.url).await;
    let url = via_proxy.to_string();
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database = coworking_gateway::config::Config::for_database_url(&url)
            .expect("cfg")
            .database;
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale = Duration::from_secs(30);
    })
    .await;
    let (users, tokens) = random_dataset(12, 20, 100);
    app.insert(&users, &tokens).await;
    assert_eq!(app.get("/api/reports/daily_usage").await.status(), 200);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let res = app.get("/api/reports/daily_usage").await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-cache"], "STALE");
        assert!(
            res.headers()["age"]
                .to_str()
                .ok()
                .and_then(|a| a.parse::<u64>().ok())
                .is_some()
        );
        assert_eq!(res.text().await.expect("body"), legacy_daily_usage(&tokens));
    }
    // Something never cached has nothing to fall back on: a fast 503.
    let res = app.get("/api/reports/user_visits").await;
    assert_eq!(res.status(), 503);
    proxy.restore();
    drop(pg);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_burst_of_identical_rest_reports_renders_once_and_gets_the_same_bytes(
    #[case] backend: Backend,
) {
    let (users, tokens) = random_dataset(7, 120, 900);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let before = app.statements();
    let burst: Vec<_> = (0..40)
        .map(|_| async {
            app.get("/api/reports/user_visits")
                .await
                .text()
                .await
                .expect("body")
        })
        .collect();
    let bodies = futures_util::future::join_all(burst).await;
    let burst_cost = app.statements() - before;
    // What one rendering costs: a request that must render afresh.
    let before = app.statements();
    let fresh = app
        .client
        .get(format!("{}/api/reports/user_visits", app.base))
        .header("cache-control", "no-cache")
        .send()
        .await
        .expect("GET");
    assert_eq!(fresh.status(), 200);
    let one_render = app.statements() - before;
    assert!(one_render >= 1, "{backend:?}");
    assert_eq!(
        burst_cost, one_render,
        "{backend:?}: 40 requests rendered more than once"
    );
    assert!(
        bodies
            .iter()
            .all(|b| *b == crate::reference::legacy_user_visits(&users, &tokens)),
        "{backend:?}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_repeated_visits_page_with_users_runs_no_statement(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(8, 150, 1_000);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let query = "{ visitsPerUser(first: 50, orderBy: VISITS_DESC) { edges { node { userId user { firstName } } } } }";
    let first = app.graphql(query, json!({})).await;
    let before = app.statements();
    let again = app.graphql(query, json!({})).await;
    assert_eq!(
        app.statements() - before,
        0,
        "{backend:?}: visits and users come from the cache"
    );
    assert_eq!(first, again);
}
