//! `/api/reports/*`: daily usage runs a fixed GraphQL operation on the shared schema, user visits
//! reads the analytics pages `visitsPerUser` resolves; each writes the legacy bytes.
//!
//! The legacy (Flask) app wrote compact JSON with one trailing newline, keys in
//! insertion order, and Python's `str(datetime)` for `joined_at`; clients parse
//! or diff those bytes, so they are reproduced exactly.

use std::fmt::Write as _;

use async_graphql::{Request, Variables};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{NaiveDateTime, Timelike};
use serde_json::{Value, json};

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;

use crate::analytics::cache::{Cached, Failure, Freshness, Source};
use crate::analytics::reports::revalidating;
use crate::analytics::visits::{Cursor, Page, VisitsFilter, VisitsOrder};
use crate::http::encoding::{self, Encoded, SharedBody};
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

/// The legacy body (the same bytes and status as ever for a client that sends no caching
/// headers), with its validator, freshness headers and coding (see `http::encoding`).
async fn legacy_json(
    state: &AppState,
    request: &HeaderMap,
    report: LegacyReport,
    rendered: Cached<SharedBody>,
) -> Response {
    let policy = state.config.cache;
    let freshness = encoding::Freshness {
        age: rendered.age,
        source: rendered.source,
        ttl: policy.ttl,
        stale: policy.stale,
        private: state.auth.enabled(),
    };
    let held = rendered.value.held_bytes();
    let (response, not_modified) = encoding::respond(
        request,
        StatusCode::OK,
        HeaderValue::from_static("application/json"),
        &rendered.value,
        freshness,
    )
    .await;
    if not_modified {
        state.metrics.http_not_modified.inc();
    }
    if rendered.value.held_bytes() != held && !policy.ttl.is_zero() {
        state.rendered.reweigh(&report).await;
    }
    response
}

fn shape_error(what: &str) -> AppError {
    AppError::Internal(format!("unexpected GraphQL result shape: {what}"))
}

pub async fn daily_usage(
    State(state): State<AppState>,
    context: Context,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    serve(&state, &context, &headers, LegacyReport::DailyUsage).await
}

pub async fn user_visits(
    State(state): State<AppState>,
    context: Context,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    serve(&state, &context, &headers, LegacyReport::UserVisits).await
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
) -> Result<Cached<SharedBody>, AppError> {
    let freshness = Arc::new(Freshness::default());
    let body = match report {
        LegacyReport::DailyUsage => daily_usage_body(state, context, &freshness).await?,
        LegacyReport::UserVisits => user_visits_body(state, &freshness).await?,
    };
    let (age, source) = freshness.get().unwrap_or((Duration::ZERO, Source::Miss));
    Ok(Cached {
        value: Arc::new(Encoded::new(Bytes::from(body))),
        age,
        source,
    })
}

/// A legacy report: from the rendered-body cache, or rendered afresh when the cache is
/// off or the client asked to revalidate (`Cache-Control: no-cache`), which also renews
/// the cached body and the reports under it.
async fn serve(
    state: &AppState,
    context: &Context,
    headers: &HeaderMap,
    report: LegacyReport,
) -> Result<Response, AppError> {
    if state.config.cache.ttl.is_zero() {
        let rendered = render(report, state, context).await?;
        return Ok(legacy_json(state, headers, report, rendered).await);
    }
    if encoding::wants_revalidation(headers) {
        let rendered = revalidating(render(report, state, context)).await?;
        state.rendered.put(report, rendered.clone()).await;
        return Ok(legacy_json(state, headers, report, rendered).await);
    }
    let (owned_state, owned_context) = (state.clone(), context.clone());
    let fetch = move || async move { render(report, &owned_state, &owned_context).await };
    let rendered = state
        .rendered
        .get(report, fetch)
        .await
        .map_err(|e| AppError::clone(&e))?;
    Ok(legacy_json(state, headers, report, rendered).await)
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
const USER_VISITS_PAGE: usize = 20_000;

/// A spawned page read, aborted if the body it was for is abandoned (client gone, timeout).
struct PageTask(tokio::task::JoinHandle<crate::analytics::error::Result<Cached<Arc<Page>>>>);

impl Drop for PageTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn next_page(state: &AppState, filter: &VisitsFilter, after: Option<Cursor>) -> PageTask {
    let (analytics, filter) = (state.analytics.clone(), filter.clone());
    let revalidate = crate::analytics::reports::revalidation_requested();
    PageTask(tokio::spawn(async move {
        let read = analytics.visits_page(
            &filter,
            VisitsOrder::UserIdAsc,
            after.as_ref(),
            USER_VISITS_PAGE,
            false,
        );
        if revalidate {
            crate::analytics::reports::revalidating(read).await
        } else {
            read.await
        }
    }))
}

/// The user-visits body, from the same paged analytics call as `visitsPerUser` (every user
/// with tokens, by user id, keyset pages of the rollup), written as it is read: the next
/// page is read while this one is written. It does not go through the GraphQL executor:
/// at 100,000 users that costs about a second in resolvers for 100,000 edges, where
/// reading and writing the rows directly takes a tenth of it.
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
    let mut body = String::from("{");
    let mut pending = next_page(state, &filter, None);
    loop {
        let page = (&mut pending.0)
            .await
            .map_err(|e| AppError::Internal(format!("reading a page of user visits: {e}")))??;
        freshness.record(&page);
        let rows = &page.value.rows;
        let more = match (page.value.has_next, rows.last()) {
            (true, Some(last)) => {
                let after = Cursor {
                    order: VisitsOrder::UserIdAsc,
                    key: last.clone(),
                };
                pending = next_page(state, &filter, Some(after));
                true
            }
            _ => false,
        };
        body.reserve(rows.len() * 64);
        for row in rows {
            if body.len() > 1 {
                body.push(',');
            }
            let _ = write!(body, "\"{}\":{{\"joined_at\":\"", row.user_id);
            write_python_datetime(&mut body, row.joined_at);
            let _ = write!(body, "\",\"visits\":{}}}", row.visits);
        }
        if !more {
            break;
        }
    }
    body.push_str("}\n");
    Ok(body)
}

/// Python's `str(datetime)`: microseconds only when they are not zero.
pub fn python_datetime(t: NaiveDateTime) -> String {
    let mut out = String::with_capacity(26);
    write_python_datetime(&mut out, t);
    out
}

/// [`python_datetime`] appended to `out`, written by hand: `format` parses its pattern on
/// every call, which at 100,000 users was a large part of the body's cost.
pub fn write_python_datetime(out: &mut String, t: NaiveDateTime) {
    use chrono::Datelike;
    let (date, time) = (t.date(), t.time());
    if !(0..=9999).contains(&date.year()) {
        // Beyond four digits: chrono's spelling (Python has no such dates).
        let _ = write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S"));
    } else {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second()
        );
    }
    let micros = time.nanosecond() / 1_000;
    if micros != 0 {
        // A leap second's nanoseconds run past 10^9; Python has none, chrono prints them.
        let _ = write!(out, ".{:06}", micros.min(999_999));
    }
}
