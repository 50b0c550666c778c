//! Calendar arithmetic in the caller's time zone: local midnights as UTC instants, buckets, ranges.

use chrono::{
    DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, NaiveDateTime, Offset, TimeZone,
};
use chrono_tz::Tz;

use super::error::{AnalyticsError, Result};

/// An IANA zone name, spelled exactly (`"UTC "` or `"europe/berlin"` is refused, with the
/// right spelling suggested when the text is a name up to case, spaces and underscores).
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        let shown = format!("{:?}", truncate(name, 64));
        let message = match suggest_timezone(name) {
            Some(right) => format!(
                "unknown time zone {shown}: zone names are exact IANA names; did you mean \"{}\"?",
                right.name()
            ),
            None => format!(
                "unknown time zone {shown}: use an exact IANA name such as UTC, Europe/Berlin or America/New_York"
            ),
        };
        AnalyticsError::bad_input("timezone", message)
    })
}

/// The zone whose name `text` is once trimmed, compared without case and with spaces
/// read as underscores; only used to word an error.
pub fn suggest_timezone(text: &str) -> Option<Tz> {
    let wanted: String = text.trim().replace(' ', "_");
    if wanted.is_empty() || wanted.len() > 64 {
        return None;
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .copied()
        .find(|tz| tz.name().eq_ignore_ascii_case(&wanted))
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
            format!("{t} is before from ({f})"),
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

/// How many bucket labels the local dates `first..=last` span (0 when `last < first`).
pub fn bucket_count(granularity: Granularity, first: NaiveDate, last: NaiveDate) -> u64 {
    if last < first {
        return 0;
    }
    let (a, b) = (
        granularity.bucket_start(first),
        granularity.bucket_start(last),
    );
    let n = match granularity {
        Granularity::Day => (b - a).num_days(),
        Granularity::Week => (b - a).num_days() / 7,
        Granularity::Month => {
            let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            months(b) - months(a)
        }
    };
    u64::try_from(n).unwrap_or(0).saturating_add(1)
}

/// Buckets covering the local dates `first..=last`, refusing more than `cap` labels.
/// A label whose every local date the zone skipped (Pacific/Apia's 2011-12-30) holds no
/// instant and is left out: starts are unique and strictly increasing.
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
                    "the range {first}..{last} needs more than {cap} buckets (MAX_BUCKETS); narrow from/to or use a coarser granularity"
                ),
            ));
        }
        if next > last {
            break;
        }
    }
    dates.pop();
    buckets_at(granularity, tz, dates)
}

/// The buckets labelled `labels` (bucket start dates, in any order, repeats allowed),
/// ascending; labels that hold no instant are left out.
pub fn buckets_at(
    granularity: Granularity,
    tz: &Tz,
    labels: impl IntoIterator<Item = NaiveDate>,
) -> Result<Vec<Bucket>> {
    let mut labels: Vec<NaiveDate> = labels
        .into_iter()
        .map(|d| granularity.bucket_start(d))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let mut out = Vec::with_capacity(labels.len());
    for date in labels {
        let end_date = granularity
            .next(date)
            .ok_or_else(|| AnalyticsError::bad_input("to", "date is out of range"))?;
        let start = local_day_start(tz, date)?;
        let end = local_day_start(tz, end_date)?;
        if start < end {
            out.push(Bucket { date, start, end });
        }
    }
    Ok(out)
}

/// `t` as RFC 3339 can write it, denoting exactly the same instant. RFC 3339 offsets are
/// whole minutes; a historic offset with seconds (Asia/Kathmandu's +05:41:16 before 1920)
/// is rounded up to the next minute and the local time moved by the same seconds, so
/// `local - offset` is still `t` and the local date is still the bucket's date.
pub fn rfc3339_instant(t: DateTime<Tz>) -> DateTime<FixedOffset> {
    let seconds = t.offset().fix().local_minus_utc();
    let minutes = seconds.div_euclid(60) + i32::from(seconds.rem_euclid(60) != 0);
    let offset = FixedOffset::east_opt(minutes * 60).unwrap_or_else(|| t.offset().fix());
    t.with_timezone(&offset)
}
