//! The README's example answers, and the embedded default it promises.

use coworking_gateway::config::DatabaseTarget;
use coworking_gateway::seed::{SeedPlan, seed};
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backends, unavailable};

/// Pairs of (GraphQL query, expected JSON answer) from the README's code blocks.
fn readme_examples() -> Vec<(String, Value)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut examples = Vec::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```graphql\n") {
        rest = &rest[start + "```graphql\n".len()..];
        let end = rest.find("```").expect("closing fence");
        let query = rest[..end].trim().to_owned();
        rest = &rest[end + 3..];
        let json_start = rest.find("```json\n").expect("an answer after each query");
        rest = &rest[json_start + "```json\n".len()..];
        let json_end = rest.find("```").expect("closing fence");
        examples.push((
            query,
            serde_json::from_str(&rest[..json_end]).expect("answer is JSON"),
        ));
        rest = &rest[json_end + 3..];
    }
    examples
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn readme_example_queries_give_the_answers_shown_on_demo_data(#[case] backend: Backend) {
    let examples = readme_examples();
    assert_eq!(examples.len(), 3, "the README shows three examples");
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    seed(&app.db, SeedPlan::DEMO, |_, _| {})
        .await
        .expect("demo seed");
    for (query, answer) in &examples {
        assert_eq!(
            &app.graphql_answer(query, json!({})).await,
            answer,
            "{backend:?}: {query}"
        );
    }
}

#[tokio::test]
async fn the_embedded_default_migrates_and_seeds_once_and_postgres_is_never_seeded() {
    let dir = std::env::temp_dir().join(format!("gw-embedded-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("coworking.db");
    for _ in 0..2 {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            c.database = DatabaseTarget::EmbeddedDefault { path: path.clone() }
        })
        .await;
        assert_eq!(app.get("/readiness_check").await.status(), 200);
        let data = app
            .graphql_ok("{ summary { users tokensIssued } }", json!({}))
            .await;
        assert_eq!(
            data["summary"],
            json!({ "users": 1000, "tokensIssued": 2500 }),
            "seeded once, not twice"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if backends().contains(&Backend::Postgres) {
        let app = TestApp::spawn(Backend::Postgres).await;
        assert_eq!(
            app.query_i64("SELECT COUNT(*) FROM tokens").await,
            0,
            "serve must not seed PostgreSQL"
        );
    }
}
