//! /metrics: route templates, bounded operation names, request ids, and the REST road's metrics.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{Backend, TestApp};

/// Samples of one metric as (labels, value), read from a real scrape.
fn samples(scrape: &str, metric: &str) -> Vec<(String, f64)> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name_labels, value) = l.rsplit_once(' ')?;
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (name_labels, ""),
            };
            (name == metric).then(|| (labels.to_owned(), value.parse().unwrap_or(f64::NAN)))
        })
        .collect()
}

fn value(scrape: &str, metric: &str, labels: &str) -> f64 {
    samples(scrape, metric)
        .into_iter()
        .find(|(l, _)| l == labels)
        .map_or(0.0, |(_, v)| v)
}

async fn scrape(app: &TestApp) -> String {
    let base = app.metrics_base.as_deref().unwrap_or(&app.base);
    let res = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );
    res.text().await.expect("body")
}

#[tokio::test]
async fn http_metrics_use_route_templates_and_one_label_for_unknown_paths() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in [
        "/api/reports/daily_usage?from=x",
        "/api/reports/daily_usage",
        "/health_check",
        "/nope/123",
        "/also/not/here",
    ] {
        app.get(path).await;
    }
    app.client
        .post(format!("{}/api/reports/user_visits", app.base))
        .send()
        .await
        .expect("post");
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            r#"method="GET",route="/api/reports/daily_usage",status="200""#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            r#"method="GET",route="unmatched",status="404""#
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            r#"method="POST",route="/api/reports/user_visits",status="405""#
        ),
        1.0
    );
    assert!(
        !text.contains("/nope") && !text.contains("from=x"),
        "raw paths leaked into labels"
    );
    assert_eq!(
        value(
            &text,
            "http_request_duration_seconds_count",
            r#"method="GET",route="/health_check""#
        ),
        1.0
    );
    // The scrape itself is in flight while it renders.
    assert_eq!(value(&text, "http_requests_in_flight", ""), 1.0);
    for metric in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(value(&text, metric, "") > 0.0, "{metric} missing");
    }
    // prometheus's process collector counts whole CPU seconds (an IntCounter), so a test
    // process younger than one CPU second reads 0: present and not negative.
    let cpu = samples(&text, "process_cpu_seconds_total");
    assert!(
        matches!(cpu.as_slice(), [(labels, v)] if labels.is_empty() && *v >= 0.0),
        "process_cpu_seconds_total missing: {cpu:?}"
    );
    assert_eq!(samples(&text, "build_info").len(), 1);
    assert!(samples(&text, "build_info")[0].0.contains(concat!(
        "version=\"",
        env!("CARGO_PKG_VERSION"),
        "\""
    )));
    assert_eq!(
        value(&text, "db_pool_connections", r#"state="max""#),
        1.0,
        "SQLite in memory keeps one connection"
    );
}

#[tokio::test]
async fn a_thousand_made_up_operation_names_leave_the_label_bounded() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for i in 0..1_000 {
        app.graphql(
            &format!("query Made{i}Up{} {{ summary {{ users }} }}", i * 7919),
            json!({}),
        )
        .await;
    }
    app.graphql("{ summary { users } }", json!({})).await;
    app.graphql("query Summary { summary { users } }", json!({}))
        .await;
    app.graphql("query Broken { summary { users ", json!({}))
        .await;
    let text = scrape(&app).await;
    let ops: BTreeSet<String> = samples(&text, "graphql_operations_total")
        .iter()
        .filter_map(|(l, _)| {
            l.split("operation=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        ops,
        ["Summary", "anonymous", "invalid", "other"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>(),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "graphql_operations_total",
            r#"operation="other",outcome="ok",type="query""#
        ),
        1_000.0
    );
    assert_eq!(
        value(
            &text,
            "graphql_operations_total",
            r#"operation="invalid",outcome="error",type="unknown""#
        ),
        1.0
    );
}

#[tokio::test]
async fn rest_reports_are_measured_by_operation_route_and_query() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.insert(
        &[crate::reference::user(1, "2023-01-01 00:00:00", true)],
        &[crate::reference::token(
            1,
            1,
            "2023-01-02 10:00:00",
            Some("2023-01-02 10:01:00"),
        )],
    )
    .await;
    app.get("/api/reports/daily_usage").await;
    app.get("/api/reports/user_visits").await;
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "graphql_operations_total",
            r#"operation="LegacyDailyUsage",outcome="ok",type="query""#
        ),
        1.0,
        "{text}"
    );
    // user_visits reads id ranges of the per-user rollup directly: measured by its route.
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            r#"method="GET",route="/api/reports/user_visits",status="200""#
        ),
        1.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            "db_query_duration_seconds_count",
            r#"query="usage_by_day_rollup""#
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "db_query_duration_seconds_count",
            r#"query="visit_lines_rollup""#
        ) >= 1.0
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app
        .client
        .get(format!("{}/health_check", app.base))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .expect("get");
    assert_eq!(res.headers()["x-request-id"], "trace-42");
    let a = app.get("/health_check").await.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let b = app.get("/nope").await.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    assert!(a.len() >= 16 && a != b, "{a} {b}");
    // An unsafe id (spaces, too long) is replaced, not echoed into logs.
    let res = app
        .client
        .get(format!("{}/health_check", app.base))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .expect("get");
    assert_ne!(res.headers()["x-request-id"].len(), 500);
}

#[tokio::test]
async fn metrics_can_move_to_a_port_of_their_own() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.metrics_port = Some(0)).await;
    assert!(app.metrics_base.is_some());
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the main port"
    );
    app.get("/health_check").await;
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            "http_requests_total",
            r#"method="GET",route="/health_check",status="200""#
        ),
        1.0
    );
}
