//! Test data and independent reference answers computed from raw rows in plain Rust.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use entity::{tokens, users};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|_| panic!("bad timestamp {s}"))
}

pub fn user(id: i32, joined_at: &str, is_active: bool) -> users::Model {
    users::Model {
        id,
        first_name: format!("First{id}"),
        last_name: format!("Last{id}"),
        joined_at: ts(joined_at),
        is_active,
    }
}

pub fn token(id: i32, user_id: i32, created_at: &str, used_at: Option<&str>) -> tokens::Model {
    tokens::Model {
        id,
        user_id,
        token: format!("{:06}", id % 1_000_000),
        created_at: ts(created_at),
        used_at: used_at.map(ts),
    }
}

/// Random users and tokens around a year end, with microsecond timestamps, some whole
/// seconds, users without tokens and ids above 9.
/// `random_dataset` plus user 500, whose one used token is from 2012: beside the
/// data from 2022-12/2023-01, a span of over 3,660 days.
pub fn with_a_token_from_2012(
    seed: u64,
    n_users: i32,
    n_tokens: i32,
) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let (mut users, mut tokens) = random_dataset(seed, n_users, n_tokens);
    users.push(user(500, "2011-01-01 00:00:00", true));
    tokens.push(token(
        9_000,
        500,
        "2012-03-04 10:00:00",
        Some("2012-03-04 10:05:00"),
    ));
    (users, tokens)
}

pub fn random_dataset(
    seed: u64,
    n_users: i32,
    n_tokens: i32,
) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = ts("2022-12-01 00:00:00");
    let users: Vec<_> = (1..=n_users)
        .map(|id| {
            let micros = if id % 7 == 0 {
                0
            } else {
                rng.random_range(0..1_000_000)
            };
            let joined = base - Duration::seconds(rng.random_range(0..60 * 86_400))
                + Duration::microseconds(micros);
            users::Model {
                id,
                first_name: format!("F{id}"),
                last_name: format!("L{id}"),
                joined_at: joined,
                is_active: rng.random_bool(0.85),
            }
        })
        .collect();
    // The last fifth of the users never get a token.
    let with_tokens = (n_users * 4 / 5).max(1);
    let tokens = (1..=n_tokens)
        .map(|id| {
            let created =
                base + Duration::microseconds(rng.random_range(0..62 * 86_400 * 1_000_000i64));
            let used = rng
                .random_bool(0.5)
                .then(|| created + Duration::seconds(rng.random_range(60..900)));
            tokens::Model {
                id,
                user_id: rng.random_range(1..=with_tokens),
                token: format!("{:06}", rng.random_range(0..1_000_000)),
                created_at: created,
                used_at: used,
            }
        })
        .collect();
    (users, tokens)
}

/// Tokens on a few hundred days scattered over 2012 to 2024 (a span of more than
/// 3,660 days, with long gaps), several per day, at any time of day.
pub fn multi_year_dataset(
    seed: u64,
    n_users: i32,
    n_tokens: i32,
) -> (Vec<users::Model>, Vec<tokens::Model>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let users: Vec<_> = (1..=n_users)
        .map(|id| user(id, "2011-06-01 09:30:00.25", id % 5 != 0))
        .collect();
    let first = ts("2012-01-01 00:00:00");
    let span_days = (ts("2024-12-31 00:00:00") - first).num_days();
    let days: Vec<i64> = (0..240).map(|_| rng.random_range(0..=span_days)).collect();
    let tokens = (1..=n_tokens)
        .map(|id| {
            let day = days[rng.random_range(0..days.len())];
            let created = first
                + Duration::days(day)
                + Duration::microseconds(rng.random_range(0..86_400 * 1_000_000i64));
            let used = rng
                .random_bool(0.6)
                .then(|| created + Duration::seconds(rng.random_range(60..900)));
            tokens::Model {
                id,
                user_id: rng.random_range(1..=n_users),
                token: format!("{:06}", rng.random_range(0..1_000_000)),
                created_at: created,
                used_at: used,
            }
        })
        .collect();
    (users, tokens)
}

/// Milliseconds since the epoch of a strict RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`), parsed by hand: a reader independent of
/// chrono, as a client's would be. `None` for anything RFC 3339 does not allow.
pub fn rfc3339_epoch_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        (!part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
    }
    let offset_secs = match (b.get(i), s.len() - i) {
        (Some(b'Z'), 1) => 0,
        (Some(sign @ (b'+' | b'-')), 6) if b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = oh * 3_600 + om * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    // Days from 1970-01-01 of a proleptic Gregorian date (the civil-from-days inverse).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3_600 + mi * 60 + sec - offset_secs) * 1_000 + millis)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gran {
    Day,
    Week,
    Month,
}

impl Gran {
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "DAY",
            Self::Week => "WEEK",
            Self::Month => "MONTH",
        }
    }
    pub fn label(self, d: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => d,
            Self::Week => d - Duration::days(i64::from(d.weekday().num_days_from_monday())),
            Self::Month => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).expect("first of month"),
        }
    }
    pub fn step(self, d: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => d + Duration::days(1),
            Self::Week => d + Duration::days(7),
            Self::Month => d
                .checked_add_months(chrono::Months::new(1))
                .expect("next month"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefBucket {
    pub date: NaiveDate,
    pub start_epoch_ms: i64,
    pub visits: i64,
    pub issued: i64,
    pub unique_users: i64,
}

/// The first UTC instant whose local date in `tz` is `date`, found by scanning minutes
/// (independent of how the gateway computes it).
pub fn first_instant_of(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = Utc.from_utc_datetime(
        &(date - Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight"),
    );
    // Coarse steps of 15 minutes, then minute by minute and second by second over the
    // last step (a few historical offsets are not whole quarter hours).
    while t.with_timezone(&tz).date_naive() < date {
        t += Duration::minutes(15);
    }
    let mut minute = t - Duration::minutes(15);
    while minute.with_timezone(&tz).date_naive() < date {
        minute += Duration::minutes(1);
    }
    let mut exact = minute - Duration::minutes(1);
    while exact.with_timezone(&tz).date_naive() < date {
        exact += Duration::seconds(1);
    }
    exact
}

pub fn usage_reference(
    tokens: &[tokens::Model],
    g: Gran,
    tz: Tz,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    fill: bool,
) -> Vec<RefBucket> {
    let local = |t: NaiveDateTime| Utc.from_utc_datetime(&t).with_timezone(&tz).date_naive();
    let mut counts: BTreeMap<NaiveDate, (i64, i64, BTreeSet<i32>)> = BTreeMap::new();
    for t in tokens {
        let d = local(t.created_at);
        if from.is_some_and(|f| d < f) || to.is_some_and(|x| d > x) {
            continue;
        }
        let e = counts.entry(g.label(d)).or_default();
        e.1 += 1;
        if t.used_at.is_some() {
            e.0 += 1;
            e.2.insert(t.user_id);
        }
    }
    if fill {
        let (Some(f), Some(t)) = (from, to) else {
            panic!("fill needs from and to")
        };
        let mut d = g.label(f);
        while d <= t {
            counts.entry(d).or_default();
            d = g.step(d);
        }
    }
    // A label whose every local date the zone skipped (Pacific/Apia's 2011-12-30) holds no
    // instant: its first instant is its successor's. No bucket for it.
    counts.retain(|date, _| first_instant_of(tz, *date) < first_instant_of(tz, g.step(*date)));
    counts
        .into_iter()
        .map(|(date, (visits, issued, users))| RefBucket {
            date,
            start_epoch_ms: first_instant_of(tz, date).timestamp_millis(),
            visits,
            issued,
            unique_users: users.len() as i64,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefVisits {
    pub user_id: i32,
    pub joined_at: NaiveDateTime,
    pub visits: i64,
    pub check_ins: i64,
    pub last_visit_at: Option<NaiveDateTime>,
}

/// Per-user aggregates over tokens created in the inclusive local date range, by user id.
pub fn visits_reference(
    users: &[users::Model],
    tokens: &[tokens::Model],
    tz: Tz,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    active_only: bool,
    min_visits: Option<i64>,
) -> Vec<RefVisits> {
    let mut by_user: BTreeMap<i32, RefVisits> = BTreeMap::new();
    for t in tokens {
        let d = Utc
            .from_utc_datetime(&t.created_at)
            .with_timezone(&tz)
            .date_naive();
        if from.is_some_and(|f| d < f) || to.is_some_and(|x| d > x) {
            continue;
        }
        let Some(u) = users.iter().find(|u| u.id == t.user_id) else {
            continue;
        };
        if active_only && !u.is_active {
            continue;
        }
        let e = by_user.entry(u.id).or_insert(RefVisits {
            user_id: u.id,
            joined_at: u.joined_at,
            visits: 0,
            check_ins: 0,
            last_visit_at: None,
        });
        e.visits += 1;
        if let Some(used) = t.used_at {
            e.check_ins += 1;
            e.last_visit_at = e.last_visit_at.max(Some(used));
        }
    }
    by_user
        .into_values()
        .filter(|r| min_visits.is_none_or(|m| r.visits >= m))
        .collect()
}

/// Python's `str(datetime)` as the legacy app wrote it, written out by hand.
pub fn python_str(t: NaiveDateTime) -> String {
    let micros = t.and_utc().timestamp_subsec_micros();
    let base = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        chrono::Timelike::hour(&t),
        chrono::Timelike::minute(&t),
        chrono::Timelike::second(&t)
    );
    if micros == 0 {
        base
    } else {
        format!("{base}.{micros:06}")
    }
}

/// The legacy daily-usage body built from raw rows.
pub fn legacy_daily_usage(tokens: &[tokens::Model]) -> String {
    let mut days: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for t in tokens.iter().filter(|t| t.used_at.is_some()) {
        *days.entry(t.created_at.date()).or_default() += 1;
    }
    let parts: Vec<String> = days
        .iter()
        .map(|(d, n)| format!("\"{}\":{n}", d.format("%Y-%m-%d")))
        .collect();
    format!("{{{}}}\n", parts.join(","))
}

/// The legacy user-visits body built from raw rows.
pub fn legacy_user_visits(users: &[users::Model], tokens: &[tokens::Model]) -> String {
    let mut visits: BTreeMap<i32, i64> = BTreeMap::new();
    for t in tokens {
        *visits.entry(t.user_id).or_default() += 1;
    }
    let joined: BTreeMap<i32, NaiveDateTime> = users.iter().map(|u| (u.id, u.joined_at)).collect();
    let parts: Vec<String> = visits
        .iter()
        .map(|(id, n)| {
            let joined_at = joined.get(id).expect("token owner exists");
            format!(
                "\"{id}\":{{\"joined_at\":\"{}\",\"visits\":{n}}}",
                python_str(*joined_at)
            )
        })
        .collect();
    format!("{{{}}}\n", parts.join(","))
}
