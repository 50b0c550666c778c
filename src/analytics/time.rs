//! Calendar arithmetic in the caller's time zone: local midnights as UTC instants, buckets, ranges.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use super::{AnalyticsError, Result};

pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.trim().parse::<Tz>().map_err(|_| {
        AnalyticsError::bad_input(
            "timezone",
            format!("unknown time zone '{}': use an IANA name such as UTC, Europe/Berlin or America/New_York", truncate(name, 64)),
        )
    })
}

/// Clips caller text echoed back in an error message.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// The first instant of `date` in `tz`. Midnight may be skipped by a DST jump
/// (then the day starts at the first valid local time) or happen twice (the earlier one).
pub fn local_day_start(tz: &Tz, date: NaiveDate) -> Result<DateTime<Tz>> {
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .ok_or_else(|| AnalyticsError::Internal("midnight".into()))?;
    if let Some(instant) = tz.from_local_datetime(&midnight).earliest() {
        return Ok(instant);
    }
    // Midnight was skipped: find the first valid local time in coarse steps, then
    // the exact second the clocks jumped (some historical offsets are not whole
    // quarter hours, e.g. Africa/Monrovia's -0:44:30).
    for minutes in (15..=24 * 60).step_by(15) {
        let local = midnight + chrono::Duration::minutes(minutes);
        if let Some(found) = tz.from_local_datetime(&local).earliest() {
            let on_date = |secs: i64| {
                DateTime::from_timestamp(secs, 0)
                    .is_some_and(|t| t.with_timezone(tz).date_naive() >= date)
            };
            let (mut before, mut after) = (found.timestamp() - 15 * 60, found.timestamp());
            while after - before > 1 {
                let mid = before + (after - before) / 2;
                if on_date(mid) {
                    after = mid;
                } else {
                    before = mid;
                }
            }
            return DateTime::from_timestamp(after, 0)
                .map(|t| t.with_timezone(tz))
                .ok_or_else(|| {
                    AnalyticsError::bad_input(
                        "timezone",
                        format!("no day start for {date} in {tz}"),
                    )
                });
        }
    }
    Err(AnalyticsError::bad_input(
        "timezone",
        format!("no local midnight for {date} in {tz}"),
    ))
}

fn next_day(date: NaiveDate, argument: &'static str) -> Result<NaiveDate> {
    date.checked_add_days(Days::new(1))
        .ok_or_else(|| AnalyticsError::bad_input(argument, "date is out of range"))
}

/// Inclusive local dates as a half-open UTC range `[start, end)`; either side may be open.
pub fn utc_range(
    tz: &Tz,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<(Option<NaiveDateTime>, Option<NaiveDateTime>)> {
    check_order(from, to)?;
    let start = from
        .map(|d| local_day_start(tz, d).map(|t| t.naive_utc()))
        .transpose()?;
    let end = match to {
        Some(d) => Some(local_day_start(tz, next_day(d, "to")?)?.naive_utc()),
        None => None,
    };
    Ok((start, end))
}

pub fn check_order(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Result<()> {
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(AnalyticsError::bad_input(
            "to",
            format!("to ({t}) is before from ({f})"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Granularity {
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
}

impl Granularity {
    /// The local date on which the bucket holding `date` starts.
    pub fn bucket_start(self, date: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => date,
            Self::Week => date
                .checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
                .unwrap_or(NaiveDate::MIN),
            Self::Month => date.with_day(1).unwrap_or(date),
        }
    }

    fn next(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Self::Day => start.checked_add_days(Days::new(1)),
            Self::Week => start.checked_add_days(Days::new(7)),
            Self::Month => start.checked_add_months(Months::new(1)),
        }
    }
}

/// One bucket: its local start date and the UTC instants `[start, end)` it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub date: NaiveDate,
    pub start: DateTime<Tz>,
    pub end: DateTime<Tz>,
}

/// Buckets covering the local dates `first..=last`, refusing more than `cap`.
pub fn buckets(
    granularity: Granularity,
    tz: &Tz,
    first: NaiveDate,
    last: NaiveDate,
    cap: usize,
) -> Result<Vec<Bucket>> {
    let mut dates = vec![granularity.bucket_start(first)];
    while let Some(&current) = dates.last() {
        let next = granularity
            .next(current)
            .ok_or_else(|| AnalyticsError::bad_input("to", "date is out of range"))?;
        dates.push(next);
        // `dates` holds one more entry than there are buckets: the end of the last one.
        if dates.len() - 1 > cap {
            return Err(AnalyticsError::bad_input(
                "to",
                format!(
                    "the range {first}..{last} needs more than {cap} buckets; narrow from/to or use a coarser granularity"
                ),
            ));
        }
        if next > last {
            break;
        }
    }
    let starts = dates
        .iter()
        .map(|d| local_day_start(tz, *d))
        .collect::<Result<Vec<_>>>()?;
    Ok(dates
        .iter()
        .zip(starts.windows(2))
        .map(|(date, pair)| Bucket {
            date: *date,
            start: pair[0],
            end: pair[1],
        })
        .collect())
}
