//! What the GraphQL spec and the GraphQL-over-HTTP spec say a server answers:
//! media types and status codes, request order, null propagation, one error per
//! mistake, introspection as stock clients send it. CI also runs the real clients
//! (graphql-http's audit, graphql-js, Python gql) against a live gateway.

use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::random_dataset;

const GQL_RESPONSE: &str = "application/graphql-response+json";

struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

async fn post(app: &TestApp, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.base))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send().await.expect("POST /graphql")).await
}

async fn get(app: &TestApp, headers: &[(&str, &str)], query: &[(&str, &str)]) -> Answer {
    let mut req = app.client.get(format!("{}/graphql", app.base)).query(query);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    answer(req.send().await.expect("GET /graphql")).await
}

async fn answer(res: reqwest::Response) -> Answer {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        text,
        json,
    }
}

fn query(q: &str) -> String {
    json!({ "query": q }).to_string()
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn accept_chooses_the_media_type_and_the_status_of_request_errors() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ok = query("{ summary { users } }");
    for (accept, expected) in [
        (None, "application/json"),
        (Some("*/*"), "application/json"),
        (Some("application/json"), "application/json"),
        (Some(GQL_RESPONSE), GQL_RESPONSE),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GQL_RESPONSE,
        ),
        (
            Some("application/json, application/graphql-response+json;q=0.5"),
            "application/json",
        ),
        (Some("text/html, */*;q=0.8"), "application/json"),
    ] {
        let mut headers = vec![JSON];
        if let Some(a) = accept {
            headers.push(("accept", a));
        }
        let a = post(&app, &headers, &ok).await;
        assert_eq!(a.status, 200, "{accept:?}: {}", a.text);
        assert_eq!(a.content_type, expected, "{accept:?}");
        assert!(a.json["data"]["summary"]["users"].is_i64(), "{}", a.text);
    }
    let refused = post(&app, &[JSON, ("accept", "text/html")], &ok).await;
    assert_eq!(refused.status, 406, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "NOT_ACCEPTABLE");

    // Request errors: before execution begins, so no `data` entry at all; 400 with the
    // new media type, 200 with application/json (the spec's "legacy watershed").
    let request_errors = [
        (query("{ summary { users "), "GRAPHQL_PARSE_FAILED"),
        (query("{ nope }"), "GRAPHQL_VALIDATION_FAILED"),
        (
            json!({ "query": "query($id: Int!) { user(id: $id) { id } }", "variables": { "id": "one" } })
                .to_string(),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "query": "query($id: Int!) { user(id: $id) { id } }" }).to_string(),
            "BAD_USER_INPUT",
        ),
    ];
    for (body, code) in &request_errors {
        for (accept, status) in [(GQL_RESPONSE, 400), ("application/json", 200)] {
            let a = post(&app, &[JSON, ("accept", accept)], body).await;
            assert_eq!(a.status, status, "{accept} {body}: {}", a.text);
            assert_eq!(a.content_type, accept);
            assert!(a.json.get("data").is_none(), "{accept} {body}: {}", a.text);
            assert_eq!(
                a.json["errors"][0]["extensions"]["code"], *code,
                "{}",
                a.text
            );
        }
    }
    // A field error is not a request error: data is there (here null, propagated), 200.
    let field_error = post(
        &app,
        &[JSON, ("accept", GQL_RESPONSE)],
        &query(r#"{ usageByDay(timezone: "Mars/Olympus") { date } }"#),
    )
    .await;
    assert_eq!(field_error.status, 200, "{}", field_error.text);
    assert!(field_error.json.get("data").is_some_and(Value::is_null));
    assert_eq!(field_error.json["errors"][0]["path"], json!(["usageByDay"]));
}

#[tokio::test]
async fn post_needs_a_json_content_type_and_get_refuses_mutations() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = query("{ summary { users } }");
    for headers in [
        vec![],
        vec![("content-type", "text/plain")],
        vec![("content-type", "text/plain;charset=utf-8")],
        vec![("content-type", "application/graphql")],
        vec![("content-type", "application/json; charset=latin1")],
    ] {
        let a = post(&app, &headers, &body).await;
        assert_eq!(a.status, 415, "{headers:?}: {}", a.text);
        assert_eq!(
            a.json["error"]["code"], "UNSUPPORTED_MEDIA_TYPE",
            "{}",
            a.text
        );
        assert!(
            a.json["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("application/json")
        );
    }
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ] {
        let a = post(&app, &[("content-type", ct)], &body).await;
        assert_eq!(a.status, 200, "{ct}: {}", a.text);
    }
    let a = get(&app, &[], &[("query", "mutation { anything }")]).await;
    assert_eq!(a.status, 405, "{}", a.text);
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("POST")
    );
    let a = get(
        &app,
        &[("accept", GQL_RESPONSE)],
        &[
            ("query", "query A { summary { users } } mutation B { x }"),
            ("operationName", "B"),
        ],
    )
    .await;
    assert_eq!(a.status, 405, "{}", a.text);
    // A document with a mutation is invalid here (no mutation type) whichever
    // operation is named: validation covers the whole document.
    let a = get(
        &app,
        &[("accept", GQL_RESPONSE)],
        &[
            ("query", "query A { summary { users } } mutation B { x }"),
            ("operationName", "A"),
        ],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        a.json["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

#[tokio::test]
async fn malformed_request_parameters_name_the_parameter() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (body, needle) in [
        (r#"{"query": 1}"#, "query must be a string"),
        (
            r#"{"query": "{ summary { users } }", "variables": []}"#,
            "variables must be an object",
        ),
        (
            r#"{"query": "{ summary { users } }", "variables": "x"}"#,
            "variables must be an object",
        ),
        (
            r#"{"query": "{ summary { users } }", "operationName": 5}"#,
            "operationName must be a string",
        ),
        (
            r#"{"query": "{ summary { users } }", "extensions": 5}"#,
            "extensions must be an object",
        ),
        (r#"{}"#, "has no query"),
        (r#"[]"#, "a batch holds 0 operations"),
        (r#"[1]"#, "batch item 0"),
        (r#""query""#, "not a GraphQL request object"),
        (r#"{"query": "#, "not valid JSON"),
    ] {
        let a = post(&app, &[JSON], body).await;
        assert_eq!(a.status, 400, "{body}: {}", a.text);
        let message = a.json["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(needle), "{body}: {message}");
        assert!(
            !message.contains("untagged") && !message.contains("BatchRequest"),
            "{message}"
        );
    }
    let a = get(
        &app,
        &[],
        &[("query", "{ summary { users } }"), ("variables", "{oops")],
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("variables")
    );
}

/// The byte offsets of `keys` (as `"key":`) in `text`, which must be increasing.
fn assert_order(text: &str, keys: &[&str]) {
    let mut last = 0;
    for key in keys {
        let needle = format!("\"{key}\":");
        let at = text[last..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{key} is missing or out of order in {text}"));
        last += at + needle.len();
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn fields_come_in_the_order_the_request_selected_them(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (users, tokens) = random_dataset(11, 120, 900);
    app.insert(&users, &tokens).await;
    let a = post(
        &app,
        &[JSON],
        &query(
            "{ b: summary { users tokensUsed } a: user(id: 5) { visits id firstName } \
             ...F z: summary { tokensIssued } } fragment F on QueryRoot { m: user(id: 6) { ... on User { lastName } id } }",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.json.get("errors").is_none(), "{}", a.text);
    assert_order(
        &a.text,
        &[
            "b",
            "users",
            "tokensUsed",
            "a",
            "visits",
            "id",
            "firstName",
            "m",
            "lastName",
            "id",
            "z",
        ],
    );
    // Many rows, many fields, requested in an order unlike the schema's.
    let a = post(
        &app,
        &[JSON],
        &query("{ visitsPerUser(first: 50) { pageInfo { endCursor hasNextPage } totalCount edges { node { visits user { lastName id } userId } cursor } } }"),
    )
    .await;
    let edges = a.json["data"]["visitsPerUser"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!edges.is_empty(), "{}", a.text);
    let mut keys = vec![
        "pageInfo",
        "endCursor",
        "hasNextPage",
        "totalCount",
        "edges",
    ];
    for _ in &edges {
        keys.extend([
            "node", "visits", "user", "lastName", "id", "userId", "cursor",
        ]);
    }
    assert_order(&a.text, &keys);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_error_in_a_non_null_field_nulls_the_nearest_nullable_parent(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    // usageByDay is non-null on the root: the whole data is null (spec 6.4.4).
    let a = post(
        &app,
        &[JSON],
        &query(r#"{ summary { users } usageByDay(timezone: "Mars/Olympus") { date } }"#),
    )
    .await;
    assert!(a.json.get("data").is_some_and(Value::is_null), "{}", a.text);
    assert_eq!(
        a.json["errors"].as_array().map(Vec::len),
        Some(1),
        "{}",
        a.text
    );
    assert_eq!(a.json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // Without the failing field, the same document answers.
    let a = post(&app, &[JSON], &query("{ summary { users } }")).await;
    assert!(a.json["data"]["summary"]["users"].is_i64(), "{}", a.text);
}

#[tokio::test]
async fn schema_description_is_null_and_introspection_is_refused_when_disabled() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let data = app
        .graphql_ok("{ __schema { description } }", json!({}))
        .await;
    assert_eq!(data, json!({ "__schema": { "description": null } }));

    let off = TestApp::spawn_with(Backend::Sqlite, |c| c.graphql_introspection = false).await;
    for q in [
        stock_introspection(),
        "{ __type(name: \"QueryRoot\") { name } }".to_owned(),
    ] {
        let body = off.graphql(&q, json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .contains("GRAPHQL_INTROSPECTION")
        );
        assert!(body.get("data").is_none(), "{body}");
    }
    // __typename is not introspection of the schema; it stays available.
    let data = off.graphql_ok("{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "QueryRoot");
}

/// An introspection query shaped like graphql-js's `getIntrospectionQuery` with every
/// option on (descriptions, specifiedByURL, isRepeatable, schema description,
/// deprecated input values), its type references nested 9 `ofType` deep.
fn stock_introspection() -> String {
    let mut type_ref = String::from("kind name");
    for _ in 0..9 {
        type_ref = format!("kind name ofType {{ {type_ref} }}");
    }
    format!(
        "query IntrospectionQuery {{ __schema {{ description queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }} \
         types {{ ...FullType }} directives {{ name description isRepeatable locations args(includeDeprecated: true) {{ ...InputValue }} }} }} }} \
         fragment FullType on __Type {{ kind name description specifiedByURL \
           fields(includeDeprecated: true) {{ name description args(includeDeprecated: true) {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }} \
           inputFields(includeDeprecated: true) {{ ...InputValue }} interfaces {{ ...TypeRef }} \
           enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} possibleTypes {{ ...TypeRef }} }} \
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue isDeprecated deprecationReason }} \
         fragment TypeRef on __Type {{ {type_ref} }}"
    )
}

#[tokio::test]
async fn stock_introspection_passes_the_default_depth_limit_but_deep_data_does_not() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let data = app.graphql_ok(&stock_introspection(), json!({})).await;
    let types = data["__schema"]["types"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = types.iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(
        names.contains(&"UsageBucket") && names.contains(&"QueryRoot"),
        "{names:?}"
    );
    let date_time = types
        .iter()
        .find(|t| t["name"] == "DateTime")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        date_time["specifiedByURL"],
        "https://datatracker.ietf.org/doc/html/rfc3339"
    );

    // 13 levels of data fields, over the default 12: refused, whatever the data.
    let mut deep = String::from("id");
    for _ in 0..6 {
        deep = format!("user {{ {deep} }}");
    }
    let deep = format!("{{ visitsPerUser {{ edges {{ node {{ {deep} }} }} }} }}");
    let body = app.graphql(&deep, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{body}"
    );
    // ofType chains are free only as deep as any client nests them.
    let mut chain = String::from("name");
    for _ in 0..30 {
        chain = format!("ofType {{ {chain} }}");
    }
    let body = app
        .graphql(
            &format!("{{ __schema {{ types {{ {chain} }} }} }}"),
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nested too deep"),
        "{body}"
    );
}

#[tokio::test]
async fn each_mistake_gets_one_single_line_error_with_the_code_of_its_kind() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let validation = "GRAPHQL_VALIDATION_FAILED";
    let cases: &[(&str, Value, &str, &str)] = &[
        (
            "{ visitsPerUser(first: true) { totalCount } }",
            json!({}),
            validation,
            "first",
        ),
        (
            "{ visitsPerUser(first: 0.0) { totalCount } }",
            json!({}),
            validation,
            "first",
        ),
        (
            r#"{ visitsPerUser(first: "ten") { totalCount } }"#,
            json!({}),
            validation,
            "first",
        ),
        (
            "{ visitsPerUser(first: 99999999999) { totalCount } }",
            json!({}),
            validation,
            "first",
        ),
        (
            "{ user(id: 2147483648) { id } }",
            json!({}),
            validation,
            "id",
        ),
        (
            "{ usageByDay(timezone: false) { date } }",
            json!({}),
            validation,
            "timezone",
        ),
        (
            "{ usageByDay(granularity: YEAR) { date } }",
            json!({}),
            validation,
            "granularity",
        ),
        (
            r#"{ usageByDay(granularity: "DAY") { date } }"#,
            json!({}),
            validation,
            "granularity",
        ),
        ("mutation { anything }", json!({}), validation, "mutation"),
        (
            "{ summary { users ",
            json!({}),
            "GRAPHQL_PARSE_FAILED",
            "syntax error",
        ),
        (
            "query($x: Int!) { user(id: $x) { id } }",
            json!({}),
            "BAD_USER_INPUT",
            "variable $x was not provided",
        ),
        (
            "query($x: Int!) { user(id: $x) { id } }",
            json!({ "x": 2147483648_i64 }),
            "BAD_USER_INPUT",
            "$x",
        ),
        (
            "query($g: Granularity!) { usageByDay(granularity: $g) { date } }",
            json!({ "g": "YEAR" }),
            "BAD_USER_INPUT",
            "$g",
        ),
        (
            r#"{ usageByDay(from: "2023-01-01", fill: true) { date } }"#,
            json!({}),
            "BAD_USER_INPUT",
            "fill",
        ),
    ];
    for (q, variables, code, needle) in cases {
        let body = app.graphql(q, variables.clone()).await;
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        assert_eq!(errors.len(), 1, "{q}: {body}");
        let e = &errors[0];
        assert_eq!(e["extensions"]["code"], *code, "{q}: {body}");
        let message = e["message"].as_str().unwrap_or("");
        assert!(message.contains(needle), "{q}: {message}");
        assert!(
            !message.contains('\n'),
            "{q}: more than one line: {message}"
        );
        // No doubled prefix ("fill: fill: true needs …").
        let doubled = message
            .split_once(": ")
            .is_some_and(|(arg, rest)| rest.starts_with(&format!("{arg}: ")));
        assert!(!doubled, "{message}");
        assert!(
            e["locations"][0]["line"].is_u64(),
            "{q}: no position: {body}"
        );
    }
    // A parse error's position is where the document breaks.
    let body = app.graphql("{\n  summary { users\n", json!({})).await;
    assert_eq!(body["errors"][0]["locations"][0]["line"], 3, "{body}");
}

#[tokio::test]
async fn the_committed_schema_marks_date_time_with_its_specification() {
    let sdl = coworking_gateway::graphql::sdl().await.expect("sdl");
    assert!(
        sdl.contains(
            r#"scalar DateTime @specifiedBy(url: "https://datatracker.ietf.org/doc/html/rfc3339")"#
        ),
        "{sdl}"
    );
    assert!(
        !sdl.contains("FixedOffset"),
        "an internal type name leaks into the schema: {sdl}"
    );
    assert!(
        sdl.starts_with("schema {\n  query: QueryRoot\n}\n"),
        "{sdl}"
    );
}
