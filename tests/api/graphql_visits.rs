//! `visitsPerUser`: every field, order and page against a reference; DataLoader batching; bad arguments.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::{RefVisits, random_dataset, token, user, visits_reference};

pub const PAGE: &str = "query Page($first: Int!, $after: String, $order: VisitsOrder!, $min: Int, $active: Boolean, $from: Date, $to: Date, $tz: String!) {
  visitsPerUser(first: $first, after: $after, orderBy: $order, minVisits: $min, activeOnly: $active, from: $from, to: $to, timezone: $tz) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { userId visits checkIns lastVisitAt joinedAt } }
  }
}";

fn utc(v: &Value) -> Option<NaiveDateTime> {
    v.as_str().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .expect("RFC 3339")
            .naive_utc()
    })
}

pub fn node(v: &Value) -> RefVisits {
    RefVisits {
        user_id: v["userId"].as_i64().expect("userId") as i32,
        joined_at: utc(&v["joinedAt"]).expect("joinedAt"),
        visits: v["visits"].as_i64().expect("visits"),
        check_ins: v["checkIns"].as_i64().expect("checkIns"),
        last_visit_at: utc(&v["lastVisitAt"]),
    }
}

pub fn sort(rows: &mut [RefVisits], order: &str) {
    match order {
        "USER_ID_ASC" => rows.sort_by_key(|r| r.user_id),
        "VISITS_DESC" => rows.sort_by_key(|r| (-r.visits, r.user_id)),
        // Never-visited users last.
        "LAST_VISIT_DESC" => rows.sort_by_key(|r| {
            (
                r.last_visit_at.is_none(),
                std::cmp::Reverse(r.last_visit_at),
                r.user_id,
            )
        }),
        "JOINED_AT_ASC" => rows.sort_by_key(|r| (r.joined_at, r.user_id)),
        other => panic!("unknown order {other}"),
    }
}

/// Walks every page and returns the rows in order, checking page info along the way.
async fn all_pages(app: &TestApp, first: usize, vars: Value) -> (Vec<RefVisits>, i64) {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    let mut total = -1;
    for page_no in 0.. {
        let mut v = vars.clone();
        v["first"] = json!(first);
        v["after"] = json!(after);
        let data = app.graphql_ok(PAGE, v).await;
        let conn = &data["visitsPerUser"];
        total = conn["totalCount"].as_i64().expect("totalCount");
        let edges = conn["edges"].as_array().expect("edges");
        assert!(edges.len() <= first);
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], json!(page_no > 0));
        if let Some(last) = edges.last() {
            assert_eq!(conn["pageInfo"]["endCursor"], last["cursor"]);
        }
        rows.extend(edges.iter().map(|e| node(&e["node"])));
        if conn["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    (rows, total)
}

/// from, to, timezone, activeOnly, minVisits
type Filter<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<bool>,
    Option<i64>,
);

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn visits_per_user_pages_match_the_reference_for_every_order_and_filter(
    #[case] backend: Backend,
) {
    let (users, tokens) = random_dataset(23, 150, 900);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let filters: &[Filter] = &[
        (None, None, "UTC", None, None),
        (
            Some("2022-12-25"),
            Some("2023-01-05"),
            "America/New_York",
            None,
            None,
        ),
        (
            None,
            Some("2022-12-31"),
            "Asia/Kathmandu",
            Some(true),
            Some(3),
        ),
    ];
    for (from, to, tz, active, min) in filters {
        let tzv: Tz = tz.parse().expect("tz");
        let d = |s: &&str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let reference = visits_reference(
            &users,
            &tokens,
            tzv,
            from.as_ref().map(d),
            to.as_ref().map(d),
            active.unwrap_or(false),
            *min,
        );
        assert!(reference.len() > 10, "test data too thin");
        for order in [
            "USER_ID_ASC",
            "VISITS_DESC",
            "LAST_VISIT_DESC",
            "JOINED_AT_ASC",
        ] {
            let vars = json!({ "order": order, "min": min, "active": active, "from": from, "to": to, "tz": tz });
            let (got, total) = all_pages(&app, 17, vars).await;
            let mut want = reference.clone();
            sort(&mut want, order);
            assert_eq!(total as usize, want.len(), "{backend:?} {order}");
            assert_eq!(got, want, "{backend:?} {order} {from:?}..{to:?} {tz}");
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn visits_ties_break_by_user_id_and_users_without_tokens_are_absent(
    #[case] backend: Backend,
) {
    let users = vec![
        user(3, "2023-01-01 00:00:00", true),
        user(12, "2023-01-01 00:00:00", true),
        user(7, "2022-12-01 00:00:00", true),
        user(40, "2022-11-01 00:00:00", true),
    ];
    let tokens = vec![
        token(1, 12, "2023-01-02 10:00:00", Some("2023-01-02 10:05:00")),
        token(2, 12, "2023-01-03 10:00:00", None),
        token(3, 3, "2023-01-02 11:00:00", None),
        token(4, 3, "2023-01-03 11:00:00", Some("2023-01-02 10:05:00")),
        token(5, 7, "2023-01-03 11:00:00", None),
    ];
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let ids = |order: &'static str| {
        let app = &app;
        async move {
            let data = app
                .graphql_ok(PAGE, json!({ "first": 10, "order": order, "tz": "UTC" }))
                .await;
            data["visitsPerUser"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"]["userId"].as_i64().expect("id"))
                .collect::<Vec<_>>()
        }
    };
    // 3 and 12 tie on visits (2), on last visit and on joined_at: user id decides. User 40 has no tokens.
    assert_eq!(ids("VISITS_DESC").await, vec![3, 12, 7], "{backend:?}");
    assert_eq!(ids("LAST_VISIT_DESC").await, vec![3, 12, 7], "{backend:?}");
    assert_eq!(ids("JOINED_AT_ASC").await, vec![7, 3, 12], "{backend:?}");
    assert_eq!(ids("USER_ID_ASC").await, vec![3, 7, 12], "{backend:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_page_of_100_rows_with_users_takes_at_most_two_statements(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(3, 300, 1_200);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let query = "{ visitsPerUser(first: 100, orderBy: VISITS_DESC) { edges { node { userId visits user { id firstName lastName isActive } } } } }";
    let before = app.statements();
    let data = app.graphql_ok(query, json!({})).await;
    let statements = app.statements() - before;
    let edges = data["visitsPerUser"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100);
    for e in edges {
        let id = e["node"]["userId"].as_i64().expect("id");
        let u = users
            .iter()
            .find(|u| i64::from(u.id) == id)
            .expect("user exists");
        assert_eq!(
            e["node"]["user"]["firstName"],
            json!(u.first_name),
            "{backend:?}"
        );
        assert_eq!(e["node"]["user"]["isActive"], json!(u.is_active));
    }
    assert!(
        statements <= 2,
        "{backend:?}: {statements} statements for one page with users"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn bad_visits_arguments_are_bad_user_input_naming_the_argument(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(
        &[user(1, "2023-01-01 00:00:00", true)],
        &[token(1, 1, "2023-01-02 00:00:00", None)],
    )
    .await;
    let first_page = app
        .graphql_ok(
            "{ visitsPerUser(first: 1, orderBy: VISITS_DESC) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let visits_cursor = first_page["visitsPerUser"]["pageInfo"]["endCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let cases = [
        (
            "{ visitsPerUser(first: -1) { totalCount } }".to_owned(),
            "first",
        ),
        (
            "{ visitsPerUser(first: 100000) { totalCount } }".to_owned(),
            "first",
        ),
        (
            "{ visitsPerUser(after: \"not-a-cursor\") { totalCount } }".to_owned(),
            "after",
        ),
        (
            "{ visitsPerUser(after: \"dXYxfHZpc2l0c3wxfDF8LXwx\") { totalCount } }".to_owned(),
            "after",
        ),
        (
            format!(
                "{{ visitsPerUser(after: \"{visits_cursor}\", orderBy: USER_ID_ASC) {{ totalCount }} }}"
            ),
            "after",
        ),
        (
            "{ visitsPerUser(timezone: \"Nowhere/City\") { totalCount } }".to_owned(),
            "timezone",
        ),
        (
            "{ visitsPerUser(from: \"2023-13-01\") { totalCount } }".to_owned(),
            "from",
        ),
        (
            "{ visitsPerUser(from: \"2023-02-01\", to: \"2023-01-01\") { totalCount } }".to_owned(),
            "to",
        ),
        ("{ users(first: 5000) { totalCount } }".to_owned(), "first"),
        (
            "{ users(after: \"%%%\") { totalCount } }".to_owned(),
            "after",
        ),
    ];
    for (query, argument) in &cases {
        let body = app.graphql(query, json!({})).await;
        let e = &body["errors"][0];
        assert_eq!(
            e["extensions"]["code"],
            json!("BAD_USER_INPUT"),
            "{backend:?} {query}: {body}"
        );
        assert!(
            e["message"].as_str().unwrap_or("").contains(argument),
            "{backend:?} {query}: {body}"
        );
    }
}
