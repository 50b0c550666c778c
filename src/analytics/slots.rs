//! Usage counts read from the 15-minute slot rollup (`gw_usage_slots`) instead of `tokens`:
//! a bucket is the sum of the slots it covers. Where a bucket's bounds are not on a slot
//! boundary (historic offsets such as New York's -4:56:02 before 1883), the slivers beyond
//! the last whole slots are counted from raw rows, through the `created_at` index.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use sea_orm::sea_query::{Alias, Condition, Expr, Query};

use super::Analytics;
use super::error::{AnalyticsError, Result};
use super::time;
use super::usage::{bound_text, clamp, parse_day};

/// A slot's length in microseconds.
const SLOT_MICROS: i64 = 15 * 60 * 1_000_000;
/// The table alias the slot queries give `gw_usage_slots`.
const S: &str = "s";

/// Counts per bucket label: (visits, tokens issued, unique users — always 0 here).
pub type Counts = HashMap<NaiveDate, (i64, i64, i64)>;

fn micros_to_time(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// The slot boundaries at or before and at or after `t`.
fn slot_floor(t: NaiveDateTime) -> NaiveDateTime {
    let micros = t.and_utc().timestamp_micros();
    micros_to_time(micros - micros.rem_euclid(SLOT_MICROS)).unwrap_or(t)
}

fn slot_ceil(t: NaiveDateTime) -> NaiveDateTime {
    let floor = slot_floor(t);
    if floor == t {
        t
    } else {
        micros_to_time(floor.and_utc().timestamp_micros() + SLOT_MICROS).unwrap_or(t)
    }
}

/// A half-open UTC range `[lo, hi)` split into whole slots (read from the rollup) and the
/// slivers before and after them (read from raw rows).
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    slots: Option<(NaiveDateTime, NaiveDateTime)>,
    raw: Vec<(NaiveDateTime, NaiveDateTime)>,
}

fn split(lo: NaiveDateTime, hi: NaiveDateTime) -> Split {
    if lo >= hi {
        return Split::default();
    }
    let (first, last) = (slot_ceil(lo), slot_floor(hi));
    if first >= last {
        return Split {
            slots: None,
            raw: vec![(lo, hi)],
        };
    }
    Split {
        slots: Some((first, last)),
        raw: [(lo, first), (last, hi)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect(),
    }
}

/// Conditions on `s.slot` for an optional UTC range; slots that begin before `lo` but
/// reach into it are included (for listing the days with data).
fn slot_filter(lo: Option<NaiveDateTime>, hi: Option<NaiveDateTime>) -> Condition {
    // In scope here only: its `min`/`max` would shadow `Ord`'s on dates elsewhere.
    use sea_orm::sea_query::ExprTrait;
    let slot = || Expr::col((S, Alias::new("slot")));
    Condition::all()
        .add_option(lo.map(|lo| slot().gte(slot_floor(clamp(lo)))))
        .add_option(hi.map(|hi| slot().lt(clamp(hi))))
}

impl Analytics {
    /// Counts per UTC date in the range (bounds on UTC midnights), summed from the slots.
    pub(super) async fn slot_day_counts(
        &self,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<Counts> {
        let day = self.dialect.utc_day(S, "slot");
        let mut query = Query::select();
        query
            .from_as(Alias::new("gw_usage_slots"), S)
            .expr_as(day.clone(), "day")
            .expr_as(Expr::cust("CAST(SUM(s.used) AS BIGINT)"), "visits")
            .expr_as(Expr::cust("CAST(SUM(s.issued) AS BIGINT)"), "issued")
            .cond_where(slot_filter(lo, hi))
            .add_group_by([day]);
        let rows = self
            .all("usage_by_day_rollup", self.dialect.build(&query))
            .await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let day: String = row.try_get("", "day")?;
            if let Some(date) = parse_day(&day) {
                counts.insert(
                    date,
                    (row.try_get("", "visits")?, row.try_get("", "issued")?, 0),
                );
            }
        }
        Ok(counts)
    }

    /// The UTC dates with tokens in the range, from the slots.
    pub(super) async fn slot_days_with_data(
        &self,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<Vec<NaiveDate>> {
        let day = self.dialect.utc_day(S, "slot");
        let mut query = Query::select();
        query
            .from_as(Alias::new("gw_usage_slots"), S)
            .expr_as(day.clone(), "day")
            .cond_where(slot_filter(lo, hi))
            .add_group_by([day]);
        let rows = self.all("usage_days", self.dialect.build(&query)).await?;
        let mut days = Vec::with_capacity(rows.len());
        for row in rows {
            let day: String = row.try_get("", "day")?;
            days.extend(parse_day(&day));
        }
        Ok(days)
    }

    /// Counts per bucket, each clipped to the range, summed from the slots it covers plus,
    /// for bounds off the slot grid, the raw rows of the slivers left over.
    pub(super) async fn slot_bucket_counts(
        &self,
        buckets: &[time::Bucket],
        range_lo: Option<NaiveDateTime>,
        range_hi: Option<NaiveDateTime>,
    ) -> Result<Counts> {
        if buckets.is_empty() {
            return Ok(HashMap::new());
        }
        let (mut slot_segments, mut raw_segments) = (Vec::new(), Vec::new());
        let mut off_grid = 0usize;
        for (idx, b) in buckets.iter().enumerate() {
            let lo = clamp(range_lo.map_or(b.start.naive_utc(), |r| r.max(b.start.naive_utc())));
            let hi = clamp(range_hi.map_or(b.end.naive_utc(), |r| r.min(b.end.naive_utc())));
            let parts = split(lo, hi);
            if let Some((a, z)) = parts.slots {
                slot_segments.push((idx, bound_text(a), bound_text(z)));
            }
            if !parts.raw.is_empty() {
                off_grid += 1;
            }
            raw_segments.extend(
                parts
                    .raw
                    .into_iter()
                    .map(|(a, z)| (idx, bound_text(a), bound_text(z))),
            );
        }
        if off_grid > 0 {
            let first = buckets
                .first()
                .map(|b| b.date.to_string())
                .unwrap_or_default();
            self.raw_fallback(
                "unaligned_offset",
                off_grid,
                &format!("bucket bounds off the 15-minute UTC grid (first bucket {first})"),
            );
        }
        let json = |segments: &Vec<(usize, String, String)>| {
            serde_json::to_string(segments).map_err(|e| AnalyticsError::Internal(e.to_string()))
        };
        let (slots_json, raw_json) = (json(&slot_segments)?, json(&raw_segments)?);
        // Joins on row sources from JSON: beyond the query builder, so written by hand.
        let mut sql = self.dialect.raw();
        sql.push("WITH ss AS (");
        self.dialect.segments_from_json(&mut sql, slots_json);
        sql.push("), rs AS (");
        self.dialect.segments_from_json(&mut sql, raw_json);
        sql.push(
            ") SELECT x.idx AS idx, CAST(SUM(x.visits) AS BIGINT) AS visits, \
             CAST(SUM(x.issued) AS BIGINT) AS issued FROM ( \
               SELECT ss.idx AS idx, s.used AS visits, s.issued AS issued \
               FROM ss JOIN gw_usage_slots s ON s.slot >= ss.lo AND s.slot < ss.hi \
               UNION ALL \
               SELECT rs.idx AS idx, COUNT(t.used_at) AS visits, COUNT(*) AS issued \
               FROM rs JOIN tokens t ON t.created_at >= rs.lo AND t.created_at < rs.hi \
               GROUP BY rs.idx \
             ) x GROUP BY x.idx HAVING SUM(x.issued) > 0",
        );
        let rows = self.all("usage_by_day_rollup", sql.finish()).await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let idx: i64 = row.try_get("", "idx")?;
            let Some(bucket) = usize::try_from(idx).ok().and_then(|i| buckets.get(i)) else {
                return Err(AnalyticsError::Internal(format!("bucket index {idx}")));
            };
            counts.insert(
                bucket.date,
                (row.try_get("", "visits")?, row.try_get("", "issued")?, 0),
            );
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
    }

    #[test]
    fn ranges_split_into_whole_slots_and_raw_slivers() {
        // On the grid: slots only.
        assert_eq!(
            split(t("2024-01-01 05:00:00"), t("2024-01-02 05:00:00")),
            Split {
                slots: Some((t("2024-01-01 05:00:00"), t("2024-01-02 05:00:00"))),
                raw: vec![],
            }
        );
        // New York's local mean time (-4:56:02): slivers at both ends.
        assert_eq!(
            split(t("1880-01-01 04:56:02"), t("1880-01-02 04:56:02")),
            Split {
                slots: Some((t("1880-01-01 05:00:00"), t("1880-01-02 04:45:00"))),
                raw: vec![
                    (t("1880-01-01 04:56:02"), t("1880-01-01 05:00:00")),
                    (t("1880-01-02 04:45:00"), t("1880-01-02 04:56:02")),
                ],
            }
        );
        // Inside one slot: raw only; empty: nothing.
        assert_eq!(
            split(t("2024-01-01 05:01:00"), t("2024-01-01 05:14:59.5")).raw,
            vec![(t("2024-01-01 05:01:00"), t("2024-01-01 05:14:59.5"))]
        );
        assert_eq!(
            split(t("2024-01-01 05:00:00"), t("2024-01-01 05:00:00")),
            Split::default()
        );
        // Before 1970 the grid still holds (floor, not truncation toward zero).
        assert_eq!(
            slot_floor(t("1969-12-31 23:59:59.9")),
            t("1969-12-31 23:45:00")
        );
        assert_eq!(
            slot_ceil(t("1969-12-31 23:45:00.1")),
            t("1970-01-01 00:00:00")
        );
    }
}
