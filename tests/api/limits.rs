//! Limits: request timeout (and the abandoned query cancelled), per-client rate limit.

use std::time::{Duration, Instant};

use coworking_gateway::config::{Config, RateLimit};
use sea_orm::{ConnectionTrait, Database, TransactionTrait};

use crate::helpers::{Backend, PgDatabase, TestApp, pg_admin_url};
use crate::reference::random_dataset;

async fn active_gateway_queries(db: &sea_orm::DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = 'coworking-gateway' AND state = 'active' AND datname = current_database()",
        ))
        .await
        .expect("query")
        .expect("row");
    row.try_get("", "n").expect("n")
}

#[tokio::test]
async fn a_request_over_the_time_limit_gets_a_504_and_its_query_is_cancelled() {
    if pg_admin_url().is_none() {
        eprintln!("NOTE: request-timeout case not run (needs TEST_DATABASE_URL to hold a query)");
        return;
    }
    let pg = PgDatabase::create().await;
    let url = pg.url.clone();
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database = Config::for_database_url(&url).expect("cfg").database;
        c.request_timeout = Duration::from_millis(500);
        c.cache.ttl = Duration::ZERO;
    })
    .await;
    let (users, tokens) = random_dataset(1, 10, 50);
    app.insert(&users, &tokens).await;
    let other = Database::connect(&pg.url).await.expect("connect");

    let lock = other.begin().await.expect("begin");
    lock.execute_unprepared("LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let started = Instant::now();
    let res = app.get("/api/reports/user_visits").await;
    assert_eq!(res.status(), 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "TIMEOUT");
    // The statement the request left behind does not keep running (the lock is still held).
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let n = active_gateway_queries(&other).await;
        if n == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} abandoned gateway queries still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lock.commit().await.expect("unlock");
    // And the pool recovers: the next request is served.
    assert_eq!(app.get("/api/reports/user_visits").await.status(), 200);
    drop(pg);
}

#[tokio::test]
async fn clients_over_their_rate_get_429_with_retry_after_and_probes_are_never_limited() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.rate_limit = Some(RateLimit {
            per_second: 1.0,
            burst: 2.0,
            // One proxy in front, which writes the client's address into X-Forwarded-For.
            trusted_proxy_hops: 1,
        })
    })
    .await;
    let get = |client: &'static str| {
        let req = app
            .client
            .get(format!("{}/api/reports/daily_usage", app.base))
            .header("x-forwarded-for", client);
        async move { req.send().await.expect("get") }
    };
    assert_eq!(get("10.0.0.1").await.status(), 200);
    assert_eq!(get("10.0.0.1").await.status(), 200);
    let limited = get("10.0.0.1").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = limited.json().await.expect("json");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Another client has its own budget; probes have none.
    assert_eq!(get("10.0.0.2").await.status(), 200);
    for _ in 0..10 {
        assert_eq!(app.get("/health_check").await.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(get("10.0.0.1").await.status(), 200, "the budget refills");
}

/// A client that writes its own X-Forwarded-For must not choose its own budget:
/// with no trusted proxy the header is ignored, with N it counts only the entry the
/// N-th proxy from the gateway wrote.
#[tokio::test]
async fn rotating_x_forwarded_for_does_not_escape_the_rate_limit() {
    for hops in [0usize, 1, 2] {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            c.rate_limit = Some(RateLimit {
                per_second: 0.5,
                burst: 2.0,
                trusted_proxy_hops: hops,
            })
        })
        .await;
        let mut passed = 0;
        for i in 0..40 {
            // What the client writes, then what each trusted proxy appended.
            let mut chain = vec![format!("10.1.{}.{}", i / 250, i % 250)];
            chain.extend(
                ["198.51.100.7", "10.0.0.2"]
                    .iter()
                    .take(hops)
                    .map(|s| (*s).to_owned()),
            );
            let res = app
                .client
                .get(format!("{}/api/reports/daily_usage", app.base))
                .header("x-forwarded-for", chain.join(", "))
                .send()
                .await
                .expect("get");
            if res.status() == 200 {
                passed += 1;
            } else {
                assert_eq!(res.status(), 429, "hops {hops}");
            }
        }
        assert_eq!(
            passed, 2,
            "hops {hops}: only the burst of 2 may pass, {passed} of 40 did"
        );
    }
}
