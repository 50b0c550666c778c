//! Token usage per local day, ISO week or month: the legacy daily-usage report generalised.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use entity::tokens;
use sea_orm::sea_query::{Asterisk, Condition, Expr, Func, Query, SelectStatement};

use std::mem::size_of;
use std::sync::Arc;

use super::Analytics;
use super::cache::Cached;
use super::error::{AnalyticsError, Result};
use super::reports::Report;
use super::time::{self, Granularity};

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

impl Report for Vec<UsageBucket> {
    type Key = UsageQuery;
    const NAME: &'static str = "usage";
    /// The vector's whole capacity (buckets are plain data, no strings).
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<UsageBucket>()
    }
}

/// Request data that lifts `MAX_BUCKETS` for a call (the legacy REST report: it lists
/// every day with data, as the legacy app did, whatever the span). Without it the bucket
/// limit applies to what a call returns: see [`check_returned`].
#[derive(Debug, Clone, Copy)]
pub struct NoBucketLimit;

fn unit(g: Granularity) -> &'static str {
    match g {
        Granularity::Day => "day",
        Granularity::Week => "week",
        Granularity::Month => "month",
    }
}

/// The bucket limit on an answer of `returned` buckets without `fill` (filled ranges are
/// checked before any query). The error names an argument the caller can change:
/// `to` if it was sent, else `from` if it was sent, else `from` as the one to add.
pub fn check_returned(q: &UsageQuery, returned: usize, max: usize) -> Result<()> {
    if returned <= max {
        return Ok(());
    }
    let unit = unit(q.granularity);
    let (argument, hint) = match (q.from, q.to) {
        (_, Some(_)) => ("to", "ask for a shorter from..to range at a time"),
        (Some(_), None) => ("from", "add to, or ask for a shorter range at a time"),
        (None, None) => ("from", "add from and to to ask for one range at a time"),
    };
    Err(AnalyticsError::bad_input(
        argument,
        format!(
            "{returned} {unit}s have data, more than the {max} buckets (MAX_BUCKETS) one answer may hold; {hint}, or use a coarser granularity"
        ),
    ))
}

/// Buckets with their counts (keyed by bucket label), in order; without `fill` the
/// empty ones are left out.
fn assemble(
    buckets: &[time::Bucket],
    counts: &HashMap<NaiveDate, (i64, i64, i64)>,
    fill: bool,
) -> Vec<UsageBucket> {
    buckets
        .iter()
        .filter_map(|b| {
            let (visits, tokens_issued, unique_users) = match counts.get(&b.date) {
                Some(c) => *c,
                None if fill => (0, 0, 0),
                None => return None,
            };
            Some(UsageBucket {
                date: b.date,
                start: time::rfc3339_instant(b.start),
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
pub(super) fn bound_text(t: NaiveDateTime) -> String {
    clamp(t).format("%Y-%m-%d %H:%M:%S%.f").to_string()
}

/// `t` within years 1 to 9999, the range both backends compare correctly.
pub(super) fn clamp(t: NaiveDateTime) -> NaiveDateTime {
    use chrono::Datelike;
    if t.year() < 1 {
        NaiveDate::from_ymd_opt(1, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or(t)
    } else if t.year() > 9999 {
        NaiveDate::from_ymd_opt(9999, 12, 31)
            .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
            .unwrap_or(t)
    } else {
        t
    }
}

/// Counts keyed by bucket label from rows of `idx` (the bucket's index), `visits`, `issued`
/// and, with `users`, `users` (else 0).
pub(super) fn counts_by_bucket(
    rows: &[sea_orm::QueryResult],
    buckets: &[time::Bucket],
    users: bool,
) -> Result<HashMap<NaiveDate, (i64, i64, i64)>> {
    let mut counts = HashMap::with_capacity(rows.len());
    for row in rows {
        let idx: i64 = row.try_get("", "idx")?;
        let Some(bucket) = usize::try_from(idx).ok().and_then(|i| buckets.get(i)) else {
            return Err(AnalyticsError::Internal(format!("bucket index {idx}")));
        };
        let unique = if users { row.try_get("", "users")? } else { 0 };
        counts.insert(
            bucket.date,
            (
                row.try_get("", "visits")?,
                row.try_get("", "issued")?,
                unique,
            ),
        );
    }
    Ok(counts)
}

/// The table alias the usage queries give `tokens`.
const T: &str = "t";

/// Conditions on `t.created_at` for an optional half-open UTC range (none: every row).
fn range_filter(lo: Option<NaiveDateTime>, hi: Option<NaiveDateTime>) -> Condition {
    // In scope here only: its `min`/`max` would shadow `Ord`'s on dates elsewhere.
    use sea_orm::sea_query::ExprTrait;
    let created = || Expr::col((T, tokens::Column::CreatedAt));
    Condition::all()
        .add_option(lo.map(|lo| created().gte(clamp(lo))))
        .add_option(hi.map(|hi| created().lt(clamp(hi))))
}

/// `SELECT … FROM tokens t WHERE <range>`, to add columns to.
fn tokens_in(lo: Option<NaiveDateTime>, hi: Option<NaiveDateTime>) -> SelectStatement {
    let mut query = Query::select();
    query
        .from_as(tokens::Entity, T)
        .cond_where(range_filter(lo, hi));
    query
}

/// A `YYYY-MM-DD` day from the database; `None` (logged) for a date outside what the
/// text form holds, which is then left out rather than failing the whole answer.
pub(super) fn parse_day(day: &str) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok();
    if parsed.is_none() {
        tracing::warn!(day = %time::truncate(day, 40), "skipped a token day outside years 1 to 9999");
    }
    parsed
}

impl Analytics {
    /// Buckets for `q`, through the report cache.
    pub async fn usage(&self, q: &UsageQuery) -> Result<Cached<Arc<Vec<UsageBucket>>>> {
        let (this, query) = (self.clone(), q.clone());
        let fetch = move || async move { this.fetch_usage(&query).await };
        self.cached(q.clone(), fetch).await
    }

    async fn fetch_usage(&self, q: &UsageQuery) -> Result<Vec<UsageBucket>> {
        time::check_order(q.from, q.to)?;
        // Visits and tokens issued come from the slot rollup, current as of this fold (which
        // also lists the days with data); distinct users need the raw rows of the range.
        self.fold_rollups().await?;
        let rollup = !q.unique_users;
        let (g, tz) = (q.granularity, q.timezone);
        let max = self.limits.max_buckets;
        let (range_lo, range_hi) = time::utc_range(&tz, q.from, q.to)?;
        let utc_days = g == Granularity::Day && tz == chrono_tz::UTC;
        if q.fill {
            let (Some(first), Some(last)) = (q.from, q.to) else {
                return Err(AnalyticsError::bad_input(
                    "fill",
                    "filling empty buckets needs both from and to",
                ));
            };
            let n = time::bucket_count(g, first, last);
            if n > max as u64 {
                return Err(AnalyticsError::bad_input(
                    "to",
                    format!(
                        "the range {first}..{last} spans {n} {}s, more than the {max} buckets (MAX_BUCKETS) fill may return; narrow from/to or use a coarser granularity",
                        unit(g)
                    ),
                ));
            }
            let buckets = time::buckets(g, &tz, first, last, max)?;
            let counts = match (utc_days, rollup) {
                (true, true) => self.slot_day_counts(range_lo, range_hi).await?,
                (true, false) => self.utc_day_counts(q, range_lo, range_hi).await?,
                (false, true) => {
                    self.slot_bucket_counts(&buckets, range_lo, range_hi)
                        .await?
                }
                (false, false) => self.bucket_counts(q, &buckets, range_lo, range_hi).await?,
            };
            return Ok(assemble(&buckets, &counts, true));
        }
        // Without fill the answer holds the buckets with data, however far apart they are:
        // the span is never enumerated beyond MAX_BUCKETS labels.
        if utc_days {
            let counts = if rollup {
                self.slot_day_counts(range_lo, range_hi).await?
            } else {
                self.utc_day_counts(q, range_lo, range_hi).await?
            };
            let buckets = time::buckets_at(g, &tz, counts.keys().copied())?;
            return Ok(assemble(&buckets, &counts, false));
        }
        let Some((lo, hi)) = self.data_extent(range_lo, range_hi).await? else {
            return Ok(Vec::new());
        };
        let local = |t: NaiveDateTime| t.and_utc().with_timezone(&tz).date_naive();
        let first = q.from.map_or(local(lo), |f| f.max(local(lo)));
        // The newest row may lie in the next label's bucket where a zone turns its clocks
        // back over midnight: one label more, left out again when empty.
        let after_hi = local(hi).succ_opt().unwrap_or(local(hi));
        let last = q.to.map_or(after_hi, |t| t.min(after_hi));
        if last < first {
            return Ok(Vec::new());
        }
        let buckets = if time::bucket_count(g, first, last) <= max as u64 {
            time::buckets(g, &tz, first, last, max)?
        } else {
            // A long, sparse span: only the labels around the UTC days that have data
            // (a UTC day lies within the local dates one day either side of it).
            let days = self.slot_days_with_data(range_lo, range_hi).await?;
            let labels = days
                .into_iter()
                .flat_map(|u| [u.pred_opt(), Some(u), u.succ_opt()])
                .flatten()
                .filter(|d| (first..=last).contains(d));
            time::buckets_at(g, &tz, labels)?
        };
        let counts = if rollup {
            self.slot_bucket_counts(&buckets, range_lo, range_hi)
                .await?
        } else {
            self.bucket_counts(q, &buckets, range_lo, range_hi).await?
        };
        Ok(assemble(&buckets, &counts, false))
    }

    fn users_column(q: &UsageQuery) -> &'static str {
        if q.unique_users {
            "COUNT(DISTINCT CASE WHEN t.used_at IS NOT NULL THEN t.user_id END)"
        } else {
            "CAST(0 AS bigint)"
        }
    }

    /// Counts per UTC date in the range: plain grouping by date, no bounds table to join
    /// (the legacy daily-usage shape, and as fast as PostgreSQL does it).
    async fn utc_day_counts(
        &self,
        q: &UsageQuery,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<HashMap<NaiveDate, (i64, i64, i64)>> {
        let day = self.dialect.utc_day(T, "created_at");
        let mut query = tokens_in(lo, hi);
        query
            .expr_as(day.clone(), "day")
            .expr_as(
                Func::count(Expr::col((T, tokens::Column::UsedAt))),
                "visits",
            )
            .expr_as(Func::count(Expr::col(Asterisk)), "issued")
            .expr_as(Expr::cust(Self::users_column(q)), "users")
            .add_group_by([day]);
        let rows = self.all("usage_by_day", self.dialect.build(&query)).await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let day: String = row.try_get("", "day")?;
            if let Some(date) = parse_day(&day) {
                counts.insert(
                    date,
                    (
                        row.try_get("", "visits")?,
                        row.try_get("", "issued")?,
                        row.try_get("", "users")?,
                    ),
                );
            }
        }
        Ok(counts)
    }

    /// Counts per bucket, each clipped to the range: a week starting before `from`
    /// only counts tokens from `from` on.
    async fn bucket_counts(
        &self,
        q: &UsageQuery,
        buckets: &[time::Bucket],
        range_lo: Option<NaiveDateTime>,
        range_hi: Option<NaiveDateTime>,
    ) -> Result<HashMap<NaiveDate, (i64, i64, i64)>> {
        if buckets.is_empty() {
            return Ok(HashMap::new());
        }
        let bounds: Vec<[String; 2]> = buckets
            .iter()
            .map(|b| {
                let lo = range_lo.map_or(b.start.naive_utc(), |r| r.max(b.start.naive_utc()));
                let hi = range_hi.map_or(b.end.naive_utc(), |r| r.min(b.end.naive_utc()));
                [bound_text(lo), bound_text(hi)]
            })
            .collect();
        let json =
            serde_json::to_string(&bounds).map_err(|e| AnalyticsError::Internal(e.to_string()))?;
        // A join on a row source from JSON: beyond the query builder, so written by hand.
        let mut sql = self.dialect.raw();
        sql.push("WITH bounds AS (");
        self.dialect.bounds_from_json(&mut sql, json);
        sql.push(") SELECT bounds.idx AS idx, COUNT(t.used_at) AS visits, COUNT(*) AS issued, ")
            .push(Self::users_column(q))
            .push(
                " AS users \
             FROM bounds JOIN tokens t ON t.created_at >= bounds.lo AND t.created_at < bounds.hi \
             GROUP BY bounds.idx ORDER BY bounds.idx",
            );
        let rows = self.all("usage_by_day", sql.finish()).await?;
        counts_by_bucket(&rows, buckets, true)
    }

    /// Oldest and newest `created_at` within the range, or `None` when there are no tokens.
    async fn data_extent(
        &self,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<Option<(NaiveDateTime, NaiveDateTime)>> {
        let created = || Expr::col((T, tokens::Column::CreatedAt));
        let mut query = tokens_in(lo, hi);
        query
            .expr_as(Func::min(created()), "lo")
            .expr_as(Func::max(created()), "hi");
        let row = self.one("data_extent", self.dialect.build(&query)).await?;
        let Some(row) = row else { return Ok(None) };
        let lo: Option<NaiveDateTime> = row.try_get("", "lo")?;
        let hi: Option<NaiveDateTime> = row.try_get("", "hi")?;
        Ok(lo.zip(hi))
    }
}
