//! The caches are bounded by bytes (`CACHE_MAX_BYTES`) as well as entries, and a failed
//! background refresh is counted in `cache_refresh_failures_total`.

use std::time::{Duration, Instant};

use coworking_gateway::analytics::usage::UsageBucket;
use coworking_gateway::app::Application;
use coworking_gateway::config::Config;
use coworking_gateway::http::AppState;
use rstest::rstest;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Backend, PgDatabase, TestApp, unavailable};

/// The app on port 0 with its state at hand (the figures of its caches).
struct Spawned {
    base: String,
    state: AppState,
    client: reqwest::Client,
    _pg: Option<PgDatabase>,
}

impl Spawned {
    async fn new(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let (config, pg) = crate::helpers::test_config(backend, tweak).await;
        let app = Application::build(config).await.expect("build app");
        let base = format!("http://{}", app.local_addr().expect("bound address"));
        let state = app.server().state().clone();
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            state,
            client: reqwest::Client::new(),
            _pg: pg,
        }
    }

    async fn graphql(&self, query: &str) -> Value {
        self.client
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("JSON body")
    }

    /// `usageByDay` over `days` days from 2000-01-01 + `offset` days, every bucket filled.
    async fn usage(&self, offset: i64, days: i64) -> Value {
        let from = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("date")
            + chrono::Duration::days(offset);
        let to = from + chrono::Duration::days(days - 1);
        let answer = self
            .graphql(&format!(
                "{{ usageByDay(from: \"{from}\", to: \"{to}\", fill: true) {{ date visits }} }}"
            ))
            .await;
        let buckets = answer["data"]["usageByDay"].as_array().map(Vec::len);
        assert_eq!(buckets, Some(days as usize), "{answer}");
        answer
    }

    fn statements(&self) -> u64 {
        crate::helpers::db_statements(&self.state.metrics)
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_report_cache_stays_within_its_bytes_and_keeps_a_hot_report_through_a_sweep(
    #[case] backend: Backend,
) {
    const MAX_BYTES: u64 = 1024 * 1024;
    if unavailable(backend) {
        return;
    }
    let app = Spawned::new(backend, |c| {
        c.cache.max_bytes = MAX_BYTES;
        c.cache.ttl = Duration::from_secs(600);
    })
    .await;
    let cache = app.state.analytics.report_cache().expect("cache on");
    // Three eighths of CACHE_MAX_BYTES are the reports' (README).
    assert_eq!(cache.max_bytes(), MAX_BYTES / 8 * 3);

    // One entry of 3,660 buckets weighs at least its buckets, and not much more.
    app.usage(0, 3_660).await;
    cache.run_pending_tasks().await;
    let one = cache.weighted_size();
    let buckets = (3_660 * std::mem::size_of::<UsageBucket>()) as u64;
    assert_eq!(cache.entry_count(), 1, "{backend:?}");
    assert!(
        one >= buckets && one <= 2 * buckets + 4_096,
        "{backend:?}: one entry of {buckets} bytes of buckets weighs {one}"
    );

    // A dashboard's short report, asked for now and then during a sweep of 12
    // distinct long ranges, about 5 times what the budget holds.
    let hot = app.usage(10_000, 30).await;
    for i in 1..=12 {
        app.usage(i, 3_660).await;
        if i % 3 == 0 {
            app.usage(10_000, 30).await;
        }
    }
    cache.run_pending_tasks().await;
    let (size, count) = (cache.weighted_size(), cache.entry_count());
    assert!(
        size <= MAX_BYTES / 8 * 3,
        "{backend:?}: {size} bytes held, bound {}",
        MAX_BYTES / 8 * 3
    );
    assert!(
        count < 12,
        "{backend:?}: {count} entries of ~{one} bytes cannot fit in {size}"
    );
    let before = app.statements();
    assert_eq!(app.usage(10_000, 30).await, hot);
    assert_eq!(
        app.statements(),
        before,
        "{backend:?}: the hot report was evicted by one-off ranges"
    );
    // The sweep's ranges are not all there: asking again reads the database.
    let before = app.statements();
    for i in 1..=12 {
        app.usage(i, 3_660).await;
    }
    assert!(
        app.statements() > before,
        "{backend:?}: nothing was evicted"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn cache_max_entries_still_bounds_small_reports(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = Spawned::new(backend, |c| {
        c.cache.max_entries = 5;
        c.cache.ttl = Duration::from_secs(600);
    })
    .await;
    let cache = app.state.analytics.report_cache().expect("cache on");
    for i in 0..30 {
        app.usage(i, 2).await;
    }
    cache.run_pending_tasks().await;
    let count = cache.entry_count();
    assert!(
        (1..=5).contains(&count),
        "{backend:?}: {count} entries, CACHE_MAX_ENTRIES is 5"
    );
    assert!(cache.weighted_size() <= cache.max_bytes());
}

/// Failed background refreshes over every cache. Which cache counts one depends on the
/// layer that refreshed: a GraphQL answer's refresh reads its reports afresh itself, so
/// the database's failure fails the answer's refresh (`graphql_responses`).
fn refresh_failures(metrics: &str) -> Option<u64> {
    let counts: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("cache_refresh_failures_total{cache="))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_failed_background_refresh_is_counted_and_the_stale_answer_served(
    #[case] backend: Backend,
) {
    const QUERY: &str = r#"{ usageByDay(from: "2023-01-01", to: "2023-01-31", fill: true) { date visits tokensIssued } }"#;
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale = Duration::from_secs(60);
    })
    .await;
    let (users, tokens) = crate::reference::random_dataset(21, 20, 200);
    app.insert(&users, &tokens).await;
    let metrics = |app: &TestApp| {
        let url = format!("{}/metrics", app.base);
        let client = app.client.clone();
        async move {
            let text = client
                .get(url)
                .send()
                .await
                .expect("GET /metrics")
                .text()
                .await
                .expect("body");
            refresh_failures(&text)
        }
    };
    assert_eq!(
        metrics(&app).await,
        Some(0),
        "{backend:?}: the series exists at 0"
    );
    let fresh = app.graphql(QUERY, json!({})).await;
    assert!(fresh.get("errors").is_none(), "{fresh}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Every statement on tokens and on the usage rollups now fails, whichever backend.
    const AWAY: [(&str, &str); 4] = [
        ("tokens", "tokens_away"),
        ("gw_usage_slots", "slots_away"),
        ("gw_usage_hours", "hours_away"),
        ("gw_usage_days", "days_away"),
    ];
    for (table, away) in AWAY {
        app.db
            .execute_unprepared(&format!("ALTER TABLE {table} RENAME TO {away}"))
            .await
            .expect("rename");
    }
    assert_eq!(
        app.graphql(QUERY, json!({})).await,
        fresh,
        "{backend:?}: the stale answer"
    );
    let asked = Instant::now();
    loop {
        let failures = metrics(&app).await;
        if failures == Some(1) {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "{backend:?}: cache_refresh_failures_total is {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (table, away) in AWAY {
        app.db
            .execute_unprepared(&format!("ALTER TABLE {away} RENAME TO {table}"))
            .await
            .expect("rename back");
    }
}
