//! `/api/reports/*`: daily usage runs a fixed GraphQL operation on the shared schema, user visits
//! reads the analytics pages `visitsPerUser` resolves; each writes the legacy bytes.
//!
//! The legacy (Flask) app wrote compact JSON with one trailing newline, keys in
//! insertion order, and Python's `str(datetime)` for `joined_at`; clients parse
//! or diff those bytes, so they are reproduced exactly.

use std::fmt::Write as _;

use async_graphql::{Request, Variables};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDateTime, Timelike};
use serde_json::{Value, json};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;

use crate::analytics::cache::{Cached, Failure, Freshness, Source};
use crate::analytics::visits::{Cursor, VisitsFilter, VisitsOrder};
use crate::http::error::AppError;
use crate::http::graphql::{Context, with_context};
use crate::http::rendered::{DAILY_USAGE_OPERATION, LegacyReport};
use crate::http::state::AppState;

pub const DAILY_USAGE_QUERY: &str =
    "query LegacyDailyUsage { usageByDay(granularity: DAY, timezone: \"UTC\") { date visits } }";

async fn run(
    state: &AppState,
    context: &Context,
    freshness: &Arc<Freshness>,
    operation: &'static str,
    query: &'static str,
    variables: Value,
) -> Result<Value, AppError> {
    let request = Request::new(query)
        .operation_name(operation)
        .variables(Variables::from_json(variables));
    // The legacy reports list every day with data, whatever the span: no bucket limit.
    let request = with_context(request, context)
        .data(freshness.clone())
        .data(crate::analytics::usage::NoBucketLimit);
    let response = state.schema.execute(request).await;
    if let Some(error) = response.errors.first() {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.as_str()),
                _ => None,
            });
        return Err(AppError::from_code(code, &error.message));
    }
    response
        .data
        .into_json()
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// The legacy body, plus headers telling the data's age (clients that ignore them see no change).
fn legacy_json(state: &AppState, rendered: Cached<Bytes>) -> Response {
    let Cached {
        value: body,
        age,
        source,
    } = rendered;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    let policy = state.config.cache;
    let headers = response.headers_mut();
    let fresh_for = policy.ttl.saturating_sub(age).as_secs();
    let cache_control = if policy.ttl.is_zero() {
        "no-cache".to_owned()
    } else {
        format!(
            "max-age={fresh_for}, stale-while-revalidate={}",
            policy.stale.as_secs()
        )
    };
    let x_cache = match source {
        Source::Miss => "MISS",
        Source::Hit => "HIT",
        Source::Stale => "STALE",
    };
    for (name, value) in [
        ("age", age.as_secs().to_string()),
        ("cache-control", cache_control),
        ("x-cache", x_cache.to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn shape_error(what: &str) -> AppError {
    AppError::Internal(format!("unexpected GraphQL result shape: {what}"))
}

pub async fn daily_usage(
    State(state): State<AppState>,
    context: Context,
) -> Result<Response, AppError> {
    serve(&state, &context, LegacyReport::DailyUsage).await
}

pub async fn user_visits(
    State(state): State<AppState>,
    context: Context,
) -> Result<Response, AppError> {
    serve(&state, &context, LegacyReport::UserVisits).await
}

impl Failure for AppError {
    /// `Internal`'s display hides its detail from clients; the log needs it.
    fn log_detail(&self) -> String {
        match self {
            Self::Internal(detail) => detail.clone(),
            other => other.to_string(),
        }
    }
}

/// Runs a report's operation and writes its body, with the age and source of its data.
async fn render(
    report: LegacyReport,
    state: &AppState,
    context: &Context,
) -> Result<Cached<Bytes>, AppError> {
    let freshness = Arc::new(Freshness::default());
    let body = match report {
        LegacyReport::DailyUsage => daily_usage_body(state, context, &freshness).await?,
        LegacyReport::UserVisits => user_visits_body(state, &freshness).await?,
    };
    let (age, source) = freshness.get().unwrap_or((Duration::ZERO, Source::Miss));
    Ok(Cached {
        value: body.into(),
        age,
        source,
    })
}

async fn serve(
    state: &AppState,
    context: &Context,
    report: LegacyReport,
) -> Result<Response, AppError> {
    if state.config.cache.ttl.is_zero() {
        let rendered = render(report, state, context).await?;
        return Ok(legacy_json(state, rendered));
    }
    let (owned_state, owned_context) = (state.clone(), context.clone());
    let fetch = move || async move { render(report, &owned_state, &owned_context).await };
    let rendered = state
        .rendered
        .get(report, fetch)
        .await
        .map_err(|e| AppError::clone(&e))?;
    Ok(legacy_json(state, rendered))
}

async fn daily_usage_body(
    state: &AppState,
    context: &Context,
    freshness: &Arc<Freshness>,
) -> Result<String, AppError> {
    let data = run(
        state,
        context,
        freshness,
        DAILY_USAGE_OPERATION,
        DAILY_USAGE_QUERY,
        json!({}),
    )
    .await?;
    let buckets = data["usageByDay"]
        .as_array()
        .ok_or_else(|| shape_error("usageByDay"))?;
    let mut body = String::from("{");
    for bucket in buckets {
        let date = bucket["date"].as_str().ok_or_else(|| shape_error("date"))?;
        let visits = bucket["visits"]
            .as_i64()
            .ok_or_else(|| shape_error("visits"))?;
        // The legacy report grouped used tokens only: days with none are absent.
        if visits == 0 {
            continue;
        }
        if body.len() > 1 {
            body.push(',');
        }
        let _ = write!(body, "\"{date}\":{visits}");
    }
    body.push_str("}\n");
    Ok(body)
}

/// Rows per read of the per-user rollup while writing the user-visits body.
const USER_VISITS_PAGE: usize = 10_000;

/// The user-visits body, from the same paged analytics call as `visitsPerUser` (every user
/// with tokens, by user id, keyset pages of the rollup), written as it is read. It does not
/// go through the GraphQL executor: at 100,000 users that costs about a second in resolvers
/// for 100,000 edges, where reading and writing the rows directly takes a tenth of it.
async fn user_visits_body(
    state: &AppState,
    freshness: &Arc<Freshness>,
) -> Result<String, AppError> {
    let filter = VisitsFilter {
        min_visits: None,
        active_only: false,
        from: None,
        to: None,
        timezone: chrono_tz::UTC,
    };
    let order = VisitsOrder::UserIdAsc;
    let mut body = String::from("{");
    let mut after: Option<Cursor> = None;
    loop {
        let page = state
            .analytics
            .visits_page(&filter, order, after.as_ref(), USER_VISITS_PAGE, false)
            .await?;
        freshness.record(&page);
        for row in &page.value.rows {
            if body.len() > 1 {
                body.push(',');
            }
            let _ = write!(
                body,
                "\"{}\":{{\"joined_at\":\"{}\",\"visits\":{}}}",
                row.user_id,
                python_datetime(row.joined_at),
                row.visits
            );
        }
        match (page.value.has_next, page.value.rows.last()) {
            (true, Some(last)) => {
                after = Some(Cursor {
                    order,
                    key: last.clone(),
                });
            }
            _ => break,
        }
    }
    body.push_str("}\n");
    Ok(body)
}

/// Python's `str(datetime)`: microseconds only when they are not zero.
pub fn python_datetime(t: NaiveDateTime) -> String {
    if t.nanosecond() / 1_000 == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}
