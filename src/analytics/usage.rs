//! Token usage per local day, ISO week or month: the legacy daily-usage report generalised.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use super::time::{self, Granularity};
use std::sync::Arc;

use super::cache::{Cached, Key, Value};
use super::{Analytics, AnalyticsError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageQuery {
    /// Inclusive local dates; either may be open.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub granularity: Granularity,
    pub timezone: Tz,
    /// Return every bucket of the range, empty ones as zeros.
    pub fill: bool,
    /// Count distinct users per bucket (the costliest figure; skipped when nobody asks).
    pub unique_users: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Local date on which the bucket starts.
    pub date: NaiveDate,
    /// The bucket's first instant, with the zone's offset at that instant.
    pub start: DateTime<FixedOffset>,
    /// Tokens used, bucketed by when they were created (the legacy definition).
    pub visits: i64,
    pub tokens_issued: i64,
    /// Distinct users with a used token in the bucket.
    pub unique_users: i64,
}

const DATA_EXTENT: &str = "SELECT MIN(created_at) AS lo, MAX(created_at) AS hi FROM tokens";

/// Buckets with their counts, in order; without `fill` the empty ones are left out.
fn assemble(
    buckets: &[time::Bucket],
    counts: HashMap<i64, (i64, i64, i64)>,
    fill: bool,
) -> Vec<UsageBucket> {
    buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let found = i64::try_from(i).ok().and_then(|i| counts.get(&i).copied());
            let (visits, tokens_issued, unique_users) = match found {
                Some(c) => c,
                None if fill => (0, 0, 0),
                None => return None,
            };
            Some(UsageBucket {
                date: b.date,
                start: b.start.fixed_offset(),
                visits,
                tokens_issued,
                unique_users,
            })
        })
        .collect()
}

/// A bucket bound as the text both backends compare timestamps with. The text form
/// holds years 1 to 9999 (PostgreSQL has no year 0; chrono writes 10000 as `+10000`):
/// bounds beyond are clamped, which loses nothing since no timestamp is stored there.
fn bound_text(t: NaiveDateTime) -> String {
    use chrono::Datelike;
    if t.year() < 1 {
        "0001-01-01 00:00:00".to_owned()
    } else if t.year() > 9999 {
        "9999-12-31 23:59:59.999999".to_owned()
    } else {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

impl Analytics {
    /// Buckets for `q`, through the report cache.
    pub async fn usage(&self, q: &UsageQuery) -> Result<Cached<Arc<Vec<UsageBucket>>>> {
        let (this, query) = (self.clone(), q.clone());
        let fetch = move || async move {
            this.fetch_usage(&query)
                .await
                .map(|b| Value::Usage(Arc::new(b)))
        };
        let cached = self.cached(Key::Usage(q.clone()), fetch).await?;
        match cached.value {
            Value::Usage(ref b) => Ok(cached.clone().map(|_| b.clone())),
            _ => Err(AnalyticsError::Internal(
                "cache entry of the wrong kind".into(),
            )),
        }
    }

    async fn fetch_usage(&self, q: &UsageQuery) -> Result<Vec<UsageBucket>> {
        time::check_order(q.from, q.to)?;
        if q.fill && (q.from.is_none() || q.to.is_none()) {
            return Err(AnalyticsError::bad_input(
                "fill",
                "fill: true needs both from and to",
            ));
        }
        let tz = q.timezone;
        let (first, last) = match (q.from, q.to) {
            (Some(f), Some(t)) => (f, t),
            (from, to) => {
                let Some((lo, hi)) = self.data_extent().await? else {
                    return Ok(Vec::new());
                };
                let local = |t: NaiveDateTime| t.and_utc().with_timezone(&tz).date_naive();
                (from.unwrap_or(local(lo)), to.unwrap_or(local(hi)))
            }
        };
        if last < first {
            return Ok(Vec::new());
        }
        let buckets = time::buckets(q.granularity, &tz, first, last, self.limits.max_buckets)?;
        let (range_lo, range_hi) = time::utc_range(&tz, Some(first), Some(last))?;
        // Clip the outer buckets to the requested range: a week starting before
        // `from` only counts tokens from `from` on.
        let fmt = bound_text;
        let bounds: Vec<[String; 2]> = buckets
            .iter()
            .map(|b| {
                let lo = range_lo.map_or(b.start.naive_utc(), |r| r.max(b.start.naive_utc()));
                let hi = range_hi.map_or(b.end.naive_utc(), |r| r.min(b.end.naive_utc()));
                [fmt(lo), fmt(hi)]
            })
            .collect();
        let json =
            serde_json::to_string(&bounds).map_err(|e| AnalyticsError::Internal(e.to_string()))?;
        let users = if q.unique_users {
            "COUNT(DISTINCT CASE WHEN t.used_at IS NOT NULL THEN t.user_id END)"
        } else {
            "CAST(0 AS bigint)"
        };
        let rows = if q.granularity == Granularity::Day && tz == chrono_tz::UTC {
            // UTC days: plain grouping by date, no bounds table to join (the legacy
            // daily-usage shape, and as fast as PostgreSQL does it).
            let day = self.dialect.utc_day("t.created_at");
            let sql = format!(
                "SELECT {day} AS day, COUNT(t.used_at) AS visits, COUNT(*) AS issued, {users} AS users \
                 FROM tokens t WHERE t.created_at >= ? AND t.created_at < ? GROUP BY {day}"
            );
            let (lo, hi) = (range_lo.unwrap_or_default(), range_hi.unwrap_or_default());
            let index: HashMap<String, i64> = buckets
                .iter()
                .enumerate()
                .map(|(i, b)| (b.date.format("%Y-%m-%d").to_string(), i as i64))
                .collect();
            let rows = self
                .all(
                    "usage_by_day",
                    self.dialect.statement(&sql, vec![lo.into(), hi.into()]),
                )
                .await?;
            let mut counts: HashMap<i64, (i64, i64, i64)> = HashMap::with_capacity(rows.len());
            for row in rows {
                let day: String = row.try_get("", "day")?;
                if let Some(i) = index.get(&day) {
                    counts.insert(
                        *i,
                        (
                            row.try_get("", "visits")?,
                            row.try_get("", "issued")?,
                            row.try_get("", "users")?,
                        ),
                    );
                }
            }
            return Ok(assemble(&buckets, counts, q.fill));
        } else {
            let sql = format!(
                "WITH bounds AS ({}) \
                 SELECT bounds.idx AS idx, COUNT(t.used_at) AS visits, COUNT(*) AS issued, {users} AS users \
                 FROM bounds JOIN tokens t ON t.created_at >= bounds.lo AND t.created_at < bounds.hi \
                 GROUP BY bounds.idx ORDER BY bounds.idx",
                self.dialect.bounds_from_json()
            );
            self.all(
                "usage_by_day",
                self.dialect.statement(&sql, vec![json.into()]),
            )
            .await?
        };
        let mut counts: HashMap<i64, (i64, i64, i64)> = HashMap::with_capacity(rows.len());
        for row in rows {
            let idx: i64 = row.try_get("", "idx")?;
            counts.insert(
                idx,
                (
                    row.try_get("", "visits")?,
                    row.try_get("", "issued")?,
                    row.try_get("", "users")?,
                ),
            );
        }
        Ok(assemble(&buckets, counts, q.fill))
    }

    /// Oldest and newest `created_at`, or `None` when there are no tokens.
    async fn data_extent(&self) -> Result<Option<(NaiveDateTime, NaiveDateTime)>> {
        let row = self
            .one("data_extent", self.dialect.statement(DATA_EXTENT, vec![]))
            .await?;
        let Some(row) = row else { return Ok(None) };
        let lo: Option<NaiveDateTime> = row.try_get("", "lo")?;
        let hi: Option<NaiveDateTime> = row.try_get("", "hi")?;
        Ok(lo.zip(hi))
    }
}
