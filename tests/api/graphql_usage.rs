//! `usageByDay` and `summary` against references computed from the raw rows.

use chrono::NaiveDate;
use chrono_tz::Tz;
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::{
    Gran, RefBucket, multi_year_dataset, random_dataset, rfc3339_epoch_ms, token, usage_reference,
    user, with_a_token_from_2012,
};

const USAGE: &str =
    "query Usage($from: Date, $to: Date, $g: Granularity!, $tz: String!, $fill: Boolean!) {
  usageByDay(from: $from, to: $to, granularity: $g, timezone: $tz, fill: $fill) {
    date start startEpochMs visits tokensIssued uniqueUsers
  }
}";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

pub async fn usage(
    app: &TestApp,
    g: Gran,
    tz: &str,
    from: Option<&str>,
    to: Option<&str>,
    fill: bool,
) -> Vec<RefBucket> {
    let data = app
        .graphql_ok(
            USAGE,
            json!({ "from": from, "to": to, "g": g.name(), "tz": tz, "fill": fill }),
        )
        .await;
    data["usageByDay"]
        .as_array()
        .expect("list")
        .iter()
        .map(|b| {
            let start = b["start"].as_str().expect("start");
            let epoch = b["startEpochMs"].as_f64().expect("startEpochMs") as i64;
            check_start(start, epoch, tz);
            RefBucket {
                date: d(b["date"].as_str().expect("date")),
                start_epoch_ms: epoch,
                visits: b["visits"].as_i64().expect("visits"),
                issued: b["tokensIssued"].as_i64().expect("tokensIssued"),
                unique_users: b["uniqueUsers"].as_i64().expect("uniqueUsers"),
            }
        })
        .collect()
}

/// `start` read by an RFC 3339 parser independent of the gateway's (a client's) is the
/// instant `startEpochMs` says; its offset is the zone's there, rounded up to the minute
/// when the zone's has seconds (RFC 3339 cannot write them).
fn check_start(start: &str, epoch_ms: i64, tz: &str) {
    assert_eq!(
        rfc3339_epoch_ms(start),
        Some(epoch_ms),
        "start {start} is not the instant startEpochMs {epoch_ms}"
    );
    let tz: Tz = tz.parse().expect("tz");
    let instant = chrono::DateTime::from_timestamp_millis(epoch_ms).expect("instant");
    let zone_secs = {
        use chrono::Offset;
        instant.with_timezone(&tz).offset().fix().local_minus_utc()
    };
    let want_minutes = zone_secs.div_euclid(60) + i32::from(zone_secs.rem_euclid(60) != 0);
    let printed = &start[start.len() - 6..];
    let sign = if printed.starts_with('-') { -1 } else { 1 };
    let minutes = sign
        * (printed[1..3].parse::<i32>().expect("hh") * 60
            + printed[4..6].parse::<i32>().expect("mm"));
    assert_eq!(minutes, want_minutes, "offset of {start} in {tz}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn usage_matches_a_reference_on_random_data_for_every_granularity_and_zone(
    #[case] backend: Backend,
) {
    let (users, tokens) = random_dataset(11, 120, 1_500);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for tz_name in [
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
    ] {
        let tz: Tz = tz_name.parse().expect("tz");
        for g in [Gran::Day, Gran::Week, Gran::Month] {
            for (from, to, fill) in [
                (None, None, false),
                (Some("2022-12-20"), Some("2023-01-10"), false),
                (Some("2022-12-20"), Some("2023-01-10"), true),
                (Some("2023-01-15"), None, false),
                (None, Some("2022-12-31"), false),
            ] {
                let got = usage(&app, g, tz_name, from, to, fill).await;
                let want = usage_reference(&tokens, g, tz, from.map(d), to.map(d), fill);
                assert_eq!(
                    got, want,
                    "{backend:?} {tz_name} {g:?} {from:?}..{to:?} fill={fill}"
                );
            }
        }
    }
}

/// Hand-made edge cases: DST changes, +05:45, the last microsecond of a day, year ends.
fn edge_tokens() -> (Vec<entity::users::Model>, Vec<entity::tokens::Model>) {
    let users = vec![
        user(1, "2022-01-01 00:00:00", true),
        user(2, "2022-01-01 00:00:00", false),
        user(3, "2022-06-01 12:00:00.5", true),
    ];
    let tokens = vec![
        // New York springs forward on 2023-03-12 (local day of 23 h) and falls back on 2023-11-05 (25 h).
        token(
            1,
            1,
            "2023-03-12 04:59:59.999999",
            Some("2023-03-12 05:05:00"),
        ), // 23:59:59 on the 11th, EST
        token(2, 1, "2023-03-12 05:00:00", Some("2023-03-12 05:10:00")), // 00:00 on the 12th, EST
        token(3, 2, "2023-03-13 03:59:59", None), // 23:59:59 on the 12th, EDT
        token(4, 2, "2023-03-13 04:00:00", Some("2023-03-13 04:01:00")), // 00:00 on the 13th, EDT
        token(5, 1, "2023-11-05 05:30:00", Some("2023-11-05 05:31:00")), // 01:30 EST, second pass
        token(6, 2, "2023-11-06 04:59:59", None), // 23:59:59 on the 5th, EST
        // Berlin: 2023-03-26 has 23 h, 2023-10-29 has 25 h.
        token(7, 1, "2023-03-25 22:59:59", Some("2023-03-25 23:00:00")), // 23:59:59 CET on the 25th
        token(8, 3, "2023-03-25 23:00:00", None),                        // 00:00 CET on the 26th
        token(9, 3, "2023-10-28 22:00:00", Some("2023-10-28 22:03:00")), // 00:00 CEST on the 29th
        token(10, 3, "2023-10-29 22:59:59", None),                       // 23:59:59 CET on the 29th
        // Kathmandu is +05:45: 18:15 UTC is local midnight.
        token(
            11,
            1,
            "2023-06-01 18:14:59.999999",
            Some("2023-06-01 18:20:00"),
        ),
        token(12, 2, "2023-06-01 18:15:00", Some("2023-06-01 18:20:00")),
        // The last microsecond of a UTC day, and year-end boundaries for weeks and months.
        token(
            13,
            1,
            "2022-12-31 23:59:59.999999",
            Some("2023-01-01 00:05:00"),
        ),
        token(14, 2, "2023-01-01 00:00:00", Some("2023-01-01 00:05:00")),
        token(15, 3, "2022-12-26 00:00:00", None), // Monday of ISO week 2022-W52
        token(16, 3, "2023-01-02 00:00:00", Some("2023-01-02 00:01:00")), // Monday of 2023-W01
    ];
    (users, tokens)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn usage_handles_dst_odd_offsets_and_boundaries_exactly(#[case] backend: Backend) {
    let (users, tokens) = edge_tokens();
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for tz_name in ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kathmandu"] {
        let tz: Tz = tz_name.parse().expect("tz");
        for g in [Gran::Day, Gran::Week, Gran::Month] {
            for (from, to, fill) in [
                (None, None, false),
                (Some("2022-12-25"), Some("2023-01-08"), true),
                (Some("2023-03-10"), Some("2023-03-14"), true),
                (Some("2023-10-28"), Some("2023-11-06"), true),
            ] {
                let got = usage(&app, g, tz_name, from, to, fill).await;
                let want = usage_reference(&tokens, g, tz, from.map(d), to.map(d), fill);
                assert_eq!(
                    got, want,
                    "{backend:?} {tz_name} {g:?} {from:?}..{to:?} fill={fill}"
                );
            }
        }
    }
    // Spot checks written out by hand, so the reference itself is checked too.
    let ny = usage(
        &app,
        Gran::Day,
        "America/New_York",
        Some("2023-03-11"),
        Some("2023-03-13"),
        true,
    )
    .await;
    let visits: Vec<i64> = ny.iter().map(|b| b.visits).collect();
    assert_eq!(visits, vec![1, 1, 1], "{backend:?}");
    assert_eq!(
        ny[1].start_epoch_ms, 1_678_597_200_000,
        "2023-03-12T00:00-05:00"
    );
    assert_eq!(
        ny[2].start_epoch_ms, 1_678_680_000_000,
        "2023-03-13T00:00-04:00"
    );
    let ktm = usage(
        &app,
        Gran::Day,
        "Asia/Kathmandu",
        Some("2023-06-01"),
        Some("2023-06-02"),
        true,
    )
    .await;
    assert_eq!(
        ktm.iter().map(|b| b.issued).collect::<Vec<_>>(),
        vec![1, 1],
        "{backend:?}"
    );
    let utc_year_end = usage(
        &app,
        Gran::Month,
        "UTC",
        Some("2022-12-01"),
        Some("2023-01-31"),
        true,
    )
    .await;
    assert_eq!(
        utc_year_end
            .iter()
            .map(|b| (b.date, b.issued))
            .collect::<Vec<_>>(),
        vec![(d("2022-12-01"), 2), (d("2023-01-01"), 2)]
    );
    // An empty range: nothing without fill, zeros with it.
    assert!(
        usage(
            &app,
            Gran::Day,
            "UTC",
            Some("2024-01-01"),
            Some("2024-01-03"),
            false
        )
        .await
        .is_empty()
    );
    let zeros = usage(
        &app,
        Gran::Day,
        "UTC",
        Some("2024-01-01"),
        Some("2024-01-03"),
        true,
    )
    .await;
    assert_eq!(
        zeros
            .iter()
            .map(|b| (b.visits, b.issued, b.unique_users))
            .collect::<Vec<_>>(),
        vec![(0, 0, 0); 3]
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn summary_matches_a_reference(#[case] backend: Backend) {
    let (users, tokens) = random_dataset(5, 80, 700);
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for (from, to) in [(None, None), (Some("2022-12-20"), Some("2023-01-05"))] {
        let data = app
            .graphql_ok("query($f: Date, $t: Date) { summary(from: $f, to: $t, timezone: \"Europe/Berlin\") { users activeUsers tokensIssued tokensUsed usageRate } }", json!({ "f": from, "t": to }))
            .await;
        let tz: Tz = "Europe/Berlin".parse().expect("tz");
        let end = to.map(|t| {
            crate::reference::first_instant_of(tz, d(t).succ_opt().expect("next day")).naive_utc()
        });
        let in_range: Vec<_> = tokens
            .iter()
            .filter(|t| {
                let local = t.created_at.and_utc().with_timezone(&tz).date_naive();
                from.is_none_or(|f| local >= d(f)) && to.is_none_or(|x| local <= d(x))
            })
            .collect();
        let joined: Vec<_> = users
            .iter()
            .filter(|u| end.is_none_or(|e| u.joined_at < e))
            .collect();
        let used = in_range.iter().filter(|t| t.used_at.is_some()).count();
        let s = &data["summary"];
        assert_eq!(s["users"], json!(joined.len()), "{backend:?}");
        assert_eq!(
            s["activeUsers"],
            json!(joined.iter().filter(|u| u.is_active).count())
        );
        assert_eq!(s["tokensIssued"], json!(in_range.len()));
        assert_eq!(s["tokensUsed"], json!(used));
        let rate = s["usageRate"].as_f64().expect("rate");
        assert!((rate - used as f64 / in_range.len() as f64).abs() < 1e-9);
    }
}

fn error_of(body: &Value) -> (&str, &str) {
    let e = &body["errors"][0];
    (
        e["extensions"]["code"].as_str().unwrap_or("<none>"),
        e["message"].as_str().unwrap_or(""),
    )
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn bad_usage_arguments_are_bad_user_input_naming_the_argument(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let cases: &[(&str, &str)] = &[
        (
            r#"{ usageByDay(timezone: "Mars/Olympus") { date } }"#,
            "timezone",
        ),
        (r#"{ usageByDay(from: "2023-02-30") { date } }"#, "from"),
        (r#"{ usageByDay(to: "yesterday") { date } }"#, "to"),
        (
            r#"{ usageByDay(from: "2023-02-10", to: "2023-02-01") { date } }"#,
            "to",
        ),
        (
            r#"{ usageByDay(from: "2023-01-01", fill: true) { date } }"#,
            "fill",
        ),
        (r#"{ summary(timezone: "") { users } }"#, "timezone"),
        (r#"{ usageByDay(timezone: "UTC ") { date } }"#, "timezone"),
        (
            r#"{ usageByDay(timezone: " Europe/Berlin") { date } }"#,
            "timezone",
        ),
        (r#"{ usageByDay(timezone: "utc") { date } }"#, "timezone"),
        (
            r#"{ usageByDay(timezone: "europe/berlin") { date } }"#,
            "timezone",
        ),
        (
            r#"{ summary(timezone: "America/New York") { users } }"#,
            "timezone",
        ),
    ];
    for (query, argument) in cases {
        let body = app.graphql(query, json!({})).await;
        let (code, message) = error_of(&body);
        assert_eq!(code, "BAD_USER_INPUT", "{backend:?} {query}: {body}");
        assert!(
            message.contains(argument),
            "{backend:?} {query}: message does not name {argument}: {message}"
        );
        // (An enum value async-graphql refuses itself carries no `argument` extension.)
        if *argument != "granularity" {
            assert_eq!(
                body["errors"][0]["extensions"]["argument"], *argument,
                "{body}"
            );
        }
        let rest = message
            .strip_prefix(&format!("{argument}: "))
            .unwrap_or(message);
        assert!(
            !(rest.starts_with(argument) && rest[argument.len()..].starts_with([':', ' ', '('])),
            "{backend:?} {query}: the argument is named twice: {message}"
        );
    }
    // A name that is right but for case, padding or spaces gets its spelling suggested.
    for (sent, right) in [
        ("UTC ", "UTC"),
        ("utc", "UTC"),
        ("europe/berlin", "Europe/Berlin"),
        ("\tAsia/Kathmandu", "Asia/Kathmandu"),
        ("America/New York", "America/New_York"),
    ] {
        let body = app
            .graphql(
                "query($tz: String!) { usageByDay(timezone: $tz) { date } }",
                json!({ "tz": sent }),
            )
            .await;
        let (code, message) = error_of(&body);
        assert_eq!(code, "BAD_USER_INPUT", "{sent:?}: {body}");
        assert!(
            message.contains(&format!("did you mean \"{right}\"?")),
            "{sent:?}: {message}"
        );
    }
    let body = app
        .graphql(
            r#"{ usageByDay(timezone: "Mars/Olympus") { date } }"#,
            json!({}),
        )
        .await;
    assert!(!error_of(&body).1.contains("did you mean"), "{body}");
    // A range up to the cap is fine; the cap is the configured one.
    let ok = app
        .graphql(
            r#"{ usageByDay(from: "2000-01-01", to: "2010-01-07", fill: true) { date } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        ok["data"]["usageByDay"].as_array().map(Vec::len),
        Some(3_660),
        "{backend:?}"
    );
    let over = app
        .graphql(
            r#"{ usageByDay(from: "2000-01-01", to: "2010-01-08", fill: true) { date } }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_of(&over).0, "BAD_USER_INPUT", "{over}");
    assert_eq!(over["errors"][0]["extensions"]["argument"], "to", "{over}");
    // Without fill the span does not count, only what is returned (here nothing).
    let long = app
        .graphql_ok(
            r#"{ usageByDay(from: "0001-01-01", to: "9999-12-31", timezone: "Europe/Berlin") { date } }"#,
            json!({}),
        )
        .await;
    assert_eq!(long["usageByDay"], json!([]), "{backend:?}");
}

/// The argument an error names (`extensions.argument`), and its code.
fn error_argument(body: &Value) -> (&str, &str) {
    let e = &body["errors"][0];
    (
        e["extensions"]["code"].as_str().unwrap_or("<none>"),
        e["extensions"]["argument"].as_str().unwrap_or("<none>"),
    )
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn usage_without_a_range_lists_every_day_with_data_however_many_years_it_spans(
    #[case] backend: Backend,
) {
    let (users, tokens) = with_a_token_from_2012(17, 60, 400);
    let (more_users, more_tokens) = multi_year_dataset(23, 50, 3_000);
    let datasets = [(&users, &tokens), (&more_users, &more_tokens)];
    let mut cases = Vec::new();
    for (set, (_, tokens)) in datasets.iter().enumerate() {
        for tz_name in ["UTC", "Europe/Berlin", "Asia/Kathmandu", "America/New_York"] {
            let tz: Tz = tz_name.parse().expect("tz");
            for g in [Gran::Day, Gran::Week, Gran::Month] {
                for (from, to) in [
                    (None, None),
                    (Some("2012-03-04"), None),
                    (None, Some("2023-01-01")),
                    (Some("2001-01-01"), Some("2099-12-31")),
                ] {
                    let want = usage_reference(tokens, g, tz, from.map(d), to.map(d), false);
                    cases.push((set, tz_name, g, from, to, want));
                }
            }
        }
    }
    if unavailable(backend) {
        return;
    }
    // The default limit, and one below the multi-year span in weeks but above the
    // days that have data.
    for max_buckets in [3_660usize, 600] {
        for (set, (users, tokens)) in datasets.iter().enumerate() {
            let app = TestApp::spawn_with(backend, |c| c.max_buckets = max_buckets).await;
            app.insert(users, tokens).await;
            for (_, tz_name, g, from, to, want) in cases.iter().filter(|c| c.0 == set) {
                let got = usage(&app, *g, tz_name, *from, *to, false).await;
                assert_eq!(
                    &got, want,
                    "{backend:?} max {max_buckets} {tz_name} {g:?} {from:?}..{to:?}"
                );
            }
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_bucket_limit_counts_returned_buckets_and_names_an_argument_the_client_can_change(
    #[case] backend: Backend,
) {
    let (users, tokens) = multi_year_dataset(5, 20, 1_000);
    // Days with data, counted from the raw rows.
    let days: std::collections::BTreeSet<NaiveDate> =
        tokens.iter().map(|t| t.created_at.date()).collect();
    assert!(days.len() > 200, "{} days", days.len());
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn_with(backend, |c| c.max_buckets = 200).await;
    app.insert(&users, &tokens).await;
    // Too many days with data in one answer: the error names what the client sent,
    // or the range to add when it sent none.
    for (args, argument, tz) in [
        ("", "from", "UTC"),
        (r#"(from: "2012-01-01")"#, "from", "UTC"),
        (r#"(to: "2024-12-31")"#, "to", "UTC"),
        (r#"(from: "2012-01-01", to: "2024-12-31")"#, "to", "UTC"),
        (
            r#"(from: "2012-01-01", to: "2024-12-31", timezone: "Europe/Berlin")"#,
            "to",
            "Europe/Berlin",
        ),
    ] {
        let tz: Tz = tz.parse().expect("tz");
        let returned = usage_reference(&tokens, Gran::Day, tz, None, None, false).len();
        let body = app
            .graphql(
                &format!("{{ usageByDay{args} {{ date visits }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(
            error_argument(&body),
            ("BAD_USER_INPUT", argument),
            "{backend:?} {args}: {body}"
        );
        let message = error_of(&body).1;
        assert!(
            message.starts_with(&format!("{argument}: {returned} days have data"))
                && message.contains("200")
                && message.contains("from"),
            "{backend:?} {args}: {message}"
        );
    }
    // A coarser granularity fits: months with data, every one of them.
    let months = app
        .graphql_ok(
            "{ usageByDay(granularity: MONTH) { date visits } }",
            json!({}),
        )
        .await;
    let want = usage_reference(&tokens, Gran::Month, chrono_tz::UTC, None, None, false);
    assert_eq!(
        months["usageByDay"].as_array().map(Vec::len),
        Some(want.len())
    );
    assert!(want.len() <= 200);
    // A long range with few days of data is fine without fill...
    let first_days: Vec<&NaiveDate> = days.iter().take(3).collect();
    let to = first_days[2].format("%Y-%m-%d").to_string();
    let few = app
        .graphql_ok(
            &format!(r#"{{ usageByDay(from: "0001-01-01", to: "{to}", timezone: "Asia/Kathmandu") {{ date }} }}"#),
            json!({}),
        )
        .await;
    let tz: Tz = "Asia/Kathmandu".parse().expect("tz");
    let want = usage_reference(
        &tokens,
        Gran::Day,
        tz,
        Some(d("0001-01-01")),
        Some(d(&to)),
        false,
    );
    assert_eq!(
        few["usageByDay"].as_array().map(Vec::len),
        Some(want.len()),
        "{few}"
    );
    // ...but with fill the range itself is what is returned, and is limited.
    let filled = app
        .graphql(
            r#"{ usageByDay(from: "2020-01-01", to: "2020-07-19", fill: true) { date } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        error_argument(&filled),
        ("BAD_USER_INPUT", "to"),
        "{filled}"
    );
    assert!(error_of(&filled).1.contains("201 days"), "{filled}");
    let filled = app
        .graphql_ok(
            r#"{ usageByDay(from: "2020-01-01", to: "2020-07-18", fill: true) { date } }"#,
            json!({}),
        )
        .await;
    assert_eq!(filled["usageByDay"].as_array().map(Vec::len), Some(200));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn start_and_start_epoch_ms_are_one_instant_where_the_offset_has_seconds(
    #[case] backend: Backend,
) {
    // Kathmandu kept local mean time, +05:41:16, until 1920; Monrovia -00:44:30 until 1972.
    // Expected instants worked out by hand: 1900-01-01 00:00 +05:41:16 is 1899-12-31
    // 18:18:44Z; 1971-06-01 00:00 -00:44:30 is 00:44:30Z.
    let cases = [
        ("Asia/Kathmandu", "1900-01-01", -2_209_009_276_000i64),
        ("Africa/Monrovia", "1971-06-01", 44_585_070_000),
    ];
    let (users, tokens) = (
        vec![user(1, "1899-01-01 00:00:00", true)],
        vec![
            token(1, 1, "1899-12-31 18:18:44", Some("1899-12-31 19:00:00")),
            token(2, 1, "1899-12-31 18:18:43", None),
            token(3, 1, "1971-06-01 00:44:30", Some("1971-06-01 01:00:00")),
        ],
    );
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for (tz, date, epoch_ms) in cases {
        for fill in [false, true] {
            let got = app
                .graphql_ok(
                    USAGE,
                    json!({ "from": date, "to": date, "g": "DAY", "tz": tz, "fill": fill }),
                )
                .await;
            let b = &got["usageByDay"][0];
            let start = b["start"].as_str().expect("start");
            assert_eq!(
                b["startEpochMs"].as_f64(),
                Some(epoch_ms as f64),
                "{tz}: {b}"
            );
            assert_eq!(rfc3339_epoch_ms(start), Some(epoch_ms), "{tz}: {start}");
            // The local date printed is still the bucket's date.
            assert!(start.starts_with(date), "{tz}: {start}");
            assert_eq!(b["visits"], 1, "{backend:?} {tz}: {b}");
            check_start(start, epoch_ms, tz);
            if tz == "Asia/Kathmandu" {
                assert_eq!(start, "1900-01-01T00:00:44+05:42", "the README's example");
            }
        }
    }
    // Neighbouring days too, through the checks every usage test makes.
    let got = usage(
        &app,
        Gran::Day,
        "Asia/Kathmandu",
        Some("1899-12-31"),
        Some("1900-01-02"),
        true,
    )
    .await;
    assert_eq!(got.len(), 3);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_local_day_the_zone_skipped_has_no_bucket_with_or_without_fill(#[case] backend: Backend) {
    // Samoa skipped 2011-12-30. Tokens on the days around it, at every hour, in UTC.
    let users = vec![user(1, "2011-01-01 00:00:00", true)];
    let tokens: Vec<_> = (0..96)
        .map(|h| {
            let created = crate::reference::ts("2011-12-28 00:00:00") + chrono::Duration::hours(h);
            let text = created.format("%Y-%m-%d %H:%M:%S").to_string();
            token(
                h as i32 + 1,
                1,
                &text,
                (h % 2 == 0).then_some(text.as_str()),
            )
        })
        .collect();
    let tz: Tz = "Pacific/Apia".parse().expect("tz");
    if unavailable(backend) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    for fill in [false, true] {
        for g in [Gran::Day, Gran::Week] {
            let got = usage(
                &app,
                g,
                "Pacific/Apia",
                Some("2011-12-27"),
                Some("2012-01-02"),
                fill,
            )
            .await;
            let want = usage_reference(
                &tokens,
                g,
                tz,
                Some(d("2011-12-27")),
                Some(d("2012-01-02")),
                fill,
            );
            assert_eq!(got, want, "{backend:?} {g:?} fill={fill}");
            assert!(got.iter().all(|b| b.date != d("2011-12-30")), "{got:?}");
            assert!(
                got.windows(2)
                    .all(|w| w[0].start_epoch_ms < w[1].start_epoch_ms),
                "starts not strictly increasing: {got:?}"
            );
        }
        let days = usage(
            &app,
            Gran::Day,
            "Pacific/Apia",
            Some("2011-12-29"),
            Some("2011-12-31"),
            fill,
        )
        .await;
        assert_eq!(
            days.iter().map(|b| b.date).collect::<Vec<_>>(),
            vec![d("2011-12-29"), d("2011-12-31")],
            "{backend:?} fill={fill}"
        );
        // 2011-12-29 had 24 hours of tokens (-10:00), all before 2011-12-31 (+14:00).
        assert_eq!(days[0].issued, 24, "{backend:?}");
        assert_eq!(days[1].start_epoch_ms - days[0].start_epoch_ms, 86_400_000);
    }
    // The skipped day alone: nothing, even filled.
    let alone = usage(
        &app,
        Gran::Day,
        "Pacific/Apia",
        Some("2011-12-30"),
        Some("2011-12-30"),
        true,
    )
    .await;
    assert!(alone.is_empty(), "{alone:?}");
}

#[test]
fn the_independent_rfc3339_reader_agrees_with_python_and_refuses_what_rfc3339_does_not_allow() {
    // Values from Python's datetime.fromisoformat(...).timestamp().
    for (text, ms) in [
        ("1900-01-01T00:00:44+05:42", -2_209_009_276_000i64),
        ("2023-02-06T00:00:00-05:00", 1_675_659_600_000),
        ("1971-06-01T00:00:30-00:44", 44_585_070_000),
        ("2011-12-31T00:00:00+14:00", 1_325_239_200_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000),
        ("2023-02-06T00:00:00.5Z", 1_675_641_600_500),
    ] {
        assert_eq!(rfc3339_epoch_ms(text), Some(ms), "{text}");
    }
    for bad in [
        "1900-01-01T00:00:00+05:41:16",
        "1900-01-01 00:00:00+05:41",
        "1900-01-01T00:00:00",
        "2023-02-06T00:00:00+0500",
    ] {
        assert_eq!(rfc3339_epoch_ms(bad), None, "{bad}");
    }
}
