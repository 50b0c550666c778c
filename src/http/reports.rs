//! `/api/reports/*`: daily usage runs a fixed GraphQL operation on the shared schema, user visits
//! reads id ranges of the per-user rollup `visitsPerUser` pages; each writes the legacy bytes.
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
        LegacyReport::UserVisits => user_visits_body(state).await?,
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

/// Rows per read of the per-user rollup while writing a part of the user-visits body.
const USER_VISITS_PAGE: usize = 20_000;
/// User ids per part of the user-visits body; the parts are read and written at once.
const USER_VISITS_PART_IDS: i64 = 25_000;
/// At most this many parts (connections) for one user-visits body.
const USER_VISITS_MAX_PARTS: i64 = 4;

/// A spawned task, aborted if what it was for is abandoned (client gone, timeout).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ids `lo..=hi` cut into `(after, through]` ranges of about `per_part` ids, at most `max`
/// (as `i64`, so the range below `i32::MIN` can be written).
fn id_parts(lo: i32, hi: i32, per_part: i64, max: i64) -> Vec<(i64, i64)> {
    let (lo, hi) = (i64::from(lo), i64::from(hi));
    let span = (hi - lo + 1).max(1);
    let parts = ((span + per_part - 1) / per_part).clamp(1, max);
    let step = (span + parts - 1) / parts;
    (0..parts)
        .map(|i| (lo - 1 + i * step, (lo - 1 + (i + 1) * step).min(hi)))
        .filter(|(after, through)| after < through)
        .collect()
}

/// One part of the user-visits body: every user with tokens in `(after, through]`, by id,
/// as `"id":{...}` entries joined by commas (empty when the range holds no user).
async fn user_visits_part(
    analytics: crate::analytics::Analytics,
    mut after: i64,
    through: i64,
) -> Result<String, AppError> {
    let mut part = String::new();
    loop {
        let lines = analytics
            .visit_lines(after, through, USER_VISITS_PAGE)
            .await?;
        part.reserve(lines.len() * 64);
        for line in &lines {
            if !part.is_empty() {
                part.push(',');
            }
            write_visit_line(&mut part, line);
        }
        match lines.last() {
            Some(last) if lines.len() == USER_VISITS_PAGE && i64::from(last.user_id) < through => {
                after = i64::from(last.user_id);
            }
            _ => return Ok(part),
        }
    }
}

/// `"<id>":{"joined_at":"<python datetime>","visits":<n>}`.
fn write_visit_line(out: &mut String, line: &crate::analytics::paging::VisitLine) {
    out.push('"');
    push_int(out, i64::from(line.user_id));
    out.push_str("\":{\"joined_at\":\"");
    write_python_datetime(out, line.joined_at);
    out.push_str("\",\"visits\":");
    push_int(out, line.visits);
    out.push('}');
}

/// `n` in decimal, without the formatting machinery (a large part of the body's cost).
fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_padded(out, n.unsigned_abs(), 1);
}

/// `n` in decimal with at least `width` digits, zero-padded (`width` at most 20).
fn push_padded(out: &mut String, n: impl Into<u64>, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = n.into();
    while rest > 0 || digits.len() - at < width.min(digits.len()) {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// The user-visits body: every user with tokens, by user id, from the per-user rollup
/// (after one fold). The id span is cut into a few ranges read and written at once, each
/// by keyset pages of the rollup's primary key, and the parts joined in order. It does not
/// go through the GraphQL executor: at 100,000 users that costs about a second in
/// resolvers for 100,000 edges, where reading and writing the rows directly takes a
/// fraction of it.
async fn user_visits_body(state: &AppState) -> Result<String, AppError> {
    let Some((lo, hi)) = state.analytics.visit_line_bounds().await? else {
        return Ok("{}\n".to_owned());
    };
    let tasks: Vec<_> = id_parts(lo, hi, USER_VISITS_PART_IDS, USER_VISITS_MAX_PARTS)
        .into_iter()
        .map(|(after, through)| {
            let analytics = state.analytics.clone();
            AbortOnDrop(tokio::spawn(user_visits_part(analytics, after, through)))
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for mut task in tasks {
        let part = (&mut task.0)
            .await
            .map_err(|e| AppError::Internal(format!("writing a part of user visits: {e}")))??;
        parts.push(part);
    }
    let mut body = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 3);
    body.push('{');
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(part);
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
        push_padded(out, date.year().unsigned_abs(), 4);
        out.push('-');
        push_padded(out, date.month(), 2);
        out.push('-');
        push_padded(out, date.day(), 2);
        out.push(' ');
        push_padded(out, time.hour(), 2);
        out.push(':');
        push_padded(out, time.minute(), 2);
        out.push(':');
        push_padded(out, time.second(), 2);
    }
    let micros = time.nanosecond() / 1_000;
    if micros != 0 {
        // A leap second's nanoseconds run past 10^9; Python has none, chrono prints them.
        out.push('.');
        push_padded(out, micros.min(999_999), 6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id of `lo..=hi` in exactly one range, ranges in order, at most `max` of them.
    fn check(lo: i32, hi: i32, per_part: i64, max: i64) {
        let parts = id_parts(lo, hi, per_part, max);
        assert!(
            !parts.is_empty() && parts.len() as i64 <= max,
            "{lo}..={hi}: {parts:?}"
        );
        assert_eq!(parts[0].0, i64::from(lo) - 1, "{parts:?}");
        assert_eq!(parts[parts.len() - 1].1, i64::from(hi), "{parts:?}");
        for w in parts.windows(2) {
            assert_eq!(w[0].1, w[1].0, "{parts:?}");
        }
        assert!(parts.iter().all(|(a, t)| a < t), "{parts:?}");
    }

    #[test]
    fn id_parts_cover_the_span_once_in_order() {
        for (lo, hi) in [
            (1, 1),
            (1, 100_000),
            (5, 7),
            (1, 260_000),
            (-3, 40),
            (1_000, 1_001),
        ] {
            for (per, max) in [(25_000, 4), (1, 4), (3, 2), (1_000_000, 8)] {
                check(lo, hi, per, max);
            }
        }
        assert_eq!(id_parts(1, 100_000, 25_000, 4).len(), 4);
        assert_eq!(id_parts(1, 10, 25_000, 4), vec![(0, 10)]);
    }

    #[test]
    fn id_parts_at_the_ends_of_i32() {
        for (lo, hi) in [
            (i32::MIN, i32::MIN + 3),
            (i32::MAX - 10, i32::MAX),
            (i32::MIN, i32::MAX),
        ] {
            check(lo, hi, 25_000, 4);
        }
    }

    #[test]
    fn integers_and_datetimes_are_written_as_python_does() {
        let mut out = String::new();
        for n in [0i64, 7, 10, 99_999, -12, i64::MAX, i64::MIN] {
            out.clear();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("ts");
        for (given, python) in [
            ("2023-01-05 08:00:00", "2023-01-05 08:00:00"),
            ("2023-01-05 08:00:00.000001", "2023-01-05 08:00:00.000001"),
            ("0001-02-03 04:05:06.5", "0001-02-03 04:05:06.500000"),
            ("9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999"),
        ] {
            assert_eq!(python_datetime(t(given)), python, "{given}");
        }
    }
}
