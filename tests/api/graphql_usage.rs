//! `usageByDay` and `summary` against references computed from the raw rows.

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::helpers::{TestApp, backends};
use crate::reference::{Gran, RefBucket, random_dataset, token, usage_reference, user};

const USAGE: &str =
    "query Usage($from: Date, $to: Date, $g: Granularity!, $tz: String!, $fill: Boolean!) {
  usageByDay(from: $from, to: $to, granularity: $g, timezone: $tz, fill: $fill) {
    date start startEpochMs visits tokensIssued uniqueUsers
  }
}";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

async fn usage(
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
            let start = chrono::DateTime::parse_from_rfc3339(b["start"].as_str().expect("start"))
                .expect("RFC 3339 start");
            let epoch = b["startEpochMs"].as_f64().expect("startEpochMs") as i64;
            assert_eq!(
                start.timestamp_millis(),
                epoch,
                "start and startEpochMs disagree: {b}"
            );
            // The offset printed is the zone's offset at that instant.
            let tz: Tz = tz.parse().expect("tz");
            let expected_offset = start.with_timezone(&tz).format("%:z").to_string();
            assert_eq!(start.format("%:z").to_string(), expected_offset, "{b}");
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

#[tokio::test]
async fn usage_matches_a_reference_on_random_data_for_every_granularity_and_zone() {
    let (users, tokens) = random_dataset(11, 120, 1_500);
    for backend in backends() {
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

#[tokio::test]
async fn usage_handles_dst_odd_offsets_and_boundaries_exactly() {
    let (users, tokens) = edge_tokens();
    for backend in backends() {
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
}

#[tokio::test]
async fn summary_matches_a_reference() {
    let (users, tokens) = random_dataset(5, 80, 700);
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.insert(&users, &tokens).await;
        for (from, to) in [(None, None), (Some("2022-12-20"), Some("2023-01-05"))] {
            let data = app
                .graphql_ok("query($f: Date, $t: Date) { summary(from: $f, to: $t, timezone: \"Europe/Berlin\") { users activeUsers tokensIssued tokensUsed usageRate } }", json!({ "f": from, "t": to }))
                .await;
            let tz: Tz = "Europe/Berlin".parse().expect("tz");
            let end = to.map(|t| {
                crate::reference::first_instant_of(tz, d(t).succ_opt().expect("next day"))
                    .naive_utc()
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
}

fn error_of(body: &Value) -> (&str, &str) {
    let e = &body["errors"][0];
    (
        e["extensions"]["code"].as_str().unwrap_or("<none>"),
        e["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn bad_usage_arguments_are_bad_user_input_naming_the_argument() {
    for backend in backends() {
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
        ];
        for (query, argument) in cases {
            let body = app.graphql(query, json!({})).await;
            let (code, message) = error_of(&body);
            assert_eq!(code, "BAD_USER_INPUT", "{backend:?} {query}: {body}");
            assert!(
                message.contains(argument),
                "{backend:?} {query}: message does not name {argument}: {message}"
            );
        }
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
                r#"{ usageByDay(from: "2000-01-01", to: "2010-01-08") { date } }"#,
                json!({}),
            )
            .await;
        assert_eq!(error_of(&over).0, "BAD_USER_INPUT");
    }
}
