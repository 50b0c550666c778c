//! Property tests (proptest) over the argument parsing and validation behind the GraphQL
//! arguments: time zones, date ranges, buckets, cursors and keyset paging.
//!
//! The default is 256 cases per property, a few seconds in CI. To fuzz for longer:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --test api fuzz
//! ```
//!
//! A failure prints the shrunk input; nothing is written to disk (no regression files),
//! so paste the printed input into a plain `#[test]` to keep it.

use std::cmp::Ordering;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use coworking_gateway::analytics::AnalyticsError;
use coworking_gateway::analytics::time::{
    Granularity, buckets, local_day_start, parse_timezone, utc_range,
};
use coworking_gateway::analytics::visits::{Cursor, UserVisits, VisitsOrder, page};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// The default config (so `PROPTEST_CASES` applies) without regression files in the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The argument a `BadInput` names, or a description of whatever else came back.
fn bad_argument<T: std::fmt::Debug>(r: &Result<T, AnalyticsError>) -> Result<&'static str, String> {
    match r {
        Err(AnalyticsError::BadInput { argument, .. }) => Ok(argument),
        other => Err(format!("{other:?}")),
    }
}

fn any_tz() -> impl Strategy<Value = Tz> {
    (0..TZ_VARIANTS.len()).prop_map(|i| TZ_VARIANTS[i])
}

/// Days since 0001-01-01 (the Date scalar accepts years 1 to 9999).
fn scalar_date() -> impl Strategy<Value = NaiveDate> {
    let first = NaiveDate::from_ymd_opt(1, 1, 1).expect("0001-01-01");
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).expect("9999-12-31");
    (0..=(last - first).num_days()).prop_map(move |d| first + Duration::days(d))
}

/// Any date chrono can represent, extremes included.
fn any_date() -> impl Strategy<Value = NaiveDate> {
    let span = (NaiveDate::MAX - NaiveDate::MIN).num_days();
    prop_oneof![
        (0..=span).prop_map(|d| NaiveDate::MIN + Duration::days(d)),
        (0..=40i64).prop_map(|d| NaiveDate::MIN + Duration::days(d)),
        (0..=40i64).prop_map(|d| NaiveDate::MAX - Duration::days(d)),
    ]
}

/// Mostly the recent past, where real data lives, sometimes anywhere in the Date range.
fn realistic_date() -> impl Strategy<Value = NaiveDate> {
    let base = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    prop_oneof![
        4 => (0..=(130 * 366i64)).prop_map(move |d| base + Duration::days(d)),
        1 => scalar_date(),
    ]
}

fn any_granularity() -> impl Strategy<Value = Granularity> {
    prop_oneof![
        Just(Granularity::Day),
        Just(Granularity::Week),
        Just(Granularity::Month),
    ]
}

fn any_order() -> impl Strategy<Value = VisitsOrder> {
    prop_oneof![
        Just(VisitsOrder::UserIdAsc),
        Just(VisitsOrder::VisitsDesc),
        Just(VisitsOrder::LastVisitDesc),
        Just(VisitsOrder::JoinedAtAsc),
    ]
}

/// Any instant with whole microseconds (what a cursor carries).
fn any_instant() -> impl Strategy<Value = NaiveDateTime> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp_micros();
    let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    prop_oneof![
        (min..=max).prop_map(|m| DateTime::from_timestamp_micros(m).expect("in range")),
        (-10_000_000_000_000_000i64..10_000_000_000_000_000)
            .prop_map(|m| DateTime::from_timestamp_micros(m).expect("in range")),
    ]
    .prop_map(|t| t.naive_utc())
}

fn any_key() -> impl Strategy<Value = UserVisits> {
    (
        any::<i32>(),
        any::<i64>(),
        proptest::option::of(any_instant()),
        any_instant(),
    )
        .prop_map(|(user_id, visits, last_visit_at, joined_at)| UserVisits {
            user_id,
            joined_at,
            visits,
            // Not part of any sort key, so not carried by a cursor.
            check_ins: 0,
            last_visit_at,
        })
}

/// Whether `t` is the first instant of `date` in `tz`: the first instant whose local date
/// is `date` or later (one second earlier it is before `date`; zone transitions fall on
/// whole seconds). For a date the zone skipped entirely (Pacific/Apia, 2011-12-30) that
/// is the start of the next day: the skipped day holds no instant.
fn is_first_instant_of(tz: Tz, date: NaiveDate, t: DateTime<Tz>) -> bool {
    let utc = t.with_timezone(&Utc);
    utc.with_timezone(&tz).date_naive() >= date
        && (utc - Duration::seconds(1)).with_timezone(&tz).date_naive() < date
}

/// How many buckets hold the local dates `first..=last`, counted without the library.
fn expected_buckets(g: Granularity, first: NaiveDate, last: NaiveDate) -> i64 {
    match g {
        Granularity::Day => (last - first).num_days() + 1,
        Granularity::Week => {
            let monday =
                |d: NaiveDate| d - Duration::days(i64::from(d.weekday().num_days_from_monday()));
            (monday(last) - monday(first)).num_days() / 7 + 1
        }
        Granularity::Month => {
            let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            months(last) - months(first) + 1
        }
    }
}

/// The label after `d`, stepped without the library.
fn next_label(g: Granularity, d: NaiveDate) -> NaiveDate {
    match g {
        Granularity::Day => d + Duration::days(1),
        Granularity::Week => d + Duration::days(7),
        Granularity::Month => d
            .checked_add_months(chrono::Months::new(1))
            .expect("next month"),
    }
}

/// Every bucket label of the local dates `first..=last`.
fn labels_of(g: Granularity, first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let mut d = match g {
        Granularity::Day => first,
        Granularity::Week => {
            first - Duration::days(i64::from(first.weekday().num_days_from_monday()))
        }
        Granularity::Month => first.with_day(1).expect("first of month"),
    };
    let mut out = Vec::new();
    while d <= last {
        out.push(d);
        d = next_label(g, d);
    }
    out
}

/// Strings a caller might send as a time zone: noise, near misses and real names.
fn zone_text() -> impl Strategy<Value = String> {
    let real = (0..TZ_VARIANTS.len()).prop_map(|i| TZ_VARIANTS[i].name().to_owned());
    prop_oneof![
        any::<String>(),
        "[A-Za-z_/+-]{0,30}",
        real.clone(),
        real.clone().prop_map(|n| n.to_lowercase()),
        real.clone().prop_map(|n| n.to_uppercase()),
        real.clone().prop_map(|n| format!("  {n}\t")),
        real.clone().prop_map(|n| format!("{n}; DROP TABLE users")),
        (real, 0..40usize).prop_map(|(n, cut)| n.chars().take(cut).collect()),
        "\\PC{1000,3000}",
    ]
}

/// Strings a caller might send as `after`: noise, base64 noise, and near-valid cursors.
fn cursor_text() -> impl Strategy<Value = String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let field = prop_oneof![
        Just(String::new()),
        Just("-".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        "[0-9+-]{0,25}",
        any::<String>(),
    ];
    let version = prop_oneof![Just("uv1"), Just("uv0"), Just("uv2"), Just("UV1"), Just("")];
    let order = prop_oneof![
        Just("id"),
        Just("visits"),
        Just("last"),
        Just("joined"),
        Just("ID"),
        Just("")
    ];
    let structured =
        (version, order, proptest::collection::vec(field, 0..7)).prop_map(|(v, o, rest)| {
            let mut parts = vec![v.to_owned(), o.to_owned()];
            parts.extend(rest);
            parts.join("|")
        });
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_=+/-]{0,80}",
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        proptest::collection::vec(any::<u8>(), 0..80).prop_map(|b| STANDARD.encode(b)),
        structured.clone().prop_map(|s| URL_SAFE_NO_PAD.encode(s)),
        structured.prop_map(|s| STANDARD.encode(s)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_parse_timezone_accepts_exactly_the_iana_names(s in zone_text()) {
        let got = parse_timezone(&s);
        match TZ_VARIANTS.iter().find(|tz| tz.name() == s) {
            Some(tz) => prop_assert_eq!(got.ok(), Some(*tz), "{:?}", s),
            None => {
                prop_assert_eq!(bad_argument(&got), Ok("timezone"), "{:?}", s);
                // The caller's text is echoed clipped, never whole.
                let message = got.err().map(|e| e.to_string()).unwrap_or_default();
                prop_assert!(message.chars().count() < 250, "{} chars", message.chars().count());
                // A name that is right but for case, padding or spaces gets its spelling suggested.
                let near = s.trim().replace(' ', "_").to_ascii_lowercase();
                if let Some(right) = TZ_VARIANTS.iter().find(|tz| tz.name().to_ascii_lowercase() == near) {
                    let suggestion = format!("did you mean \"{}\"?", right.name());
                    prop_assert!(message.contains(&suggestion), "{:?}: {}", s, message);
                }
            }
        }
    }

    #[test]
    fn fuzz_every_iana_name_parses_to_its_own_zone(tz in any_tz()) {
        prop_assert_eq!(parse_timezone(tz.name()).ok(), Some(tz));
    }

    #[test]
    fn fuzz_range_and_bucket_functions_never_panic_on_any_date(
        tz in any_tz(),
        g in any_granularity(),
        a in any_date(),
        b in any_date(),
        cap in 0usize..5000,
    ) {
        let _ = local_day_start(&tz, a);
        let _ = utc_range(&tz, Some(a), Some(b));
        let _ = utc_range(&tz, Some(a), None);
        let _ = utc_range(&tz, None, Some(b));
        let _ = buckets(g, &tz, a, b, cap);
        let _ = g.bucket_start(a);
    }

    #[test]
    fn fuzz_local_day_start_is_the_first_instant_of_the_local_date(
        tz in any_tz(),
        date in realistic_date(),
    ) {
        match local_day_start(&tz, date) {
            Ok(t) => prop_assert!(is_first_instant_of(tz, date, t), "{} in {}: got {}", date, tz, t),
            Err(e) => prop_assert!(false, "{} in {}: {:?}", date, tz, e),
        }
    }

    #[test]
    fn fuzz_utc_range_is_half_open_over_whole_local_days_or_names_the_bad_argument(
        tz in any_tz(),
        from in proptest::option::of(realistic_date()),
        to in proptest::option::of(realistic_date()),
    ) {
        let got = utc_range(&tz, from, to);
        if let (Some(f), Some(t)) = (from, to) && t < f {
            prop_assert_eq!(bad_argument(&got), Ok("to"));
            return Ok(());
        }
        let (start, end) = match got {
            Ok(range) => range,
            Err(e) => return Err(TestCaseError::fail(format!("{from:?}..{to:?} in {tz}: {e:?}"))),
        };
        prop_assert_eq!(start.is_some(), from.is_some());
        prop_assert_eq!(end.is_some(), to.is_some());
        if let (Some(f), Some(s)) = (from, start) {
            prop_assert!(is_first_instant_of(tz, f, Utc.from_utc_datetime(&s).with_timezone(&tz)));
        }
        if let (Some(t), Some(e)) = (to, end) {
            let next = t.succ_opt().expect("realistic dates have a next day");
            prop_assert!(is_first_instant_of(tz, next, Utc.from_utc_datetime(&e).with_timezone(&tz)));
        }
        if let (Some(s), Some(e)) = (start, end) {
            prop_assert!(s < e, "{} !< {}", s, e);
        }
    }

    #[test]
    fn fuzz_buckets_are_contiguous_local_midnights_covering_the_range_up_to_the_cap(
        tz in any_tz(),
        g in any_granularity(),
        first in realistic_date(),
        days in prop_oneof![0i64..64, 0i64..5000],
        cap in prop_oneof![1usize..40, 1usize..4000],
    ) {
        let last = first + Duration::days(days);
        let want = expected_buckets(g, first, last);
        let got = buckets(g, &tz, first, last, cap);
        if want > cap as i64 {
            prop_assert_eq!(bad_argument(&got), Ok("to"), "{} buckets over a cap of {}", want, cap);
            return Ok(());
        }
        let list = match got {
            Ok(list) => list,
            Err(e) => return Err(TestCaseError::fail(format!("{g:?} {first}..{last} in {tz}: {e:?}"))),
        };
        // Every label of the range is a bucket, except labels the zone skipped entirely
        // (they hold no instant: their first instant is their successor's).
        let labels = labels_of(g, first, last);
        prop_assert_eq!(labels.len() as i64, want);
        let mut next = 0;
        for label in &labels {
            if list.get(next).is_some_and(|b| b.date == *label) {
                next += 1;
                continue;
            }
            let t = match (list.get(next), next.checked_sub(1).and_then(|i| list.get(i))) {
                (Some(after), _) => after.start,
                (None, Some(before)) => before.end,
                (None, None) => local_day_start(&tz, *label).expect("a start"),
            };
            prop_assert!(
                is_first_instant_of(tz, *label, t) && is_first_instant_of(tz, next_label(g, *label), t),
                "{} in {} was left out but holds instants", label, tz
            );
        }
        prop_assert_eq!(next, list.len(), "buckets outside the range's labels");
        let range = utc_range(&tz, Some(first), Some(last)).expect("a valid range");
        let (Some(range_start), Some(range_end)) = range else {
            return Err(TestCaseError::fail("closed range expected"));
        };
        if let (Some(head), Some(tail)) = (list.first(), list.last()) {
            prop_assert!(head.date >= g.bucket_start(first) && tail.date <= last);
            prop_assert!(head.start.naive_utc() <= range_start, "first bucket starts after the range");
            prop_assert!(tail.end.naive_utc() >= range_end, "last bucket ends before the range");
        }
        for b in &list {
            prop_assert_eq!(g.bucket_start(b.date), b.date, "{} is not a bucket label", b.date);
            prop_assert!(b.start < b.end, "empty bucket {:?}", b);
            prop_assert!(is_first_instant_of(tz, b.date, b.start), "{:?} is not a local midnight", b);
        }
        for pair in list.windows(2) {
            prop_assert!(pair[0].date < pair[1].date);
            prop_assert!(pair[0].start < pair[1].start, "starts not strictly increasing");
            prop_assert_eq!(pair[0].end, pair[1].start, "gap or overlap between {:?} and {:?}", pair[0], pair[1]);
        }
    }

    #[test]
    fn fuzz_cursor_decode_inverts_encode_for_any_key(order in any_order(), key in any_key()) {
        let cursor = Cursor { order, key };
        let text = cursor.encode();
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", text);
        prop_assert_eq!(Cursor::decode(&text).ok(), Some(cursor));
    }

    #[test]
    fn fuzz_cursor_decode_of_any_string_is_a_cursor_or_bad_input_naming_after(s in cursor_text()) {
        match Cursor::decode(&s) {
            // Whatever decodes must survive its own round trip.
            Ok(c) => prop_assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c)),
            Err(e) => {
                let got: Result<(), AnalyticsError> = Err(e);
                prop_assert_eq!(bad_argument(&got), Ok("after"), "{:?}", s);
            }
        }
    }

    #[test]
    fn fuzz_paging_visits_every_row_exactly_once_in_order(
        order in any_order(),
        sizes in proptest::collection::vec(1usize..30, 1..10),
        raw in proptest::collection::btree_map(
            any::<i32>(),
            (0i64..6, proptest::option::of(0i64..8), 0i64..8),
            0..120,
        ),
    ) {
        let t = |n: i64| {
            DateTime::from_timestamp(1_670_000_000 + n * 3_600, 0)
                .expect("in range")
                .naive_utc()
        };
        // Few distinct values, so ties (broken by user id) are common.
        let mut rows: Vec<UserVisits> = raw
            .into_iter()
            .map(|(user_id, (visits, last, joined))| UserVisits {
                user_id,
                joined_at: t(joined),
                visits,
                check_ins: visits / 2,
                last_visit_at: last.map(t),
            })
            .collect();
        rows.sort_by(|a, b| order.compare(a, b));
        let mut seen: Vec<i32> = Vec::new();
        let mut after: Option<Cursor> = None;
        for step in 0..=rows.len() + 1 {
            let first = sizes[step % sizes.len()];
            let p = page(&rows, order, after.as_ref(), first).expect("a page");
            prop_assert_eq!(p.total, Some(rows.len()));
            prop_assert!(p.rows.len() <= first);
            prop_assert_eq!(p.has_previous, step > 0 && !rows.is_empty());
            seen.extend(p.rows.iter().map(|r| r.user_id));
            prop_assert_eq!(p.has_next, seen.len() < rows.len());
            let Some(last) = p.rows.last() else { break };
            if !p.has_next {
                break;
            }
            // Through the wire format, as a client would send it back.
            let text = Cursor { order, key: last.clone() }.encode();
            after = Some(Cursor::decode(&text).expect("own cursor decodes"));
        }
        let want: Vec<i32> = rows.iter().map(|r| r.user_id).collect();
        prop_assert_eq!(seen, want);
    }

    #[test]
    fn fuzz_a_page_after_any_key_holds_exactly_the_next_rows(
        order in any_order(),
        first in 0usize..40,
        key in any_key(),
        raw in proptest::collection::btree_map(any::<i32>(), (any::<i64>(), proptest::option::of(any_instant()), any_instant()), 0..60),
    ) {
        let mut rows: Vec<UserVisits> = raw
            .into_iter()
            .map(|(user_id, (visits, last_visit_at, joined_at))| UserVisits { user_id, joined_at, visits, check_ins: 0, last_visit_at })
            .collect();
        rows.sort_by(|a, b| order.compare(a, b));
        let cursor = Cursor { order, key: key.clone() };
        let p = page(&rows, order, Some(&cursor), first).expect("a page");
        let after: Vec<&UserVisits> = rows.iter().filter(|r| order.compare(r, &key) == Ordering::Greater).collect();
        let want: Vec<&UserVisits> = after.iter().copied().take(first).collect();
        prop_assert_eq!(p.rows.iter().collect::<Vec<_>>(), want);
        prop_assert_eq!(p.has_next, after.len() > first);
        // A cursor from another order is refused, naming `after`.
        let other = [VisitsOrder::UserIdAsc, VisitsOrder::VisitsDesc, VisitsOrder::LastVisitDesc, VisitsOrder::JoinedAtAsc]
            .into_iter()
            .find(|o| *o != order)
            .expect("four orders");
        prop_assert_eq!(bad_argument(&page(&rows, other, Some(&cursor), first)), Ok("after"));
    }
}

// Inputs the properties above found, kept as plain tests so they run on every seed.

#[test]
fn week_buckets_at_the_first_representable_date_are_an_answer_not_a_panic() {
    for date in [NaiveDate::MIN, NaiveDate::MIN + Duration::days(3)] {
        let got = std::panic::catch_unwind(|| {
            (
                Granularity::Week.bucket_start(date),
                buckets(Granularity::Week, &Tz::UTC, date, date, 10).map(|b| b.len()),
            )
        });
        assert!(got.is_ok(), "Week buckets for {date} panicked");
    }
}

#[test]
fn a_day_that_starts_off_the_quarter_hour_starts_at_its_real_first_instant() {
    // Kiritimati jumped from -10:40 to -10:00 at midnight (local 00:00-00:40 never
    // happened); Monrovia from -0:44:30 to UTC (00:00-00:44:30 never happened).
    for (tz, date, local_start) in [
        (Tz::Pacific__Kiritimati, "1979-10-01", "00:40:00"),
        (Tz::Africa__Monrovia, "1972-01-07", "00:44:30"),
    ] {
        let date: NaiveDate = date.parse().expect("date");
        let t = local_day_start(&tz, date).expect("a start");
        assert!(is_first_instant_of(tz, date, t), "{date} in {tz}: got {t}");
        assert_eq!(t.time().to_string(), local_start, "{date} in {tz}");
    }
}

#[test]
fn a_day_the_zone_skipped_has_no_bucket_and_its_neighbours_meet() {
    // Samoa skipped 2011-12-30 to cross the date line: no bucket holds that date, so
    // starts stay unique and strictly increasing (what time-series consumers need).
    let tz = Tz::Pacific__Apia;
    let d = |s: &str| s.parse::<NaiveDate>().expect("date");
    let list =
        buckets(Granularity::Day, &tz, d("2011-12-29"), d("2011-12-31"), 10).expect("buckets");
    let dates: Vec<NaiveDate> = list.iter().map(|b| b.date).collect();
    assert_eq!(dates, [d("2011-12-29"), d("2011-12-31")]);
    assert!(list.iter().all(|b| b.start < b.end));
    assert_eq!(list[0].end, list[1].start, "the neighbours meet");
    // 2011-12-29 00:00 at -10:00 and 2011-12-31 00:00 at +14:00.
    assert_eq!(list[0].start.timestamp(), 1_325_152_800);
    assert_eq!(list[1].start.timestamp(), 1_325_239_200);
    assert_eq!(
        list[1].start.timestamp() - list[0].start.timestamp(),
        86_400
    );
    // The skipped day alone is no bucket at all.
    assert!(
        buckets(Granularity::Day, &tz, d("2011-12-30"), d("2011-12-30"), 10)
            .expect("buckets")
            .is_empty()
    );
}
