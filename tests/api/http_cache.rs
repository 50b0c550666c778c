//! HTTP-native caching (issue 14): `ETag` and `304` on every cacheable road and method,
//! `Cache-Control`/`Age`/`Vary`, the content codings, the whole-response GraphQL cache
//! (never for error answers, never across callers), revalidation with
//! `Cache-Control: no-cache`, its byte bound and its metrics.

use std::io::Read as _;
use std::time::Duration;

use coworking_gateway::config::AuthSettings;
use reqwest::header::HeaderMap;
use rstest::rstest;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::{random_dataset, token};

const USAGE: &str =
    "{ usageByDay(granularity: DAY, timezone: \"America/New_York\") { date visits tokensIssued } }";

/// A request on one of the four cacheable roads.
struct Road {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
}

impl Road {
    async fn send(&self, app: &TestApp, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
        send(app, &self.method, &self.path, &self.body, headers).await
    }
}

fn roads() -> Vec<Road> {
    let get_query = format!(
        "/graphql?query={}",
        url::form_urlencoded::byte_serialize(USAGE.as_bytes()).collect::<String>()
    );
    let road = |name, method, path: &str, body| Road {
        name,
        method,
        path: path.to_owned(),
        body,
    };
    vec![
        road(
            "REST daily_usage",
            reqwest::Method::GET,
            "/api/reports/daily_usage",
            None,
        ),
        road(
            "REST user_visits",
            reqwest::Method::GET,
            "/api/reports/user_visits",
            None,
        ),
        road("GraphQL GET", reqwest::Method::GET, &get_query, None),
        road(
            "GraphQL POST",
            reqwest::Method::POST,
            "/graphql",
            Some(json!({ "query": USAGE })),
        ),
    ]
}

async fn send(
    app: &TestApp,
    method: &reqwest::Method,
    path: &str,
    body: &Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, Vec<u8>) {
    let mut req = app
        .client
        .request(method.clone(), format!("{}{path}", app.base));
    if let Some(body) = body {
        req = req.json(body);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body").to_vec();
    (status, headers, bytes)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn seeded(
    backend: Backend,
    tweak: impl FnOnce(&mut coworking_gateway::config::Config),
) -> TestApp {
    let (users, tokens) = random_dataset(14, 300, 3_000);
    let app = TestApp::spawn_with(backend, tweak).await;
    app.insert(&users, &tokens).await;
    app
}

/// A used token written behind the gateway's back: the data under the answers changes.
async fn add_used_token(app: &TestApp, id: i32, user: i32, created: &str, used: &str) {
    app.insert(&[], &[token(id, user, created, Some(used))])
        .await;
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_cacheable_road_has_an_etag_and_answers_304_when_it_matches(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    for ttl in [30, 0] {
        let app = seeded(backend, |c| c.cache.ttl = Duration::from_secs(ttl)).await;
        for road in roads() {
            let what = format!("{backend:?} ttl {ttl} {}", road.name);
            let (status, h, first) = road.send(&app, &[]).await;
            assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&first));
            let etag = header(&h, "etag").to_owned();
            // Strong on REST, and on GraphQL without a TTL; weak on a GraphQL answer that
            // carries its cache instants (the tag covers the answer without them).
            let weak_graphql = ttl > 0 && road.name.starts_with("GraphQL");
            let opaque = etag
                .strip_prefix("W/")
                .filter(|_| weak_graphql)
                .unwrap_or(&etag);
            assert!(
                opaque.starts_with('"') && opaque.ends_with('"') && opaque.len() > 4,
                "{what}: ETag {etag:?}"
            );
            assert_eq!(
                etag.starts_with("W/"),
                weak_graphql,
                "{what}: ETag {etag:?}"
            );
            assert_eq!(
                header(&h, "vary"),
                "accept, accept-encoding, authorization, x-api-key",
                "{what}"
            );
            let cc = header(&h, "cache-control");
            if ttl == 0 {
                assert_eq!(cc, "no-cache", "{what}");
            } else {
                assert!(
                    cc.starts_with("max-age=") && cc.contains("stale-while-revalidate="),
                    "{what}: {cc}"
                );
            }
            assert!(header(&h, "age").parse::<u64>().is_ok(), "{what}: Age");
            // The same answer again: the same tag; naming it gives 304 with no body.
            let (_, h2, second) = road.send(&app, &[]).await;
            assert_eq!(second, first, "{what}: the answer changed");
            assert_eq!(header(&h2, "etag"), etag, "{what}");
            let (status, h3, empty) = road.send(&app, &[("if-none-match", etag.as_str())]).await;
            assert_eq!(status, 304, "{what}");
            assert!(empty.is_empty(), "{what}: a 304 has no body");
            assert_eq!(header(&h3, "etag"), etag, "{what}");
            assert!(!header(&h3, "cache-control").is_empty(), "{what}");
            // Weak comparison, lists, and a tag of other bytes.
            let weak = format!("\"nope\", W/{opaque}");
            let (status, _, _) = road.send(&app, &[("if-none-match", weak.as_str())]).await;
            assert_eq!(status, 304, "{what}: W/ and lists");
            let (status, _, again) = road
                .send(&app, &[("if-none-match", "\"0-0000000000000000\"")])
                .await;
            assert_eq!(status, 200, "{what}");
            assert_eq!(again, first, "{what}");
        }
        let text = app.metrics_text().await;
        assert!(
            metric(&text, "http_responses_not_modified_total ") >= 8.0,
            "{backend:?} ttl {ttl}: 304s counted"
        );
        // The tag follows the bytes: a new token changes the report and its tag.
        if ttl == 0 {
            let (_, h, _) = send(
                &app,
                &reqwest::Method::GET,
                "/api/reports/daily_usage",
                &None,
                &[],
            )
            .await;
            add_used_token(
                &app,
                900_001,
                1,
                "2023-02-10 12:00:00",
                "2023-02-10 12:05:00",
            )
            .await;
            let (status, h2, _) = send(
                &app,
                &reqwest::Method::GET,
                "/api/reports/daily_usage",
                &None,
                &[("if-none-match", header(&h, "etag"))],
            )
            .await;
            assert_eq!(status, 200, "{backend:?}: a stale tag must not get 304");
            assert_ne!(header(&h2, "etag"), header(&h, "etag"));
        }
    }
}

fn decode(coding: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        "zstd" => out = zstd::stream::decode_all(bytes).expect("zstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn each_coding_decodes_to_the_identity_bytes(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    for ttl in [30, 0] {
        let app = seeded(backend, |c| c.cache.ttl = Duration::from_secs(ttl)).await;
        for road in roads() {
            let what = format!("{backend:?} ttl {ttl} {}", road.name);
            let (_, h, identity) = road.send(&app, &[]).await;
            assert!(
                h.get("content-encoding").is_none(),
                "{what}: identity when not asked"
            );
            if identity.len() < 1024 {
                // Too short to be worth compressing: identity whatever is accepted.
                let (_, h, same) = road
                    .send(&app, &[("accept-encoding", "gzip, br, zstd")])
                    .await;
                assert!(h.get("content-encoding").is_none(), "{what}");
                assert_eq!(same, identity, "{what}");
                continue;
            }
            for coding in ["gzip", "br", "zstd"] {
                let (status, h, wire) = road.send(&app, &[("accept-encoding", coding)]).await;
                assert_eq!(status, 200, "{what} {coding}");
                assert_eq!(header(&h, "content-encoding"), coding, "{what}");
                assert!(
                    wire.len() < identity.len(),
                    "{what} {coding}: {} vs {}",
                    wire.len(),
                    identity.len()
                );
                assert_eq!(decode(coding, &wire), identity, "{what} {coding}");
            }
            // A preference list: the highest q wins; refused codings are not used.
            let (_, h, _) = road
                .send(&app, &[("accept-encoding", "gzip;q=1, br;q=0.2, zstd;q=0")])
                .await;
            assert_eq!(header(&h, "content-encoding"), "gzip", "{what}");
            let (_, h, same) = road.send(&app, &[("accept-encoding", "deflate")]).await;
            assert!(
                h.get("content-encoding").is_none(),
                "{what}: deflate is not offered"
            );
            assert_eq!(same, identity);
        }
        // Short answers go out as they are.
        let (_, h, small) = send(
            &app,
            &reqwest::Method::POST,
            "/graphql",
            &Some(json!({ "query": "{ summary { users } }" })),
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert!(
            small.len() < 1024 && h.get("content-encoding").is_none(),
            "{backend:?}: {} bytes",
            small.len()
        );
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_graphql_etag_survives_refills_of_the_same_data_and_follows_new_data(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    let app = seeded(backend, |_| {}).await;
    let road = roads().pop().expect("the GraphQL POST road");
    let (_, h, first) = road.send(&app, &[]).await;
    let tag = header(&h, "etag").to_owned();
    // A revalidation (a refill now) by a poller that holds `tag`.
    let revalidate = |tag: &str| {
        let tag = tag.to_owned();
        let (road, app) = (&road, &app);
        async move {
            road.send(
                app,
                &[("cache-control", "no-cache"), ("if-none-match", &tag)],
            )
            .await
        }
    };
    let at = |body: &[u8]| -> String {
        let v: Value = serde_json::from_slice(body).expect("JSON");
        v["extensions"]["cache"]["dataAt"].to_string()
    };
    // A refill (here a revalidation, a second later) reads the data again: the instants
    // in the body move, the tag does not, and the poller's tag still gets 304.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, h, empty) = revalidate(&tag).await;
    assert_eq!(status, 304, "{backend:?}: same data after a refill");
    assert!(empty.is_empty());
    assert_eq!(header(&h, "etag"), tag);
    let (status, h, refilled) = road.send(&app, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), "HIT");
    assert_ne!(
        at(&refilled),
        at(&first),
        "{backend:?}: the refill moved dataAt"
    );
    assert_eq!(header(&h, "etag"), tag, "{backend:?}: and kept the tag");
    let (status, _, _) = road.send(&app, &[("if-none-match", tag.as_str())]).await;
    assert_eq!(status, 304);
    // New data: a new tag, and the old one gets the new answer.
    add_used_token(
        &app,
        900_004,
        1,
        "2023-02-10 12:00:00",
        "2023-02-10 12:05:00",
    )
    .await;
    let (status, h, changed) = revalidate(&tag).await;
    assert_eq!(status, 200, "{backend:?}: the data changed");
    assert_ne!(header(&h, "etag"), tag);
    assert_ne!(changed, refilled);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn graphql_answers_are_served_from_the_cache_until_revalidated(#[case] backend: Backend) {
    if unavailable(backend) {
        return;
    }
    let app = seeded(backend, |_| {}).await;
    let post = |q: &str| Some(json!({ "query": q }));
    let (_, h, miss) = send(&app, &reqwest::Method::POST, "/graphql", &post(USAGE), &[]).await;
    assert_eq!(header(&h, "x-cache"), "MISS");
    // The same document spelled differently is the same question.
    let respelled = USAGE
        .replace(' ', "  ")
        .replace("{ date", "{\n  # the day\n  date,");
    let (_, h, hit) = send(
        &app,
        &reqwest::Method::POST,
        "/graphql",
        &post(&respelled),
        &[],
    )
    .await;
    assert_eq!(header(&h, "x-cache"), "HIT");
    assert_eq!(hit, miss);
    let note: Value = serde_json::from_slice(&hit).expect("JSON");
    assert!(
        note["extensions"]["cache"]["freshUntil"].is_string(),
        "{note}"
    );
    // A new used token: the cache still answers what it holds...
    add_used_token(
        &app,
        900_002,
        1,
        "2023-02-10 12:00:00",
        "2023-02-10 12:05:00",
    )
    .await;
    let (_, _, held) = send(&app, &reqwest::Method::POST, "/graphql", &post(USAGE), &[]).await;
    assert_eq!(held, miss);
    // ...until a client asks to revalidate: computed from the rows, and stored.
    let (_, h, fresh) = send(
        &app,
        &reqwest::Method::POST,
        "/graphql",
        &post(USAGE),
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(header(&h, "x-cache"), "MISS");
    assert_ne!(
        fresh, miss,
        "{backend:?}: revalidation must see the new token"
    );
    let (_, h, after) = send(&app, &reqwest::Method::POST, "/graphql", &post(USAGE), &[]).await;
    assert_eq!(header(&h, "x-cache"), "HIT");
    assert_eq!(after, fresh);
    // The same holds on the REST road.
    let get = reqwest::Method::GET;
    let (_, _, before) = send(&app, &get, "/api/reports/daily_usage", &None, &[]).await;
    add_used_token(
        &app,
        900_003,
        2,
        "2023-02-11 12:00:00",
        "2023-02-11 12:05:00",
    )
    .await;
    let (_, _, cached) = send(&app, &get, "/api/reports/daily_usage", &None, &[]).await;
    assert_eq!(cached, before);
    let (_, _, renewed) = send(
        &app,
        &get,
        "/api/reports/daily_usage",
        &None,
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_ne!(
        renewed, before,
        "{backend:?}: REST revalidation must see the new token"
    );

    // Error answers are never stored.
    let bad = "{ usageByDay(granularity: DAY, timezone: \"Mars/Olympus\") { date } }";
    for _ in 0..2 {
        let (status, h, body) =
            send(&app, &reqwest::Method::POST, "/graphql", &post(bad), &[]).await;
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("errors"));
        assert_eq!(header(&h, "cache-control"), "no-store");
        assert!(h.get("etag").is_none() && h.get("x-cache").is_none());
    }
    let text = app.metrics_text().await;
    let hits = metric(
        &text,
        "cache_requests_total{cache=\"graphql_responses\",result=\"hit\"} ",
    );
    let misses = metric(
        &text,
        "cache_requests_total{cache=\"graphql_responses\",result=\"miss\"} ",
    );
    assert!(
        hits >= 3.0 && misses >= 3.0,
        "{backend:?}: hits {hits}, misses {misses}"
    );
    assert!(metric(&text, "cache_entries{cache=\"graphql_responses\"} ") >= 1.0);
    assert!(metric(&text, "cache_bytes{cache=\"graphql_responses\"} ") >= hit.len() as f64);
    assert!(
        metric(
            &text,
            "cache_requests_total{cache=\"rest_bodies\",result=\"hit\"} "
        ) >= 1.0
    );
    assert!(
        metric(
            &text,
            "cache_requests_total{cache=\"reports\",result=\"miss\"} "
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_graphql_cache_stays_within_its_bytes() {
    const MAX_BYTES: u64 = 1 << 20;
    let app = seeded(Backend::Sqlite, |c| c.cache.max_bytes = MAX_BYTES).await;
    // 300 distinct long answers (~40 KB each): many times the quarter they may hold.
    for i in 0..300 {
        let q = format!(
            "{{ usageByDay(granularity: DAY, timezone: \"Etc/GMT+{}\", fill: true, from: \"2015-01-01\", to: \"2016-12-31\") {{ date visits tokensIssued }} q{i}: summary {{ users }} }}",
            i % 12
        );
        let (status, _, body) = send(
            &app,
            &reqwest::Method::POST,
            "/graphql",
            &Some(json!({ "query": q })),
            &[("accept-encoding", "gzip")],
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    let text = app.metrics_text().await;
    let held = metric(&text, "cache_bytes{cache=\"graphql_responses\"} ");
    let entries = metric(&text, "cache_entries{cache=\"graphql_responses\"} ");
    assert!(
        held <= (MAX_BYTES / 4) as f64,
        "{held} bytes held, bound {}",
        MAX_BYTES / 4
    );
    assert!((2.0..300.0).contains(&entries), "{entries} entries");
}

#[tokio::test]
async fn with_auth_on_cached_answers_are_per_caller_and_never_served_without_credentials() {
    let dir = std::env::temp_dir().join(format!("gw-httpcache-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let digest = |k: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(k.as_bytes()))
    };
    let (alice, bob) = ("ck_test_alice_key_1", "ck_test_bob_key_22");
    std::fs::write(
        dir.join("keys"),
        format!("{}\n{}\n", digest(alice), digest(bob)),
    )
    .expect("keys");
    let auth = AuthSettings {
        auth_api_key_hashes_file: Some(dir.join("keys").display().to_string()),
        ..AuthSettings::default()
    };
    let app = seeded(Backend::Sqlite, |c| c.auth = auth).await;
    let body = Some(json!({ "query": USAGE }));
    let post = reqwest::Method::POST;
    let (status, h, first) = send(&app, &post, "/graphql", &body, &[("x-api-key", alice)]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "x-cache"), "MISS");
    assert!(
        header(&h, "cache-control").starts_with("private, max-age="),
        "{:?}",
        h
    );
    let (_, h, _) = send(&app, &post, "/graphql", &body, &[("x-api-key", alice)]).await;
    assert_eq!(header(&h, "x-cache"), "HIT");
    // Another caller: the same data, computed for them, not alice's entry (the report
    // under it may come from the report cache, which holds no caller's data).
    let misses = |t: &str| {
        metric(
            t,
            "cache_requests_total{cache=\"graphql_responses\",result=\"miss\"} ",
        )
    };
    let before = misses(&app.metrics_text().await);
    let (_, h, theirs) = send(&app, &post, "/graphql", &body, &[("x-api-key", bob)]).await;
    assert_eq!(
        misses(&app.metrics_text().await),
        before + 1.0,
        "a cached answer crossed callers"
    );
    let strip = |b: &[u8]| {
        let mut v: Value = serde_json::from_slice(b).expect("JSON");
        crate::helpers::strip_cache_note(&mut v);
        v
    };
    assert_eq!(strip(&theirs), strip(&first));
    // No or bad credentials: refused, even with the cached answer's ETag.
    let etag = header(&h, "etag").to_owned();
    for creds in [vec![], vec![("x-api-key", "ck_wrong")]] {
        let mut hs = creds.clone();
        hs.push(("if-none-match", etag.as_str()));
        let (status, h, body) = send(&app, &post, "/graphql", &body, &hs).await;
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
        assert!(h.get("etag").is_none() && !String::from_utf8_lossy(&body).contains("usageByDay"));
        let (status, _, _) = send(
            &app,
            &reqwest::Method::GET,
            "/api/reports/daily_usage",
            &None,
            &hs,
        )
        .await;
        assert_eq!(status, 401);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A POST body read once is not parsed again while the cache is on: the same bytes are
/// answered from the stored answer, and, once that expired, executed again from what the
/// first read found (document, operation name, variables), giving what a fresh parse of
/// the same request gives. Other bytes (other variables) are another question.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_repeated_post_body_is_answered_like_a_fresh_parse_before_and_after_expiry(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    let app = seeded(backend, |c| {
        c.cache.ttl = Duration::from_secs(1);
        c.cache.stale = Duration::ZERO;
    })
    .await;
    // Two operations: executing the wrong one, or without the variables, answers otherwise.
    let document = "query Other { summary { users } } \
        query Days($tz: String!) { usageByDay(granularity: DAY, timezone: $tz) { date visits } }";
    let body = |tz: &str, spaced: bool| {
        let pad = if spaced { "  " } else { "" };
        format!(
            r#"{{{pad}"query":{},"operationName":"Days","variables":{{"tz":"{tz}"}}}}"#,
            serde_json::to_string(document).expect("JSON")
        )
    };
    let post = |raw: String, extra: Option<(&'static str, &'static str)>| {
        let mut req = app
            .client
            .post(format!("{}/graphql", app.base))
            .header("content-type", "application/json")
            .body(raw);
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        async move {
            let res = req.send().await.expect("POST");
            let cache = header(res.headers(), "x-cache").to_owned();
            let mut v: Value = res.json().await.expect("JSON");
            crate::helpers::strip_cache_note(&mut v);
            (cache, v)
        }
    };
    let (cache, first) = post(body("America/New_York", false), None).await;
    assert_eq!(cache, "MISS");
    assert!(
        first["data"]["usageByDay"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{first}"
    );
    let (cache, again) = post(body("America/New_York", false), None).await;
    assert_eq!((cache.as_str(), &again), ("HIT", &first), "{backend:?}");
    // Other variables, other bytes: another answer (New York and UTC days differ here).
    let (cache, utc) = post(body("UTC", false), None).await;
    assert_eq!(cache, "MISS");
    assert_ne!(utc, first, "{backend:?}: the answer for other variables");
    // New data, and the stored answer expires: the same bytes are executed again.
    add_used_token(
        &app,
        900_010,
        1,
        "2023-02-11 12:00:00",
        "2023-02-11 12:05:00",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (cache, after) = post(body("America/New_York", false), None).await;
    assert_eq!(cache, "MISS", "{backend:?}");
    assert_ne!(after, first, "{backend:?}: the new token is counted");
    // A fresh parse of the same request (other bytes: spaced) gives the same answer.
    let (_, fresh) = post(
        body("America/New_York", true),
        Some(("cache-control", "no-cache")),
    )
    .await;
    assert_eq!(after, fresh, "{backend:?}");
}
