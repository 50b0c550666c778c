//! Usage counts read from the rollups instead of `tokens`: a bucket is the sum of the whole
//! UTC days, hours and 15-minute slots it covers (`gw_usage_days`, `_hours`, `_slots`), the
//! coarsest that fit, so a year of daily buckets reads about 24 rows a bucket. Where a
//! bucket's bounds are not on a slot boundary (historic offsets such as New York's -4:56:02
//! before 1883), the slivers beyond the last whole slots are counted from raw rows, through
//! the `created_at` index.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use sea_orm::sea_query::{Alias, Condition, Expr, Query};

use super::Analytics;
use super::error::{AnalyticsError, Result};
use super::time;
use super::usage::{bound_text, clamp, counts_by_bucket, parse_day};

/// A slot's, an hour's and a day's length in microseconds.
const SLOT_MICROS: i64 = 15 * 60 * 1_000_000;
const HOUR_MICROS: i64 = 60 * 60 * 1_000_000;
const DAY_MICROS: i64 = 24 * HOUR_MICROS;
/// The table alias the day queries give `gw_usage_days`.
const D: &str = "d";

/// Counts per bucket label: (visits, tokens issued, unique users — always 0 here).
pub type Counts = HashMap<NaiveDate, (i64, i64, i64)>;

fn micros_to_time(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// The boundaries of `unit` (microseconds) at or before, and at or after, `t`.
fn floor(t: NaiveDateTime, unit: i64) -> NaiveDateTime {
    let micros = t.and_utc().timestamp_micros();
    micros_to_time(micros - micros.rem_euclid(unit)).unwrap_or(t)
}

fn ceil(t: NaiveDateTime, unit: i64) -> NaiveDateTime {
    let down = floor(t, unit);
    if down == t {
        t
    } else {
        micros_to_time(down.and_utc().timestamp_micros() + unit).unwrap_or(t)
    }
}

/// Which rollup a part of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Slot,
    Hour,
    Day,
}

/// A half-open UTC range `[lo, hi)` split into parts read from the rollups, coarsest first
/// where they fit, and the slivers off the slot grid (read from raw rows).
#[derive(Debug, Default, PartialEq, Eq)]
struct Split {
    parts: Vec<(Level, NaiveDateTime, NaiveDateTime)>,
    raw: Vec<(NaiveDateTime, NaiveDateTime)>,
}

fn split(lo: NaiveDateTime, hi: NaiveDateTime) -> Split {
    if lo >= hi {
        return Split::default();
    }
    let (a, z) = (ceil(lo, SLOT_MICROS), floor(hi, SLOT_MICROS));
    if a >= z {
        return Split {
            parts: Vec::new(),
            raw: vec![(lo, hi)],
        };
    }
    let mut parts = Vec::new();
    nest(
        &mut parts,
        a,
        z,
        &[
            (Level::Slot, SLOT_MICROS),
            (Level::Hour, HOUR_MICROS),
            (Level::Day, DAY_MICROS),
        ],
    );
    Split {
        parts,
        raw: [(lo, a), (z, hi)]
            .into_iter()
            .filter(|(x, y)| x < y)
            .collect(),
    }
}

/// `[a, z)`, on the grid of `levels[0]`, as parts of that level around the whole units of the next.
fn nest(
    parts: &mut Vec<(Level, NaiveDateTime, NaiveDateTime)>,
    a: NaiveDateTime,
    z: NaiveDateTime,
    levels: &[(Level, i64)],
) {
    let Some(&(level, _)) = levels.first() else {
        return;
    };
    let Some(&(_, coarser)) = levels.get(1) else {
        parts.push((level, a, z));
        return;
    };
    let (inner_a, inner_z) = (ceil(a, coarser), floor(z, coarser));
    if inner_a >= inner_z {
        parts.push((level, a, z));
        return;
    }
    if a < inner_a {
        parts.push((level, a, inner_a));
    }
    nest(parts, inner_a, inner_z, &levels[1..]);
    if inner_z < z {
        parts.push((level, inner_z, z));
    }
}

/// Conditions on the days rollup (`d.day`) for an optional UTC range; a day that begins
/// before `lo` but reaches into it is included.
fn day_filter(lo: Option<NaiveDateTime>, hi: Option<NaiveDateTime>) -> Condition {
    // In scope here only: its `min`/`max` would shadow `Ord`'s on dates elsewhere.
    use sea_orm::sea_query::ExprTrait;
    let day = || Expr::col((D, Alias::new("day")));
    Condition::all()
        .add_option(lo.map(|lo| day().gte(floor(clamp(lo), DAY_MICROS))))
        .add_option(hi.map(|hi| day().lt(clamp(hi))))
}

impl Analytics {
    /// Counts per UTC date in the range (bounds on UTC midnights), from the days rollup.
    pub(super) async fn slot_day_counts(
        &self,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<Counts> {
        let mut query = Query::select();
        query
            .from_as(Alias::new("gw_usage_days"), D)
            .expr_as(self.dialect.utc_day(D, "day"), "day")
            .expr_as(Expr::col((D, Alias::new("used"))), "visits")
            .expr_as(Expr::col((D, Alias::new("issued"))), "issued")
            .cond_where(day_filter(lo, hi));
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

    /// The UTC dates with tokens in the range, from the days rollup.
    pub(super) async fn slot_days_with_data(
        &self,
        lo: Option<NaiveDateTime>,
        hi: Option<NaiveDateTime>,
    ) -> Result<Vec<NaiveDate>> {
        let mut query = Query::select();
        query
            .from_as(Alias::new("gw_usage_days"), D)
            .expr_as(self.dialect.utc_day(D, "day"), "day")
            .cond_where(day_filter(lo, hi));
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
        let (mut levels, mut raw_segments) = ([Vec::new(), Vec::new(), Vec::new()], Vec::new());
        let mut off_grid = 0usize;
        for (idx, b) in buckets.iter().enumerate() {
            let lo = clamp(range_lo.map_or(b.start.naive_utc(), |r| r.max(b.start.naive_utc())));
            let hi = clamp(range_hi.map_or(b.end.naive_utc(), |r| r.min(b.end.naive_utc())));
            let parts = split(lo, hi);
            for (level, a, z) in parts.parts {
                levels[level as usize].push((idx, bound_text(a), bound_text(z)));
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
        let [slots, hours, days] = levels;
        // Only the sources with segments: an empty branch is not free, since the planner
        // costs the raw one as a join on `tokens` and then plans the whole query in parallel
        // (worker start-up was most of a 90 ms New York DAY answer at 10M tokens).
        let level = |source: &'static str, table: &str, column: &str| {
            format!(
                "SELECT {source}.idx AS idx, r.used AS visits, r.issued AS issued \
                 FROM {source} JOIN {table} r ON r.{column} >= {source}.lo AND r.{column} < {source}.hi"
            )
        };
        let branches = [
            ("ss", &slots, level("ss", "gw_usage_slots", "slot")),
            ("hs", &hours, level("hs", "gw_usage_hours", "hour")),
            ("ds", &days, level("ds", "gw_usage_days", "day")),
            (
                "rs",
                &raw_segments,
                "SELECT rs.idx AS idx, COUNT(t.used_at) AS visits, COUNT(*) AS issued \
                 FROM rs JOIN tokens t ON t.created_at >= rs.lo AND t.created_at < rs.hi \
                 GROUP BY rs.idx"
                    .to_owned(),
            ),
        ];
        let branches: Vec<_> = branches
            .into_iter()
            .filter(|(_, segments, _)| !segments.is_empty())
            .collect();
        if branches.is_empty() {
            return Ok(HashMap::new());
        }
        // Joins on row sources from JSON: beyond the query builder, so written by hand.
        let mut sql = self.dialect.raw();
        for (i, (name, segments, _)) in branches.iter().enumerate() {
            sql.push(if i == 0 { "WITH " } else { ", " })
                .push(name)
                .push(" AS (");
            self.dialect.segments_from_json(&mut sql, json(segments)?);
            sql.push(")");
        }
        sql.push(
            " SELECT x.idx AS idx, CAST(SUM(x.visits) AS BIGINT) AS visits, \
             CAST(SUM(x.issued) AS BIGINT) AS issued FROM (",
        );
        for (i, (_, _, select)) in branches.iter().enumerate() {
            sql.push(if i == 0 { " " } else { " UNION ALL " })
                .push(select);
        }
        sql.push(" ) x GROUP BY x.idx HAVING SUM(x.issued) > 0");
        let rows = self.all("usage_by_day_rollup", sql.finish()).await?;
        counts_by_bucket(&rows, buckets, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
    }

    #[test]
    fn ranges_split_into_days_hours_slots_and_raw_slivers() {
        use Level::{Day, Hour, Slot};
        // A New York day in winter: hours around no whole day.
        assert_eq!(
            split(t("2024-01-01 05:00:00"), t("2024-01-02 05:00:00")),
            Split {
                parts: vec![(Hour, t("2024-01-01 05:00:00"), t("2024-01-02 05:00:00"))],
                raw: vec![],
            }
        );
        // Kathmandu's +5:45 week: slots, hours, whole days, hours, slots.
        assert_eq!(
            split(t("2024-01-07 18:15:00"), t("2024-01-14 18:15:00")).parts,
            vec![
                (Slot, t("2024-01-07 18:15:00"), t("2024-01-07 19:00:00")),
                (Hour, t("2024-01-07 19:00:00"), t("2024-01-08 00:00:00")),
                (Day, t("2024-01-08 00:00:00"), t("2024-01-14 00:00:00")),
                (Hour, t("2024-01-14 00:00:00"), t("2024-01-14 18:00:00")),
                (Slot, t("2024-01-14 18:00:00"), t("2024-01-14 18:15:00")),
            ]
        );
        // New York's local mean time (-4:56:02): raw slivers at both ends.
        let lmt = split(t("1880-01-01 04:56:02"), t("1880-01-02 04:56:02"));
        assert_eq!(
            lmt.raw,
            vec![
                (t("1880-01-01 04:56:02"), t("1880-01-01 05:00:00")),
                (t("1880-01-02 04:45:00"), t("1880-01-02 04:56:02")),
            ]
        );
        assert_eq!(
            lmt.parts.first(),
            Some(&(Hour, t("1880-01-01 05:00:00"), t("1880-01-02 04:00:00")))
        );
        assert_eq!(
            lmt.parts.last(),
            Some(&(Slot, t("1880-01-02 04:00:00"), t("1880-01-02 04:45:00")))
        );
        // Every split covers its range exactly, without overlap.
        for (lo, hi) in [
            ("2024-01-01 05:00:00", "2024-01-02 05:00:00"),
            ("1880-01-01 04:56:02", "1880-03-01 04:56:02"),
            ("2023-12-31 23:59:59.5", "2024-02-01 00:00:00.25"),
        ] {
            let parts = split(t(lo), t(hi));
            let mut pieces: Vec<_> = parts
                .parts
                .iter()
                .map(|(_, a, z)| (*a, *z))
                .chain(parts.raw)
                .collect();
            pieces.sort();
            assert_eq!(pieces.first().map(|p| p.0), Some(t(lo)));
            assert_eq!(pieces.last().map(|p| p.1), Some(t(hi)));
            assert!(
                pieces.windows(2).all(|w| w[0].1 == w[1].0),
                "{lo}..{hi}: {pieces:?}"
            );
        }
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
            floor(t("1969-12-31 23:59:59.9"), SLOT_MICROS),
            t("1969-12-31 23:45:00")
        );
        assert_eq!(
            ceil(t("1969-12-31 23:45:00.1"), SLOT_MICROS),
            t("1970-01-01 00:00:00")
        );
    }
}
