//! The legacy REST reports: golden bytes on the legacy seed, references on generated data,
//! HTTP semantics, and outage/recovery through a TCP proxy.

use std::time::{Duration, Instant};

use coworking_gateway::config::Config;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, PgDatabase, Proxy, TestApp, legacy_dir, unavailable};
use crate::migrations::legacy_loaded_database;
use crate::reference::{
    legacy_daily_usage, legacy_user_visits, multi_year_dataset, random_dataset, token, user,
    with_a_token_from_2012,
};

async fn body_of(app: &TestApp, path: &str) -> (u16, String, String) {
    let res = app.get(path).await;
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, res.text().await.expect("body"))
}

#[tokio::test]
async fn reports_are_byte_identical_to_the_legacy_app_on_the_legacy_seed() {
    let (Some(pg), Some(dir)) = (legacy_loaded_database().await, legacy_dir()) else {
        eprintln!("NOTE: golden-bytes case not run (needs TEST_DATABASE_URL and ../shared/legacy)");
        return;
    };
    let url = pg.url.clone();
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database = Config::for_database_url(&url).expect("cfg").database
    })
    .await;
    let golden = dir.join("golden");
    for (path, file, content_type) in [
        (
            "/api/reports/daily_usage",
            "daily_usage.body",
            "application/json",
        ),
        (
            "/api/reports/user_visits",
            "user_visits.body",
            "application/json",
        ),
        (
            "/health_check",
            "health_check.body",
            "text/html; charset=utf-8",
        ),
        (
            "/readiness_check",
            "readiness_check.body",
            "text/html; charset=utf-8",
        ),
    ] {
        let want = std::fs::read(golden.join(file)).expect("golden body");
        let (status, ct, got) = body_of(&app, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(ct, content_type, "{path}");
        assert!(
            got.as_bytes() == want.as_slice(),
            "{path}: bytes differ from {file}\n got: {}\nwant: {}",
            &got[..got.len().min(300)],
            String::from_utf8_lossy(&want[..want.len().min(300)])
        );
    }
    drop(pg);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn reports_equal_references_built_from_the_raw_rows(#[case] backend: Backend) {
    let (mut users, mut tokens) = random_dataset(31, 40, 260);
    // A user whose joined_at has zero microseconds, with tokens, and ids above 9.
    users.push(user(1000, "2023-01-05 08:00:00", true));
    tokens.push(token(
        10_000,
        1000,
        "2022-12-31 23:59:59.999999",
        Some("2023-01-01 00:10:00"),
    ));
    tokens.push(token(10_001, 1000, "2023-01-01 00:00:00", None));
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let (status, ct, daily) = body_of(&app, "/api/reports/daily_usage").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(daily, legacy_daily_usage(&tokens), "{backend:?}");
    let (status, _, visits) = body_of(&app, "/api/reports/user_visits").await;
    assert_eq!(status, 200);
    assert_eq!(visits, legacy_user_visits(&users, &tokens), "{backend:?}");
    assert!(visits.contains("\"1000\":{\"joined_at\":\"2023-01-05 08:00:00\",\"visits\":2}"));
    // Users 33..40 have no tokens and are absent; keys are in numeric order.
    let parsed: Value = serde_json::from_str(&visits).expect("json");
    assert!(parsed.get("40").is_none());
    let keys: Vec<i64> = visits
        .trim_start_matches('{')
        .split("},\"")
        .map(|k| {
            k.trim_start_matches('"')
                .split('"')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("key")
        })
        .collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]) && keys.contains(&10),
        "{keys:?}"
    );
    // Query strings are ignored.
    assert_eq!(
        body_of(&app, "/api/reports/daily_usage?from=2023-01-01&x=1")
            .await
            .2,
        daily
    );
}

#[tokio::test]
async fn user_visits_pages_through_more_users_than_one_graphql_page() {
    let (users, tokens) = random_dataset(8, 400, 1_500);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.max_page_size = 50).await;
    app.insert(&users, &tokens).await;
    assert_eq!(
        body_of(&app, "/api/reports/user_visits").await.2,
        legacy_user_visits(&users, &tokens)
    );
}

/// Users with tokens whose ids leave wide gaps: a dense block of 20,600 (more than one
/// read of the rollup), nobody for tens of thousands of ids, a few far above. The body is
/// read in id ranges at once; it must still be every user with tokens, in id order.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn user_visits_is_whole_and_in_order_over_sparse_ids_and_large_ranges(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    let ids: Vec<i32> = (1..=20_600)
        .chain((75_000..75_040).step_by(3))
        .chain([200_001, 260_000])
        .collect();
    let users: Vec<_> = ids
        .iter()
        .map(|&id| {
            // Whole seconds for some, microseconds for the others.
            let micros = if id % 5 == 0 { 0 } else { id % 1_000_000 };
            user(
                id,
                &format!(
                    "2022-{:02}-{:02} 08:{:02}:{:02}.{micros:06}",
                    id % 12 + 1,
                    id % 28 + 1,
                    id % 60,
                    id % 59
                ),
                id % 3 != 0,
            )
        })
        .collect();
    // Every user but each 97th has tokens: one to three of them, some used.
    let mut tokens = Vec::new();
    for &id in ids.iter().filter(|id| *id % 97 != 0) {
        for k in 0..(id % 3 + 1) {
            let n = i32::try_from(tokens.len()).expect("few tokens") + 1;
            let used = (k == 0).then_some("2023-01-02 10:00:00");
            tokens.push(token(n, id, &format!("2023-01-0{} 09:00:00", k + 1), used));
        }
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let (status, _, body) = body_of(&app, "/api/reports/user_visits").await;
    assert_eq!(status, 200);
    let want = legacy_user_visits(&users, &tokens);
    assert_eq!(body.len(), want.len(), "{backend:?}: body length");
    assert!(
        body == want,
        "{backend:?}: the body differs from the raw-row reference"
    );
    assert!(body.contains("\"260000\":{\"joined_at\":\"2022-09-21 08:20:46\",\"visits\":3}"));
}

#[tokio::test]
async fn reports_answer_head_and_refuse_other_methods_with_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/api/reports/daily_usage",
        "/api/reports/user_visits",
        "/health_check",
        "/readiness_check",
    ] {
        let head = app
            .client
            .head(format!("{}{path}", app.base))
            .send()
            .await
            .expect("HEAD");
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(head.text().await.expect("body"), "");
        let post = app
            .client
            .post(format!("{}{path}", app.base))
            .body("x")
            .send()
            .await
            .expect("POST");
        assert_eq!(post.status(), 405, "{path}");
        let allow = post
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "{path}: Allow = {allow:?}"
        );
    }
}

async fn wait_for_status(app: &TestApp, path: &str, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let status = app.get(path).await.status().as_u16();
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{path} still {status} after {:?}, wanted {want}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_database_outage_gives_fast_503s_and_recovers_without_a_restart() {
    if crate::helpers::pg_admin_url().is_none() {
        eprintln!("NOTE: outage case not run (needs TEST_DATABASE_URL)");
        return;
    }
    let pg = PgDatabase::create().await;
    let (proxy, mut via_proxy) = Proxy::in_front_of(&pg.url).await;
    let _ = via_proxy.set_password(Some("not-shown"));
    let url = via_proxy.to_string();
    // No report cache: this is about the database road (the cache's own outage
    // behaviour, stale answers, is tested with the cache).
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database = Config::for_database_url(&url).expect("cfg").database;
        c.cache.ttl = Duration::ZERO;
    })
    .await;
    let (users, tokens) = random_dataset(2, 20, 100);
    app.insert(&users, &tokens).await;
    let reports = ["/api/reports/daily_usage", "/api/reports/user_visits"];
    for path in reports {
        assert_eq!(app.get(path).await.status(), 200);
    }

    proxy.cut();
    for path in reports {
        let started = Instant::now();
        let (status, ct, body) = body_of(&app, path).await;
        let took = started.elapsed();
        assert_eq!(status, 503, "{path}: {body}");
        assert!(took <= Duration::from_secs(2), "{path} took {took:?}");
        assert_eq!(ct, "application/json");
        let parsed: Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(parsed["error"]["code"], "DATABASE_UNAVAILABLE");
        for leak in ["not-shown", "postgres://", "SELECT", "tokens"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
    let started = Instant::now();
    assert_eq!(body_of(&app, "/readiness_check").await.2, "failed");
    assert!(started.elapsed() <= Duration::from_secs(2));
    assert_eq!(
        body_of(&app, "/health_check").await,
        (200, "text/html; charset=utf-8".to_owned(), "ok".to_owned())
    );

    proxy.restore();
    for path in reports {
        wait_for_status(&app, path, 200, Duration::from_secs(2)).await;
    }
    assert_eq!(
        body_of(&app, reports[0]).await.2,
        legacy_daily_usage(&tokens)
    );
    wait_for_status(&app, "/readiness_check", 200, Duration::from_secs(2)).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn daily_usage_lists_every_day_with_data_whatever_the_span_and_the_bucket_limit(
    #[case] backend: Backend,
) {
    let (users, tokens) = with_a_token_from_2012(31, 40, 260);
    let (more_users, more_tokens) = multi_year_dataset(41, 30, 3_000);
    if unavailable(backend) {
        return;
    }
    // A limit far below the days with data must not matter to the legacy report.
    for max_buckets in [3_660usize, 10] {
        for (users, tokens) in [(&users, &tokens), (&more_users, &more_tokens)] {
            let app = TestApp::spawn_with(backend, |c| c.max_buckets = max_buckets).await;
            app.insert(users, tokens).await;
            // The UTC date of a timestamp, as each database writes it by itself.
            let day = match backend {
                Backend::Sqlite => "substr(created_at, 1, 10)",
                Backend::Postgres => "CAST(created_at AS date)",
            };
            let (status, ct, body) = body_of(&app, "/api/reports/daily_usage").await;
            assert_eq!(
                (status, ct.as_str()),
                (200, "application/json"),
                "{backend:?} max {max_buckets}: {body}"
            );
            assert_eq!(
                body,
                legacy_daily_usage(tokens),
                "{backend:?} max {max_buckets}"
            );
            // The same figures by plain SQL grouping in the database itself.
            let days_with_visits = app
                .query_i64(&format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM tokens WHERE used_at IS NOT NULL \
                     GROUP BY {day}) AS d"
                ))
                .await;
            let parsed: serde_json::Map<String, Value> =
                serde_json::from_str(&body).expect("JSON object");
            assert_eq!(parsed.len() as i64, days_with_visits, "{backend:?}");
            let used = app
                .query_i64("SELECT COUNT(*) FROM tokens WHERE used_at IS NOT NULL")
                .await;
            assert_eq!(
                parsed.values().filter_map(Value::as_i64).sum::<i64>(),
                used,
                "{backend:?}"
            );
            // GraphQL's usageByDay answers the same days, or names the argument to add
            // when they are more than the limit.
            let gql = app
                .graphql("{ usageByDay { date visits } }", serde_json::json!({}))
                .await;
            let days_with_tokens = app
                .query_i64(&format!(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM tokens GROUP BY {day}) AS d"
                ))
                .await;
            if days_with_tokens as usize <= max_buckets {
                let list = gql["data"]["usageByDay"].as_array().expect("buckets");
                assert_eq!(list.len() as i64, days_with_tokens, "{backend:?}: {gql}");
            } else {
                assert_eq!(
                    gql["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
                    "{gql}"
                );
                assert_eq!(gql["errors"][0]["extensions"]["argument"], "from", "{gql}");
            }
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_token_from_years_ago_shows_up_in_the_cached_daily_usage_once_it_is_refreshed(
    #[case] backend: Backend,
) {
    let (users, tokens) = random_dataset(3, 30, 200);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.cache.ttl = Duration::from_millis(300);
        c.cache.stale = Duration::from_secs(30);
    })
    .await;
    app.insert(&users, &tokens).await;
    assert_eq!(
        body_of(&app, "/api/reports/daily_usage").await.2,
        legacy_daily_usage(&tokens)
    );
    let old = token(9_001, 1, "2012-03-04 10:00:00", Some("2012-03-04 10:05:00"));
    app.insert(&[], std::slice::from_ref(&old)).await;
    let mut all = tokens.clone();
    all.push(old);
    let want = legacy_daily_usage(&all);
    let started = Instant::now();
    loop {
        let (status, _, body) = body_of(&app, "/api/reports/daily_usage").await;
        assert_eq!(status, 200, "{backend:?}: {body}");
        if body == want {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{backend:?}: the 2012 day never showed up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_legacy_seed_with_one_token_from_2012_answers_the_golden_bytes_with_that_day_first() {
    let (Some(pg), Some(dir)) = (legacy_loaded_database().await, legacy_dir()) else {
        eprintln!(
            "NOTE: legacy-seed multi-year case not run (needs TEST_DATABASE_URL and ../shared/legacy)"
        );
        return;
    };
    let url = pg.url.clone();
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database = Config::for_database_url(&url).expect("cfg").database
    })
    .await;
    app.query_i64(
        "WITH t AS (INSERT INTO tokens (id, user_id, token, created_at, used_at) \
         VALUES (100000, 1, '201203', '2012-03-04 10:00:00', '2012-03-04 10:05:00') RETURNING id) \
         SELECT COUNT(*) FROM t",
    )
    .await;
    let golden = std::fs::read_to_string(dir.join("golden/daily_usage.body")).expect("golden");
    let want = format!("{{\"2012-03-04\":1,{}", &golden[1..]);
    let (status, _, got) = body_of(&app, "/api/reports/daily_usage").await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, want);
    let gql = app
        .graphql_ok("{ usageByDay { date visits } }", serde_json::json!({}))
        .await;
    let dates: Vec<&str> = gql["usageByDay"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter_map(|b| b["date"].as_str())
        .collect();
    assert_eq!(dates.first(), Some(&"2012-03-04"), "{gql}");
    let days = app
        .query_i64("SELECT COUNT(DISTINCT CAST(created_at AS date)) FROM tokens")
        .await;
    assert_eq!(dates.len() as i64, days, "{gql}");
    drop(pg);
}
