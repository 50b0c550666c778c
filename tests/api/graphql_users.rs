//! `user`, `users`, `User.visits`, limits, error codes, APQ, GET and the playground page.

use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::random_dataset;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn users_and_user_match_the_rows_with_visits_batched(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(9, 60, 300);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = app
            .graphql_ok(
                "query($after: String) { users(first: 25, after: $after, activeOnly: true) { totalCount pageInfo { hasNextPage endCursor } edges { node { id firstName lastName joinedAt isActive visits } } } }",
                json!({ "after": after }),
            )
            .await;
        let conn = &data["users"];
        assert_eq!(
            conn["totalCount"],
            json!(users.iter().filter(|u| u.is_active).count())
        );
        for e in conn["edges"].as_array().expect("edges") {
            seen.push(e["node"].clone());
        }
        if conn["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let want: Vec<_> = users.iter().filter(|u| u.is_active).collect();
    assert_eq!(seen.len(), want.len(), "{backend:?}");
    for (node, u) in seen.iter().zip(want) {
        assert_eq!(node["id"], json!(u.id));
        assert_eq!(node["firstName"], json!(u.first_name));
        let joined =
            chrono::DateTime::parse_from_rfc3339(node["joinedAt"].as_str().expect("joinedAt"))
                .expect("rfc3339");
        assert_eq!(joined.naive_utc(), u.joined_at);
        assert_eq!(
            node["visits"],
            json!(tokens.iter().filter(|t| t.user_id == u.id).count()),
            "{backend:?} user {}",
            u.id
        );
    }
    let one = app
        .graphql_ok(
            "{ user(id: 7) { id lastName isActive } missing: user(id: 100000) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(one["user"]["lastName"], json!(users[6].last_name));
    assert_eq!(one["missing"], json!(null));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn depth_and_complexity_limits_reject_with_codes(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| {
        c.graphql_max_depth = 3;
        c.graphql_max_complexity = 50;
    })
    .await;
    let deep = app
        .graphql(
            "{ visitsPerUser { edges { node { user { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        deep["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_VALIDATION_FAILED"),
        "{deep}"
    );
    assert!(
        deep["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nested too deep"),
        "{deep}"
    );
    let wide = app.graphql("{ visitsPerUser(first: 1000) { totalCount edges { cursor node { userId visits checkIns } } } }", json!({})).await;
    assert!(
        wide["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("too complex"),
        "{wide}"
    );
    let unknown = app.graphql("{ nope }", json!({})).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_VALIDATION_FAILED")
    );
    let garbage = app.graphql("{ summary { users ", json!({})).await;
    assert_eq!(
        garbage["errors"][0]["extensions"]["code"],
        json!("GRAPHQL_PARSE_FAILED"),
        "{garbage}"
    );
}

#[tokio::test]
async fn database_failures_are_coded_without_sql_or_connection_strings() {
    let mut config = coworking_gateway::config::Config::for_database_url(
        "postgres://postgres:topsecret@127.0.0.1:9/none",
    )
    .expect("config");
    config.bind_address = [127, 0, 0, 1].into();
    config.port = 0;
    let app = TestApp::start(crate::helpers::Backend::Postgres, config, None).await;
    let body = app.graphql("{ summary { users } }", json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("DATABASE_UNAVAILABLE"),
        "{body}"
    );
    let text = body.to_string();
    for leak in ["topsecret", "SELECT", "127.0.0.1:9", "postgres://"] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
}

#[tokio::test]
async fn get_requests_apq_and_the_offline_playground_work() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let res = app
        .get("/graphql?query=%7Bsummary%7BtokensIssued%7D%7D")
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["data"]["summary"]["tokensIssued"], json!(0));

    // Automatic persisted queries: the hash alone is unknown, then registered, then enough.
    let query = "{ summary { users } }";
    let hash = sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = |body: serde_json::Value| {
        app.client
            .post(format!("{}/graphql", app.base))
            .json(&body)
            .send()
    };
    let miss: serde_json::Value = post(json!({ "extensions": ext }))
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(
        miss["errors"][0]["extensions"]["code"],
        json!("PERSISTED_QUERY_NOT_FOUND"),
        "{miss}"
    );
    let reg: serde_json::Value = post(json!({ "query": query, "extensions": ext }))
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(reg["data"]["summary"]["users"], json!(0));
    let hit: serde_json::Value = post(json!({ "extensions": ext }))
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(hit["data"]["summary"]["users"], json!(0), "{hit}");

    let page = app
        .client
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    // GraphiQL when the build bundled it (tests/api/graphiql.rs checks it), else the simple page.
    assert!(if coworking_gateway::http::graphiql::BUNDLED {
        html.contains("graphiql.min.js")
    } else {
        html.contains("<textarea id=\"query\"") && html.contains("fetch(")
    });
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the playground must not load anything from the internet"
    );
}

fn sha256_hex(input: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn get_runs_the_operation_named_by_operation_name(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(3, 5, 10);
    let doc = "query A { summary { users } } query B { summary { tokensIssued } }";
    let encoded: String = url::form_urlencoded::byte_serialize(doc.as_bytes()).collect();
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for (name, field, want) in [
        ("A", "users", users.len()),
        ("B", "tokensIssued", tokens.len()),
    ] {
        let body: serde_json::Value = app
            .get(&format!("/graphql?query={encoded}&operationName={name}"))
            .await
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(
            body["data"]["summary"][field],
            json!(want),
            "{backend:?} {name}: {body}"
        );
    }
}
