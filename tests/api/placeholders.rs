//! Statements get each backend's own placeholders from sea-query: a `?` inside a string
//! literal is text, never a parameter (the old hand-written `?` → `$n` rewrite broke it).

use coworking_gateway::db::dialect::Dialect;
use coworking_gateway::seed::{SeedPlan, seed};
use entity::tokens;
use rstest::rstest;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Asterisk, Condition, Expr, ExprTrait, Func, Query};

use crate::helpers::{Backend, TestApp, unavailable};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn question_marks_in_literals_stay_text_next_to_bound_values(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let dialect = Dialect::of(&app.db);

    // Hand-written: a literal '?' before and after a bound value.
    let mut sql = dialect.raw();
    sql.push("SELECT '?' AS q, CAST(")
        .bind("x?".to_owned())
        .push(" AS text) AS v, 'a??b' AS r");
    let row = app
        .db
        .query_one_raw(sql.finish())
        .await
        .expect("raw statement")
        .expect("a row");
    let q: String = row.try_get("", "q").expect("q");
    let v: String = row.try_get("", "v").expect("v");
    let r: String = row.try_get("", "r").expect("r");
    assert_eq!(
        (q.as_str(), v.as_str(), r.as_str()),
        ("?", "x?", "a??b"),
        "{backend:?}"
    );

    // Built: a custom '?' column and a '?' compared as a literal, beside bound values.
    seed(
        &app.db,
        SeedPlan {
            users: 5,
            tokens: 40,
            seed: 3,
            append: false,
            days: 7,
        },
        |_, _| {},
    )
    .await
    .expect("seed");
    let query = Query::select()
        .expr_as(Expr::cust("'?'"), "q")
        .expr_as(Func::count(Expr::col(Asterisk)), "n")
        .from(tokens::Entity)
        .cond_where(
            Condition::all()
                .add(Expr::col(tokens::Column::Id).gt(10))
                .add(Expr::cust("token <> '?'"))
                .add(Expr::col(tokens::Column::Token).ne("?")),
        )
        .to_owned();
    let row = app
        .db
        .query_one_raw(dialect.build(&query))
        .await
        .expect("built statement")
        .expect("a row");
    let q: String = row.try_get("", "q").expect("q");
    let n: i64 = row.try_get("", "n").expect("n");
    let expected = app
        .query_i64("SELECT COUNT(*) FROM tokens WHERE id > 10 AND token <> '?'")
        .await;
    assert_eq!(q, "?", "{backend:?}");
    assert_eq!(n, expected, "{backend:?}");
    assert_eq!(expected, 30, "{backend:?}: the seeded ids are 1..=40");
}
