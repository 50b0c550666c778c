//! The legacy probes: bodies, content type, and readiness really touching the database.

use std::time::{Duration, Instant};

use coworking_gateway::config::Config;
use rstest::rstest;

use crate::helpers::{Backend, TestApp, unavailable};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn probes_answer_ok_with_the_legacy_content_type(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    for path in ["/health_check", "/readiness_check"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 200, "{backend:?} {path}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(res.text().await.expect("body"), "ok");
    }
}

#[tokio::test]
async fn readiness_fails_fast_and_liveness_stays_ok_when_the_database_is_unreachable() {
    // A PostgreSQL URL where nothing listens: the gateway still starts (lazy pool).
    let mut config =
        Config::for_database_url("postgres://postgres@127.0.0.1:9/none").expect("config");
    config.bind_address = [127, 0, 0, 1].into();
    config.port = 0;
    let app = TestApp::start(Backend::Postgres, config, None).await;
    let started = Instant::now();
    let res = app.get("/readiness_check").await;
    assert_eq!(res.status(), 500);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.text().await.expect("body"), "failed");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "readiness took {:?}",
        started.elapsed()
    );
    let res = app.get("/health_check").await;
    assert_eq!(res.status(), 200);
}
