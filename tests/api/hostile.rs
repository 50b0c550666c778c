//! Hostile input against one running gateway: a table of a few hundred malformed, oversized,
//! mistyped or malicious requests. Each must get a 4xx with a JSON error or a correct 200,
//! never a 5xx, within a time bound; and a normal query must still succeed right after it.
//!
//! Requests reqwest refuses to send (invalid UTF-8 in the request line, malformed headers,
//! smuggling-style framing) go over a raw TCP socket.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rstest::rstest;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, unavailable};
use crate::reference::random_dataset;

/// No hostile request may take longer than this to be answered.
const BOUND: Duration = Duration::from_secs(10);

const BASELINE: &str = "{ summary { users tokensIssued } }";

/// Codes a correct answer to a hostile request may carry: the caller's fault, not ours.
const CLIENT_CODES: &[&str] = &[
    "BAD_USER_INPUT",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "PERSISTED_QUERY_NOT_FOUND",
];

const MIB: usize = 1024 * 1024;

#[derive(Debug, Clone)]
enum Expect {
    /// Any 4xx with a JSON error, or a correct 200.
    Any,
    /// Exactly this status (with the same body rules).
    Status(u16),
    /// This status and this `error.code`.
    Error(u16, &'static str),
    /// 200 with data and no errors.
    Data,
    /// 200 with at least one GraphQL error.
    Errors,
    /// 200 with a GraphQL error of this code.
    Code(&'static str),
    /// 200 with a BAD_USER_INPUT error whose message names this argument.
    BadInput(&'static str),
    /// Not HTTP/1.1 as hyper parses it: refused by the HTTP layer before any route runs,
    /// so a 4xx status line (with a JSON body if it has a body at all), or the connection
    /// closed without an answer. Never a 5xx, never a hang.
    Protocol,
}

enum Req {
    Http {
        method: Method,
        /// Path and query, after the base URL.
        target: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Option<Vec<u8>>,
    },
    /// Bytes written as they are; the request line says which route answers.
    Raw { bytes: Vec<u8> },
}

struct Case {
    name: String,
    req: Req,
    expect: Expect,
}

struct Reply {
    status: u16,
    content_type: String,
    allow: bool,
    body: Vec<u8>,
}

fn case(name: impl Into<String>, req: Req, expect: Expect) -> Case {
    Case {
        name: name.into(),
        req,
        expect,
    }
}

fn h(name: &str, value: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (name.to_owned(), value.as_ref().to_vec())
}

fn ct_json() -> (String, Vec<u8>) {
    h("content-type", "application/json")
}

fn http(
    method: &str,
    target: impl Into<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
) -> Req {
    Req::Http {
        method: Method::from_bytes(method.as_bytes()).expect("method"),
        target: target.into(),
        headers,
        body,
    }
}

/// POST /graphql with a JSON content type and these exact bytes.
fn post_bytes(body: impl Into<Vec<u8>>) -> Req {
    http("POST", "/graphql", vec![ct_json()], Some(body.into()))
}

/// POST /graphql with this JSON value.
fn post_json(body: &Value) -> Req {
    post_bytes(body.to_string())
}

fn gql(query: &str, variables: Value) -> Req {
    post_json(&json!({ "query": query, "variables": variables }))
}

fn get(target: impl Into<String>) -> Req {
    http("GET", target, vec![], None)
}

/// Bytes written to the socket as they are.
fn raw(bytes: impl Into<Vec<u8>>) -> Req {
    Req::Raw {
        bytes: bytes.into(),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

const SQL: &[&str] = &[
    "' OR '1'='1",
    "1; DROP TABLE users; --",
    "\" OR 1=1 --",
    "Robert'); DROP TABLE tokens;--",
    "' UNION SELECT id, first_name FROM users --",
    "%' AND 1=1 --",
    "'; SELECT pg_sleep(30); --",
    "$$; DELETE FROM tokens; $$",
];

const ROUTES: &[&str] = &[
    "/graphql",
    "/api/reports/daily_usage",
    "/api/reports/user_visits",
    "/health_check",
    "/readiness_check",
    "/metrics",
];

#[allow(clippy::too_many_lines)]
fn cases() -> Vec<Case> {
    use Expect::*;
    let mut c: Vec<Case> = Vec::new();
    let ok_query = r#"{"query":"{ summary { users } }"}"#;

    // --- Malformed JSON bodies ---------------------------------------------------------
    for (name, body) in [
        ("empty body", String::new()),
        ("lone brace", "{".to_owned()),
        ("truncated key", r#"{"query":"#.to_owned()),
        (
            "truncated object",
            r#"{"query":"{ summary { users } }""#.to_owned(),
        ),
        ("truncated string", r#"{"query":"{ summary { us"#.to_owned()),
        ("trailing garbage", format!("{ok_query} trailing")),
        ("trailing brace", format!("{ok_query}}}")),
        ("two documents", format!("{ok_query}{ok_query}")),
        ("json null", "null".to_owned()),
        ("json true", "true".to_owned()),
        ("json number", "42".to_owned()),
        ("json string", r#""{ summary { users } }""#.to_owned()),
        ("array of null", "[null]".to_owned()),
        ("array of numbers", "[1,2,3]".to_owned()),
        ("query null", r#"{"query":null}"#.to_owned()),
        ("query number", r#"{"query":42}"#.to_owned()),
        (
            "query array",
            r#"{"query":["{ summary { users } }"]}"#.to_owned(),
        ),
        ("query object", r#"{"query":{}}"#.to_owned()),
        ("empty object", "{}".to_owned()),
        ("variables only", r#"{"variables":{}}"#.to_owned()),
        (
            "variables a string",
            r#"{"query":"{ summary { users } }","variables":"{}"}"#.to_owned(),
        ),
        (
            "variables an array",
            r#"{"query":"{ summary { users } }","variables":[1]}"#.to_owned(),
        ),
        (
            "variables a number",
            r#"{"query":"{ summary { users } }","variables":42}"#.to_owned(),
        ),
        (
            "operationName a number",
            r#"{"query":"{ summary { users } }","operationName":42}"#.to_owned(),
        ),
        (
            "extensions a string",
            r#"{"query":"{ summary { users } }","extensions":"x"}"#.to_owned(),
        ),
        (
            "persistedQuery a string",
            r#"{"query":"{ summary { users } }","extensions":{"persistedQuery":"x"}}"#.to_owned(),
        ),
        (
            "duplicate query keys",
            r#"{"query":"{ summary { users } }","query":"{ nope }"}"#.to_owned(),
        ),
        (
            "single quotes",
            "{'query':'{ summary { users } }'}".to_owned(),
        ),
        (
            "unquoted key",
            "{query:\"{ summary { users } }\"}".to_owned(),
        ),
        ("comment", format!("// hi\n{ok_query}")),
        (
            "NaN variable",
            r#"{"query":"query($id: Int!) { user(id: $id) { id } }","variables":{"id":NaN}}"#
                .to_owned(),
        ),
        (
            "Infinity variable",
            r#"{"query":"query($id: Int!) { user(id: $id) { id } }","variables":{"id":Infinity}}"#
                .to_owned(),
        ),
        (
            "1e400 variable",
            r#"{"query":"query($id: Int!) { user(id: $id) { id } }","variables":{"id":1e400}}"#
                .to_owned(),
        ),
        (
            "lone surrogate escape",
            r#"{"query":"{ summary { users } }\ud800"}"#.to_owned(),
        ),
        (
            "raw control character",
            "{\"query\":\"{ summary {\u{1} users } }\"}".to_owned(),
        ),
        ("byte order mark", format!("\u{feff}{ok_query}")),
        ("nul byte", format!("{ok_query}\0")),
        ("whitespace only", " \n\t ".to_owned()),
        ("arrays 100k deep", nested("[", "]", 100_000, "")),
        (
            "objects 100k deep",
            format!("{}1{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000)),
        ),
        (
            "variables 100k deep",
            format!(
                r#"{{"query":"{{ summary {{ users }} }}","variables":{{"x":{}}}}}"#,
                nested("[", "]", 100_000, "")
            ),
        ),
        (
            "batch 100k deep",
            format!("[{}]", nested("[", "]", 100_000, ok_query)),
        ),
    ] {
        c.push(case(
            format!("malformed JSON: {name}"),
            post_bytes(body),
            Any,
        ));
    }
    c.push(case(
        "malformed JSON is a 400",
        post_bytes("{"),
        Status(400),
    ));
    c.push(case(
        "arrays 100k deep are a 400",
        post_bytes(nested("[", "]", 100_000, "")),
        Status(400),
    ));

    // --- Invalid UTF-8 and other encodings in bodies -------------------------------------
    for (name, body) in [
        ("0xff 0xfe", b"\xff\xfe".to_vec()),
        ("invalid byte inside the query", b"{\"query\":\"{ summary { users \xff } }\"}".to_vec()),
        ("overlong slash", b"{\"query\":\"\xc0\xaf\"}".to_vec()),
        ("truncated multibyte", b"{\"query\":\"\xe2\x82\"}".to_vec()),
        ("surrogate encoded in UTF-8", b"{\"query\":\"\xed\xa0\x80\"}".to_vec()),
        (
            "UTF-16LE body",
            ok_query.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        ),
        (
            "UTF-16BE body with BOM",
            [0xfe, 0xff]
                .into_iter()
                .chain(ok_query.encode_utf16().flat_map(u16::to_be_bytes))
                .collect(),
        ),
        ("random bytes", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("invalid byte in a variable", b"{\"query\":\"query($tz: String!) { summary(timezone: $tz) { users } }\",\"variables\":{\"tz\":\"\xff\"}}".to_vec()),
    ] {
        c.push(case(format!("invalid UTF-8 body: {name}"), post_bytes(body), Any));
    }

    // --- Content types --------------------------------------------------------------------
    let content_types: [Option<&[u8]>; 14] = [
        None,
        Some(b"text/plain".as_slice()),
        Some(b"application/x-www-form-urlencoded".as_slice()),
        Some(b"multipart/form-data; boundary=xyz".as_slice()),
        Some(b"multipart/form-data".as_slice()),
        Some(b"application/graphql".as_slice()),
        Some(b"application/xml".as_slice()),
        Some(b"application/json; charset=latin1".as_slice()),
        Some(b"application/json; charset=utf-16".as_slice()),
        Some(b"application/jsonx".as_slice()),
        Some(b"application/json, text/plain".as_slice()),
        Some(b"*/*".as_slice()),
        Some(b"application/\xff\xfe".as_slice()),
        Some(b"".as_slice()),
    ];
    c.push(case(
        "content type with control characters (raw)",
        raw(format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: \x01\x02\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ok_query}",
            ok_query.len()
        )),
        Protocol,
    ));
    for ct in content_types {
        let shown = ct.map_or_else(
            || "none".to_owned(),
            |v| String::from_utf8_lossy(v).into_owned(),
        );
        let headers: Vec<(String, Vec<u8>)> =
            ct.map(|v| h("content-type", v)).into_iter().collect();
        c.push(case(
            format!("content type {shown:?} with a JSON body"),
            http(
                "POST",
                "/graphql",
                headers,
                Some(ok_query.as_bytes().to_vec()),
            ),
            Any,
        ));
    }
    c.push(case(
        "content type application/graphql with a bare query",
        http(
            "POST",
            "/graphql",
            vec![h("content-type", "application/graphql")],
            Some(b"{ summary { users } }".to_vec()),
        ),
        Any,
    ));
    c.push(case(
        "multipart body with a bogus boundary",
        http(
            "POST",
            "/graphql",
            vec![h("content-type", "multipart/form-data; boundary=xyz")],
            Some(b"--xyz\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{\"query\":\r\n--xyz--".to_vec()),
        ),
        Any,
    ));
    c.push(case(
        "form-encoded body",
        http(
            "POST",
            "/graphql",
            vec![h("content-type", "application/x-www-form-urlencoded")],
            Some(format!("query={}", encode("{ summary { users } }")).into_bytes()),
        ),
        Any,
    ));

    // --- Methods --------------------------------------------------------------------------
    for route in ROUTES {
        let wrong: &[&str] = if *route == "/graphql" {
            &["PUT", "DELETE", "PATCH", "OPTIONS", "FOO"]
        } else {
            &["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"]
        };
        for m in wrong {
            c.push(case(
                format!("{m} {route}"),
                http(
                    m,
                    *route,
                    vec![ct_json()],
                    Some(ok_query.as_bytes().to_vec()),
                ),
                Error(405, "METHOD_NOT_ALLOWED"),
            ));
        }
        c.push(case(
            format!("HEAD {route}"),
            http("HEAD", *route, vec![], None),
            Any,
        ));
        for m in ["TRACE", "CONNECT"] {
            c.push(case(
                format!("{m} {route} (raw)"),
                raw(format!(
                    "{m} {route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )),
                Any,
            ));
        }
    }

    // --- Paths ----------------------------------------------------------------------------
    for path in [
        "/",
        "/graphq",
        "/graphql/",
        "/GRAPHQL",
        "/graphql/x",
        "/api",
        "/api/reports",
        "/api/reports/",
        "/api/reports/daily_usage/",
        "/api/reports/nope",
        "//graphql",
        "/graphql;x=1",
        "/%ff%fe",
        "/metrics/x",
        "/health_check/../graphql/x",
    ] {
        c.push(case(
            format!("unknown path {path}"),
            get(path),
            Error(404, "NOT_FOUND"),
        ));
    }
    c.push(case(
        "an 8 kB path",
        get(format!("/{}", "a".repeat(8 * 1024))),
        Error(404, "NOT_FOUND"),
    ));
    for path in [
        "/api/reports/%2e%2e/%2e%2e/etc/passwd",
        "/api/reports/../../etc/passwd",
        "/graphql%00",
        "/\u{7f}",
        "*",
        "http://evil.example/graphql",
    ] {
        c.push(case(
            format!("raw path {path:?}"),
            raw(format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )),
            Protocol,
        ));
    }

    // --- Query strings --------------------------------------------------------------------
    let q = |s: &str| format!("/graphql?query={}", encode(s));
    c.push(case(
        "GET /graphql with a query",
        get(q("{ summary { users } }")),
        Data,
    ));
    for (name, target) in [
        ("no query", "/graphql".to_owned()),
        ("empty query", "/graphql?query=".to_owned()),
        ("invalid UTF-8 query", "/graphql?query=%FF%FE".to_owned()),
        (
            "invalid UTF-8 variables",
            format!("{}&variables=%FF", q("{ summary { users } }")),
        ),
        (
            "variables not JSON",
            format!("{}&variables=notjson", q("{ summary { users } }")),
        ),
        ("bad percent escape", "/graphql?query=%zz".to_owned()),
        ("lone percent", "/graphql?query=%".to_owned()),
        ("only percents", "/graphql?%%%%".to_owned()),
        ("bracket key", "/graphql?query[]=x".to_owned()),
        (
            "two queries",
            format!(
                "{}&query={}",
                q("{ summary { users } }"),
                encode("{ nope }")
            ),
        ),
        (
            "missing operation",
            format!(
                "{}&operationName=Missing",
                q("query A { summary { users } }")
            ),
        ),
        ("a mutation", q("mutation { summary { users } }")),
        ("a parse error", q("{ summary { users }")),
        ("SQL in the query", q("'; DROP TABLE users; --")),
        (
            "unknown persisted query",
            format!(
                "/graphql?extensions={}",
                encode(
                    r#"{"persistedQuery":{"version":1,"sha256Hash":"0000000000000000000000000000000000000000000000000000000000000000"}}"#
                )
            ),
        ),
        (
            "query of 60 kB",
            q(&format!(
                "{}{{ summary {{ users }} }}",
                " ".repeat(60 * 1024)
            )),
        ),
        (
            "nested 2,000 deep",
            q(&nested("{ summary ", "}", 2_000, "users")),
        ),
    ] {
        c.push(case(format!("GET /graphql: {name}"), get(target), Any));
    }
    c.push(case(
        "GET /graphql with an unknown persisted hash",
        get(format!(
            "/graphql?extensions={}",
            encode(r#"{"persistedQuery":{"version":1,"sha256Hash":"1111111111111111111111111111111111111111111111111111111111111111"}}"#)
        )),
        Code("PERSISTED_QUERY_NOT_FOUND"),
    ));
    c.push(case(
        "GET /graphql with no query is a 400",
        get("/graphql"),
        Status(400),
    ));
    // Past the 64 kB a URI may hold in the http crate: only a raw socket can send these.
    c.push(case(
        "a query string of 1 MiB (raw)",
        raw(format!(
            "GET /graphql?query={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "a".repeat(MIB)
        )),
        Protocol,
    ));
    c.push(case(
        "a query string of 100 kB (raw)",
        raw(format!(
            "GET /graphql?query={}%7Bsummary%7Busers%7D%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "+".repeat(100 * 1024)
        )),
        Protocol,
    ));
    for route in &ROUTES[1..] {
        for (name, qs) in [
            ("invalid UTF-8", "x=%FF%FE".to_owned()),
            ("SQL", format!("id={}", encode("1; DROP TABLE users; --"))),
            ("60 kB", format!("x={}", "a".repeat(60 * 1024))),
            ("junk", "%%&&==;;".to_owned()),
        ] {
            c.push(case(
                format!("GET {route} with a {name} query string"),
                get(format!("{route}?{qs}")),
                Status(200),
            ));
        }
    }

    // --- Huge bodies ----------------------------------------------------------------------
    let two_mib_json = format!(
        r#"{{"query":"{}{{ summary {{ users }} }}"}}"#,
        " ".repeat(2 * MIB)
    );
    c.push(case(
        "2 MiB valid JSON with Content-Length",
        post_bytes(two_mib_json.clone()),
        Error(413, "PAYLOAD_TOO_LARGE"),
    ));
    c.push(case(
        "2 MiB of zeros",
        post_bytes(vec![0u8; 2 * MIB]),
        Error(413, "PAYLOAD_TOO_LARGE"),
    ));
    c.push(case(
        "2 MiB to a REST report",
        http(
            "GET",
            "/api/reports/daily_usage",
            vec![],
            Some(vec![b'x'; 2 * MIB]),
        ),
        Error(413, "PAYLOAD_TOO_LARGE"),
    ));
    c.push(case(
        "2 MiB to a probe",
        http("POST", "/health_check", vec![], Some(vec![b'x'; 2 * MIB])),
        Any,
    ));
    c.push(case(
        "just under the body limit is served",
        post_bytes(format!(
            r#"{{"query":"{}{{ summary {{ users }} }}"}}"#,
            " ".repeat(MIB - 100)
        )),
        Data,
    ));
    let chunked = |body: &[u8], chunk: usize| {
        let mut out = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for part in body.chunks(chunk) {
            out.extend(format!("{:x}\r\n", part.len()).as_bytes());
            out.extend(part);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\n\r\n");
        out
    };
    c.push(case(
        "2 MiB chunked, no Content-Length",
        raw(chunked(two_mib_json.as_bytes(), 64 * 1024)),
        Status(413),
    ));
    c.push(case(
        "2 MiB chunked in 1 kB chunks",
        raw(chunked(&vec![b' '; 2 * MIB], 1024)),
        Status(413),
    ));
    c.push(case(
        "small chunked body",
        raw(chunked(ok_query.as_bytes(), 5)),
        Status(200),
    ));
    c.push(case(
        "Content-Length says 10 TB",
        raw("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000000\r\nConnection: close\r\n\r\n{}"),
        Status(413),
    ));
    c.push(case(
        "Content-Length smaller than the body",
        raw(format!("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{ok_query}")),
        Any,
    ));

    // --- Malformed framing and headers (raw) ----------------------------------------------
    let head = |extra: &[u8]| {
        let mut out =
            b"GET /graphql?query=%7Bsummary%7Busers%7D%7D HTTP/1.1\r\nHost: x\r\n".to_vec();
        out.extend_from_slice(extra);
        out.extend_from_slice(b"Connection: close\r\n\r\n");
        out
    };
    for (name, bytes) in [
        ("invalid UTF-8 in the query string", b"GET /graphql?query=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("invalid UTF-8 in the path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("invalid UTF-8 in a report query", b"GET /api/reports/daily_usage?x=\xc0\xaf HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("invalid UTF-8 in a header value", head(b"X-Junk: \xff\xfe\r\n")),
        ("header without a colon", head(b"X-Broken\r\n")),
        ("space before the colon", head(b"X-Space : 1\r\n")),
        ("NUL in a header value", head(b"X-Nul: a\0b\r\n")),
        ("obsolete line folding", head(b"X-Fold: a\r\n b\r\n")),
        ("empty header name", head(b": x\r\n")),
        ("invalid header name", head(b"X(Y): 1\r\n")),
        ("two Content-Lengths", b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("Content-Length and chunked", b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec()),
        ("negative Content-Length", b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".to_vec()),
        ("non-numeric Content-Length", b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\nConnection: close\r\n\r\n".to_vec()),
        ("bad chunk size", b"POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec()),
        ("unknown transfer coding", b"POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n{}".to_vec()),
        ("HTTP/0.9 request line", b"GET /health_check\r\n\r\n".to_vec()),
        ("HTTP/9.9", b"GET /health_check HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("lower-case version", b"GET /health_check http/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("no Host header", b"GET /health_check HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec()),
        ("bare LF line ends", b"GET /health_check HTTP/1.1\nHost: x\nConnection: close\n\n".to_vec()),
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec()),
        ("an HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("method with a NUL", b"GE\0T /health_check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("a 64 KiB raw header", head(format!("X-Big: {}\r\n", "a".repeat(64 * 1024)).as_bytes())),
    ] {
        c.push(case(format!("raw: {name}"), raw(bytes), Protocol));
    }

    // --- Headers (reqwest) ----------------------------------------------------------------
    let big = vec![b'a'; 64 * 1024];
    c.push(case(
        "one 64 KiB header",
        http(
            "GET",
            "/graphql?query=%7Bsummary%7Busers%7D%7D",
            vec![h("x-big", &big)],
            None,
        ),
        Error(431, "HEADERS_TOO_LARGE"),
    ));
    c.push(case(
        "a 64 KiB header on a probe",
        http("GET", "/health_check", vec![h("x-big", &big)], None),
        Status(431),
    ));
    c.push(case(
        "a 64 KiB Authorization header",
        http(
            "POST",
            "/graphql",
            vec![h("authorization", &big), ct_json()],
            Some(ok_query.as_bytes().to_vec()),
        ),
        Status(431),
    ));
    let kib4 = vec![b'b'; 4 * 1024];
    let many_big: Vec<(String, Vec<u8>)> =
        (0..20).map(|i| (format!("x-h{i}"), kib4.clone())).collect();
    c.push(case(
        "20 headers of 4 KiB",
        Req::Http {
            method: Method::GET,
            target: "/api/reports/daily_usage".into(),
            headers: many_big,
            body: None,
        },
        Error(431, "HEADERS_TOO_LARGE"),
    ));
    for n in [50usize, 90, 150, 1000] {
        let headers: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| (format!("x-many-{i}"), b"1".to_vec()))
            .collect();
        c.push(case(
            format!("{n} small headers"),
            Req::Http {
                method: Method::POST,
                target: "/graphql".into(),
                headers: headers
                    .into_iter()
                    .chain([("content-type".to_owned(), b"application/json".to_vec())])
                    .collect(),
                body: Some(ok_query.as_bytes().to_vec()),
            },
            // hyper refuses more than 100 header fields itself (a bodiless 431) before
            // any middleware runs; axum::serve does not expose that limit. Documented in the README.
            if n <= 90 { Data } else { Protocol },
        ));
    }
    for (name, value) in [
        ("invalid UTF-8", &b"\xff\xfe\xfd"[..]),
        ("SQL", b"' OR 1=1 --"),
        ("a bogus bearer token", b"Bearer ' OR '1'='1"),
        ("a bogus basic credential", b"Basic !!!!"),
    ] {
        c.push(case(
            format!("Authorization with {name}"),
            http(
                "POST",
                "/graphql",
                vec![h("authorization", value), ct_json()],
                Some(ok_query.as_bytes().to_vec()),
            ),
            Any,
        ));
    }
    for (name, header, value) in [
        (
            "X-Forwarded-For junk",
            "x-forwarded-for",
            &b"', DROP TABLE users --, \xff"[..],
        ),
        (
            "X-Request-Id of 8 kB",
            "x-request-id",
            &[b'r'; 8 * 1024][..],
        ),
        (
            "X-Request-Id with newlines escaped",
            "x-request-id",
            b"a\tb",
        ),
        ("Accept of junk", "accept", b"\xff/\xfe"),
        (
            "Accept-Encoding bogus",
            "accept-encoding",
            b"br;q=abc, *;q=-1",
        ),
        (
            "Content-Encoding gzip (not gzip)",
            "content-encoding",
            b"gzip",
        ),
        ("Expect 100-continue", "expect", b"100-continue"),
        ("Expect junk", "expect", b"nonsense"),
    ] {
        c.push(case(
            format!("header {name}"),
            http(
                "POST",
                "/graphql",
                vec![h(header, value), ct_json()],
                Some(ok_query.as_bytes().to_vec()),
            ),
            Any,
        ));
    }

    // --- GraphQL documents: depth, width, cycles ------------------------------------------
    c.push(case(
        "selection sets 10k deep",
        gql(&nested("{ summary ", "}", 10_000, "users"), json!({})),
        Errors,
    ));
    c.push(case(
        "braces 100k deep",
        gql(&nested("{", "}", 100_000, ""), json!({})),
        Errors,
    ));
    c.push(case(
        "list literal 10k deep",
        gql(
            &format!("{{ user(id: {}) {{ id }} }}", nested("[", "]", 10_000, "1")),
            json!({}),
        ),
        Errors,
    ));
    c.push(case(
        "object literal 10k deep",
        gql(
            &format!(
                "{{ user(id: {}) {{ id }} }}",
                nested("{a:", "}", 10_000, "1")
            ),
            json!({}),
        ),
        Errors,
    ));
    c.push(case(
        "inline fragments 1000 deep",
        gql(
            &nested("{ ... on QueryRoot ", "}", 1000, "{ summary { users } }"),
            json!({}),
        ),
        Any,
    ));
    c.push(case(
        "inline fragments 50 deep",
        gql(
            &nested("{ ... on QueryRoot ", "}", 50, "{ summary { users } }"),
            json!({}),
        ),
        Any,
    ));
    let introspection_deep = format!(
        "{{ __schema {{ types {{ {} }} }} }}",
        nested("ofType { ", "}", 30, "name")
    );
    c.push(case(
        "introspection 30 levels deep",
        gql(&introspection_deep, json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    let aliases = |n: usize| {
        let fields: String = (0..n)
            .map(|i| format!("a{i}: summary {{ users }} "))
            .collect();
        format!("{{ {fields}}}")
    };
    c.push(case(
        "10,000 aliases",
        gql(&aliases(10_000), json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    c.push(case(
        "31 aliases",
        gql(&aliases(31), json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    c.push(case(
        "30 aliases are served",
        gql(&aliases(30), json!({})),
        Data,
    ));
    let heavy: String = (0..30)
        .map(|i| format!("v{i}: visitsPerUser(first: 1000) {{ edges {{ node {{ userId user {{ id firstName lastName visits }} }} }} }} "))
        .collect();
    c.push(case(
        "30 heavy aliases",
        gql(&format!("{{ {heavy}}}"), json!({})),
        Any,
    ));
    let fragment_aliases: String = (0..10_000).map(|i| format!("f{i}: users ")).collect();
    c.push(case(
        "10,000 aliases inside a fragment",
        gql(
            &format!("{{ summary {{ ...F }} }} fragment F on Summary {{ {fragment_aliases}}}"),
            json!({}),
        ),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    c.push(case(
        "10,000 repeats of one field",
        gql(
            &format!("{{ summary {{ {} }} }}", "users ".repeat(10_000)),
            json!({}),
        ),
        Any,
    ));
    c.push(case(
        "10,000 spreads of one fragment",
        gql(
            &format!(
                "{{ summary {{ {} }} }} fragment F on Summary {{ users }}",
                "...F ".repeat(10_000)
            ),
            json!({}),
        ),
        Any,
    ));
    c.push(case(
        "1,000 directives on a field",
        gql(
            &format!(
                "{{ summary {{ users {} }} }}",
                "@skip(if: false) ".repeat(1000)
            ),
            json!({}),
        ),
        Errors,
    ));
    c.push(case(
        "fragment cycle A -> B -> A",
        gql(
            "{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { ...A }",
            json!({}),
        ),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    c.push(case(
        "fragment spreading itself",
        gql(
            "{ ...A } fragment A on QueryRoot { summary { users } ...A }",
            json!({}),
        ),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    let long_cycle: String = (0..200)
        .map(|i| format!("fragment F{i} on QueryRoot {{ ...F{} }} ", (i + 1) % 200))
        .collect();
    c.push(case(
        "fragment cycle of 200",
        gql(&format!("{{ ...F0 }} {long_cycle}"), json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    let chain: String = (0..500)
        .map(|i| format!("fragment F{i} on QueryRoot {{ ...F{} }} ", i + 1))
        .collect();
    c.push(case(
        "fragment chain of 500",
        gql(
            &format!("{{ ...F0 }} {chain} fragment F500 on QueryRoot {{ summary {{ users }} }}"),
            json!({}),
        ),
        Any,
    ));
    c.push(case(
        "undefined fragment",
        gql("{ ...Nope }", json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));
    c.push(case(
        "fragment on an unknown type",
        gql("{ ...F } fragment F on Nope { id }", json!({})),
        Code("GRAPHQL_VALIDATION_FAILED"),
    ));

    // --- Unknown fields, arguments, types; parse errors -------------------------------------
    for (name, query) in [
        ("unknown root field", "{ nope }"),
        ("unknown nested field", "{ summary { nope } }"),
        (
            "password field",
            "{ users { edges { node { password } } } }",
        ),
        ("unknown argument", "{ summary(evil: 1) { users } }"),
        (
            "unknown variable type",
            "query($x: Nope) { summary { users } }",
        ),
        ("scalar with a selection", "{ summary { users { id } } }"),
        ("object without a selection", "{ summary }"),
        ("mutation", "mutation { summary { users } }"),
        ("subscription", "subscription { summary { users } }"),
        (
            "two anonymous operations",
            "{ summary { users } } { summary { users } }",
        ),
        (
            "duplicate operation names",
            "query A { summary { users } } query A { summary { users } }",
        ),
        ("unknown directive", "{ summary @nope { users } }"),
        (
            "conflicting aliases",
            "{ x: summary { users } x: user(id: 1) { id } }",
        ),
    ] {
        c.push(case(
            format!("unknown: {name}"),
            gql(query, json!({})),
            Code("GRAPHQL_VALIDATION_FAILED"),
        ));
    }
    // Invalid values: async-graphql reports these as BAD_USER_INPUT.
    for (name, query) in [
        (
            "unknown enum value",
            "{ usageByDay(granularity: YEAR) { date } }",
        ),
        ("undeclared variable", "{ user(id: $id) { id } }"),
        ("unused variable", "query($id: Int) { summary { users } }"),
        (
            "include with a string",
            "{ summary @include(if: \"yes\") { users } }",
        ),
    ] {
        c.push(case(
            format!("invalid: {name}"),
            gql(query, json!({})),
            Errors,
        ));
    }
    // async-graphql takes a string literal for an enum value: lenient, and still correct.
    c.push(case(
        "enum given as a string",
        gql("{ usageByDay(granularity: \"DAY\") { date } }", json!({})),
        Any,
    ));
    for (name, query) in [
        ("empty", ""),
        ("blank", "   \n\t"),
        ("comment only", "# nothing here"),
        ("unclosed selection", "{ summary { users }"),
        ("stray closing brace", "{ summary { users } } }"),
        ("junk", "SELECT * FROM users"),
        (
            "unterminated string",
            "{ summary(timezone: \"UTC) { users } }",
        ),
        ("invalid escape", "{ summary(timezone: \"\\q\") { users } }"),
        (
            "bad unicode escape",
            "{ summary(timezone: \"\\uZZZZ\") { users } }",
        ),
        ("control character", "{ summary\u{1} { users } }"),
        ("nul character", "{ summary\0 { users } }"),
    ] {
        // An empty document is refused before GraphQL runs (400); the rest are GraphQL parse errors.
        let expect = if query.trim().is_empty() {
            Error(400, "BAD_USER_INPUT")
        } else {
            Errors
        };
        c.push(case(
            format!("parse error: {name}"),
            gql(query, json!({})),
            expect,
        ));
    }
    c.push(case(
        "__typename alone is served",
        gql("{ __typename }", json!({})),
        Data,
    ));
    c.push(case(
        "a legitimate deep query is served",
        gql(
            "{ visitsPerUser(first: 3) { edges { node { userId user { id visits } } } } }",
            json!({}),
        ),
        Data,
    ));

    // --- Wrong argument types and integer overflow ------------------------------------------
    for (name, query) in [
        ("id as a string", "{ user(id: \"1\") { id } }"),
        ("id as a float", "{ user(id: 1.5) { id } }"),
        ("id as a boolean", "{ user(id: true) { id } }"),
        ("id null", "{ user(id: null) { id } }"),
        ("id missing", "{ user { id } }"),
        ("id as a list", "{ user(id: [1]) { id } }"),
        ("id as an object", "{ user(id: {a: 1}) { id } }"),
        ("id 2^31", "{ user(id: 2147483648) { id } }"),
        ("id -2^31-1", "{ user(id: -2147483649) { id } }"),
        ("id 2^63", "{ user(id: 9223372036854775808) { id } }"),
        ("id 2^64", "{ user(id: 18446744073709551616) { id } }"),
        ("id 1e400", "{ user(id: 1e400) { id } }"),
        (
            "id with 400 digits",
            &format!("{{ user(id: {}) {{ id }} }}", "9".repeat(400)),
        ),
        (
            "first 2^31",
            "{ visitsPerUser(first: 2147483648) { totalCount } }",
        ),
        (
            "first 2^63",
            "{ users(first: 9223372036854775808) { totalCount } }",
        ),
        (
            "first 1e400",
            "{ visitsPerUser(first: 1e400) { totalCount } }",
        ),
        (
            "first as a string",
            "{ visitsPerUser(first: \"10\") { totalCount } }",
        ),
        (
            "orderBy as a number",
            "{ visitsPerUser(orderBy: 1) { totalCount } }",
        ),
        (
            "orderBy unknown",
            "{ visitsPerUser(orderBy: PASSWORD_ASC) { totalCount } }",
        ),
        (
            "minVisits as a float",
            "{ visitsPerUser(minVisits: 0.5) { totalCount } }",
        ),
        (
            "activeOnly as a number",
            "{ users(activeOnly: 1) { totalCount } }",
        ),
        (
            "activeOnly as a string",
            "{ visitsPerUser(activeOnly: \"true\") { totalCount } }",
        ),
        ("fill as a string", "{ usageByDay(fill: \"yes\") { date } }"),
        ("fill null", "{ usageByDay(fill: null) { date } }"),
        ("timezone as a number", "{ summary(timezone: 5) { users } }"),
        ("timezone null", "{ summary(timezone: null) { users } }"),
        (
            "timezone as a list",
            "{ summary(timezone: [\"UTC\"]) { users } }",
        ),
        ("from as a number", "{ summary(from: 20230101) { users } }"),
        ("from as a boolean", "{ usageByDay(from: true) { date } }"),
        (
            "after as a number",
            "{ visitsPerUser(after: 5) { totalCount } }",
        ),
    ] {
        c.push(case(
            format!("wrong type: {name}"),
            gql(query, json!({})),
            Errors,
        ));
    }
    for (name, first) in [
        ("-1", -1i64),
        ("1001", 1001),
        ("2^31-1", i64::from(i32::MAX)),
        ("-2^31", i64::from(i32::MIN)),
    ] {
        for field in ["visitsPerUser", "users"] {
            c.push(case(
                format!("{field}(first: {name})"),
                gql(
                    &format!("{{ {field}(first: {first}) {{ totalCount }} }}"),
                    json!({}),
                ),
                BadInput("first"),
            ));
        }
    }
    c.push(case(
        "first 1000 is served",
        gql("{ visitsPerUser(first: 1000) { totalCount } }", json!({})),
        Data,
    ));
    c.push(case(
        "first 0",
        gql(
            "{ visitsPerUser(first: 0) { totalCount edges { cursor } } }",
            json!({}),
        ),
        Any,
    ));
    // minVisits is 64-bit inside: past 2^31 it is answered correctly (nobody has that many).
    c.push(case(
        "minVisits 2^31",
        gql(
            "{ visitsPerUser(minVisits: 2147483648) { totalCount } }",
            json!({}),
        ),
        Any,
    ));
    c.push(case(
        "minVisits -2^31",
        gql(
            "{ visitsPerUser(minVisits: -2147483648) { totalCount } }",
            json!({}),
        ),
        Data,
    ));
    c.push(case(
        "minVisits 2^31-1",
        gql(
            "{ visitsPerUser(minVisits: 2147483647) { totalCount } }",
            json!({}),
        ),
        Data,
    ));
    c.push(case(
        "user 2^31-1 is null",
        gql("{ user(id: 2147483647) { id } }", json!({})),
        Data,
    ));
    c.push(case(
        "user -2^31 is null",
        gql("{ user(id: -2147483648) { id } }", json!({})),
        Data,
    ));

    // --- Variables ------------------------------------------------------------------------
    let by_id = "query($id: Int!) { user(id: $id) { id } }";
    for (name, vars) in [
        ("id null", json!({ "id": null })),
        ("id missing", json!({})),
        ("id a string", json!({ "id": "1" })),
        ("id a float", json!({ "id": 1.5 })),
        ("id a boolean", json!({ "id": true })),
        ("id a list", json!({ "id": [1] })),
        ("id an object", json!({ "id": { "a": 1 } })),
        ("id 2^31", json!({ "id": 2_147_483_648i64 })),
        ("id 2^63", json!({ "id": 9_223_372_036_854_775_808u64 })),
        ("id 1e300", json!({ "id": 1e300 })),
        ("id -2^63", json!({ "id": i64::MIN })),
    ] {
        c.push(case(format!("variable: {name}"), gql(by_id, vars), Errors));
    }
    c.push(case(
        "variable: extra unknown variables are ignored",
        gql(by_id, json!({ "id": 1, "evil": "'; DROP TABLE users" })),
        Data,
    ));
    c.push(case(
        "variable: declared String, used as Int!",
        gql(
            "query($x: String) { user(id: $x) { id } }",
            json!({ "x": "1" }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: null for a non-null timezone",
        gql(
            "query($tz: String!) { summary(timezone: $tz) { users } }",
            json!({ "tz": null }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: null for a non-null first",
        gql(
            "query($n: Int!) { users(first: $n) { totalCount } }",
            json!({ "n": null }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: enum as an unknown string",
        gql(
            "query($g: Granularity!) { usageByDay(granularity: $g) { date } }",
            json!({ "g": "YEAR" }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: enum as a number",
        gql(
            "query($o: VisitsOrder!) { visitsPerUser(orderBy: $o) { totalCount } }",
            json!({ "o": 1 }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: date as a number",
        gql(
            "query($d: Date) { summary(from: $d) { users } }",
            json!({ "d": 20_230_101 }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: date as an object",
        gql(
            "query($d: Date) { summary(from: $d) { users } }",
            json!({ "d": { "y": 2023 } }),
        ),
        Errors,
    ));
    c.push(case(
        "variable: 10,000 variables",
        gql(
            by_id,
            Value::Object(
                (0..10_000)
                    .map(|i| (format!("v{i}"), json!(i)))
                    .chain([("id".to_owned(), json!(1))])
                    .collect(),
            ),
        ),
        Data,
    ));

    // --- operationName ----------------------------------------------------------------------
    for (name, body) in [
        (
            "missing operation",
            json!({ "query": "query A { summary { users } }", "operationName": "B" }),
        ),
        (
            "empty name",
            json!({ "query": "query A { summary { users } }", "operationName": "" }),
        ),
        (
            "names a fragment",
            json!({ "query": "query A { ...F } fragment F on QueryRoot { summary { users } }", "operationName": "F" }),
        ),
        (
            "two operations, none named",
            json!({ "query": "query A { summary { users } } query B { summary { users } }" }),
        ),
        (
            "SQL name",
            json!({ "query": "query A { summary { users } }", "operationName": "A'; DROP TABLE users; --" }),
        ),
        (
            "10 kB name",
            json!({ "query": "query A { summary { users } }", "operationName": "N".repeat(10_000) }),
        ),
    ] {
        c.push(case(
            format!("operationName: {name}"),
            post_json(&body),
            Errors,
        ));
    }
    c.push(case(
        "operationName picks one of two",
        post_json(&json!({ "query": "query A { summary { users } } query B { nope }", "operationName": "A" })),
        Any,
    ));

    // --- Persisted queries --------------------------------------------------------------------
    for (name, ext) in [
        (
            "unknown hash",
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "ab".repeat(32) } }),
        ),
        (
            "hash of junk",
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "'; DROP TABLE users; --" } }),
        ),
        (
            "empty hash",
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "" } }),
        ),
        (
            "10 kB hash",
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "f".repeat(10_000) } }),
        ),
    ] {
        c.push(case(
            format!("persisted query: {name}"),
            post_json(&json!({ "extensions": ext })),
            Code("PERSISTED_QUERY_NOT_FOUND"),
        ));
    }
    for (name, body) in [
        (
            "version 2",
            json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": "ab".repeat(32) } } }),
        ),
        (
            "no hash",
            json!({ "extensions": { "persistedQuery": { "version": 1 } } }),
        ),
        (
            "hash a number",
            json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": 5 } } }),
        ),
        (
            "hash not matching the query",
            json!({ "query": "{ summary { users } }", "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "ab".repeat(32) } } }),
        ),
    ] {
        c.push(case(
            format!("persisted query: {name}"),
            post_json(&body),
            Errors,
        ));
    }

    // --- Batches --------------------------------------------------------------------------
    let batch = |n: usize| Value::Array(vec![json!({ "query": "{ summary { users } }" }); n]);
    c.push(case(
        "a batch of 1,000 operations",
        post_json(&batch(1000)),
        Status(400),
    ));
    c.push(case(
        "a batch of 11 operations",
        post_json(&batch(11)),
        Status(400),
    ));
    c.push(case("an empty batch", post_bytes("[]"), Status(400)));
    c.push(case(
        "a batch of 10 is served",
        post_json(&batch(10)),
        Status(200),
    ));
    c.push(case(
        "a batch with a number in it",
        post_bytes(r#"[{"query":"{ summary { users } }"}, 42]"#),
        Status(400),
    ));
    c.push(case(
        "a batch with one bad operation",
        post_json(&json!([{ "query": "{ summary { users } }" }, { "query": "{ nope }" }, { "query": "{ user(id: \"x\") { id } }" }])),
        Status(200),
    ));
    c.push(case(
        "a batch of 1,000 aliases-heavy operations",
        post_json(&Value::Array(vec![json!({ "query": aliases(10) }); 1000])),
        Status(400),
    ));

    // --- Dates ------------------------------------------------------------------------------
    for date in [
        "2023-02-30",
        "2023-13-01",
        "2023-00-10",
        "2023-1-1",
        "99999-01-01",
        "10000-01-01",
        "0000-01-01",
        "-0001-01-01",
        "",
        " ",
        "2023-01-01T00:00:00Z",
        " 2023-01-01",
        "2023-01-01\0",
        "٢٠٢٣-٠١-٠١",
        "yesterday",
        "2023/01/01",
    ] {
        c.push(case(
            format!("usageByDay(from: {date:?})"),
            gql(
                "query($d: Date) { usageByDay(from: $d) { date } }",
                json!({ "d": date }),
            ),
            Errors,
        ));
        c.push(case(
            format!("summary(to: {date:?}) as a literal"),
            gql(
                &format!("{{ summary(to: {}) {{ users }} }}", json!(date)),
                json!({}),
            ),
            Errors,
        ));
    }
    c.push(case(
        "visitsPerUser(from: 2023-02-29)",
        gql(
            "{ visitsPerUser(from: \"2023-02-29\") { totalCount } }",
            json!({}),
        ),
        Errors,
    ));
    c.push(case(
        "to before from",
        gql(
            "{ summary(from: \"2023-01-02\", to: \"2023-01-01\") { users } }",
            json!({}),
        ),
        BadInput("to"),
    ));
    c.push(case(
        "to before from in visits",
        gql(
            "{ visitsPerUser(from: \"2023-01-02\", to: \"2023-01-01\") { totalCount } }",
            json!({}),
        ),
        BadInput("to"),
    ));
    c.push(case(
        "to before from in usage",
        gql(
            "{ usageByDay(from: \"2023-01-02\", to: \"2023-01-01\") { date } }",
            json!({}),
        ),
        BadInput("to"),
    ));
    for g in ["DAY", "WEEK", "MONTH"] {
        c.push(case(
            format!("usageByDay over years 1..9999 by {g}"),
            gql(&format!("{{ usageByDay(from: \"0001-01-01\", to: \"9999-12-31\", granularity: {g}, fill: true) {{ date }} }}"), json!({})),
            BadInput("to"),
        ));
    }
    // The edges of the Date scalar (years 1 to 9999) are valid input: an answer, not an error.
    for tz in [
        "UTC",
        "Asia/Tokyo",
        "America/Adak",
        "Pacific/Kiritimati",
        "America/Los_Angeles",
    ] {
        for (from, to) in [("0001-01-01", "0001-01-03"), ("9999-12-29", "9999-12-31")] {
            for (field, select) in [
                (
                    "usageByDay",
                    "usageByDay(from: $f, to: $t, timezone: $tz, fill: true, granularity: WEEK) { date start visits }",
                ),
                (
                    "summary",
                    "summary(from: $f, to: $t, timezone: $tz) { users tokensIssued }",
                ),
                (
                    "visitsPerUser",
                    "visitsPerUser(from: $f, to: $t, timezone: $tz) { totalCount }",
                ),
            ] {
                c.push(case(
                    format!("{field} {from}..{to} in {tz}"),
                    gql(
                        &format!("query($f: Date, $t: Date, $tz: String!) {{ {select} }}"),
                        json!({ "f": from, "t": to, "tz": tz }),
                    ),
                    Data,
                ));
            }
        }
    }
    c.push(case("summary over the whole calendar", gql("{ summary(from: \"0001-01-01\", to: \"9999-12-31\", timezone: \"Etc/GMT-14\") { users } }", json!({})), Any));
    c.push(case(
        "a full year by day is served",
        gql(
            "{ usageByDay(from: \"2022-01-01\", to: \"2022-12-31\", fill: true) { date } }",
            json!({}),
        ),
        Data,
    ));

    // --- Time zones ---------------------------------------------------------------------------
    let zone_10k = "Z".repeat(10_000);
    for tz in [
        "",
        " ",
        "UTC; DROP TABLE users",
        zone_10k.as_str(),
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "+05:00",
        "GMT+5:30",
        "\0",
        "Europe/Berlin\u{202e}",
        "🕐",
        "America/New York",
    ] {
        for (field, query) in [
            (
                "usageByDay",
                "query($tz: String!) { usageByDay(timezone: $tz) { date } }",
            ),
            (
                "summary",
                "query($tz: String!) { summary(timezone: $tz) { users } }",
            ),
            (
                "visitsPerUser",
                "query($tz: String!) { visitsPerUser(timezone: $tz) { totalCount } }",
            ),
        ] {
            let shown: String = tz.chars().take(30).collect();
            c.push(case(
                format!(
                    "{field}(timezone: {shown:?}) [{} chars]",
                    tz.chars().count()
                ),
                gql(query, json!({ "tz": tz })),
                BadInput("timezone"),
            ));
        }
    }
    // Zone names are exact IANA names: padding is refused (the message suggests the name).
    c.push(case(
        "a zone with spaces around it is refused",
        gql(
            "{ summary(timezone: \"  Europe/Berlin \") { users } }",
            json!({}),
        ),
        BadInput("timezone"),
    ));

    // --- Cursors ------------------------------------------------------------------------------
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let b64 = |s: &[u8]| URL_SAFE_NO_PAD.encode(s);
    let random_bytes: String = (0..64u32)
        .map(|i| char::from(33 + ((i * 7919) % 90) as u8))
        .collect();
    for (name, cursor) in [
        ("empty", String::new()),
        ("random characters", random_bytes),
        ("not base64", "!!!!".to_owned()),
        ("base64 of junk", b64(b"junk")),
        ("base64 of binary", b64(&[0xff, 0x00, 0xfe, 0x01])),
        (
            "standard base64 with padding",
            STANDARD.encode("uv1|id|1|1|-|0"),
        ),
        ("wrong version", b64(b"uv2|id|1|1|-|0")),
        ("version 0", b64(b"uv0|id|1|1|-|0")),
        ("too few fields", b64(b"uv1|id|1|1")),
        ("too many fields", b64(b"uv1|id|1|1|-|0|x")),
        ("unknown order", b64(b"uv1|password|1|1|-|0")),
        ("user id over 2^31", b64(b"uv1|id|2147483648|1|-|0")),
        ("visits over 2^63", b64(b"uv1|id|1|9223372036854775808|-|0")),
        (
            "time out of range",
            b64(b"uv1|id|1|1|-|99999999999999999999"),
        ),
        (
            "time i64::MAX",
            b64(format!("uv1|id|1|1|{}|0", i64::MAX).as_bytes()),
        ),
        ("SQL inside", b64(b"uv1|id|1'; DROP TABLE users; --|1|-|0")),
        ("10 kB", "A".repeat(10_000)),
        ("a cursor of another order", b64(b"uv1|visits|1|1|-|0")),
    ] {
        c.push(case(
            format!("visitsPerUser(after: {name})"),
            gql("query($a: String) { visitsPerUser(first: 5, after: $a) { totalCount edges { cursor } } }", json!({ "a": cursor })),
            BadInput("after"),
        ));
        c.push(case(
            format!("users(after: {name})"),
            gql(
                "query($a: String) { users(first: 5, after: $a) { totalCount } }",
                json!({ "a": cursor }),
            ),
            Any,
        ));
    }
    c.push(case(
        "a valid-looking cursor past the end",
        gql(
            "query($a: String) { visitsPerUser(first: 5, after: $a) { edges { cursor } } }",
            json!({ "a": b64(b"uv1|id|2147483647|1|-|0") }),
        ),
        Data,
    ));

    // --- SQL-looking strings in every string argument -------------------------------------------
    for s in SQL {
        for (field, query) in [
            (
                "usageByDay.timezone",
                "query($s: String!) { usageByDay(timezone: $s) { date } }",
            ),
            (
                "summary.timezone",
                "query($s: String!) { summary(timezone: $s) { users } }",
            ),
            (
                "visitsPerUser.timezone",
                "query($s: String!) { visitsPerUser(timezone: $s) { totalCount } }",
            ),
        ] {
            c.push(case(
                format!("SQL in {field}: {s}"),
                gql(query, json!({ "s": s })),
                BadInput("timezone"),
            ));
        }
        c.push(case(
            format!("SQL in visitsPerUser.after: {s}"),
            gql(
                "query($s: String) { visitsPerUser(after: $s) { totalCount } }",
                json!({ "s": s }),
            ),
            BadInput("after"),
        ));
        c.push(case(
            format!("SQL in users.after: {s}"),
            gql(
                "query($s: String) { users(after: $s) { totalCount } }",
                json!({ "s": s }),
            ),
            Errors,
        ));
        c.push(case(
            format!("SQL in summary.from: {s}"),
            gql(
                "query($s: Date) { summary(from: $s) { users } }",
                json!({ "s": s }),
            ),
            Errors,
        ));
        c.push(case(
            format!("SQL in usageByDay.to: {s}"),
            gql(
                "query($s: Date) { usageByDay(to: $s) { date } }",
                json!({ "s": s }),
            ),
            Errors,
        ));
    }
    c
}

/// A client with the time bound and without redirects or compression surprises.
fn hostile_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(BOUND)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn send(client: &reqwest::Client, base: &str, req: &Req) -> Result<Reply, String> {
    match req {
        Req::Http {
            method,
            target,
            headers,
            body,
        } => {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| format!("test bug: header name {k}: {e}"))?;
                let value = HeaderValue::from_bytes(v)
                    .map_err(|e| format!("test bug: header value for {k}: {e}"))?;
                map.append(name, value);
            }
            let mut builder = client
                .request(method.clone(), format!("{base}{target}"))
                .headers(map);
            if let Some(body) = body {
                builder = builder.body(body.clone());
            }
            let res = builder
                .send()
                .await
                .map_err(|e| format!("request failed: {e:?}"))?;
            let status = res.status().as_u16();
            let header = |n: &str| {
                res.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let content_type = header("content-type");
            let allow = res.headers().contains_key("allow");
            let body = res
                .bytes()
                .await
                .map_err(|e| format!("reading the body failed: {e:?}"))?
                .to_vec();
            Ok(Reply {
                status,
                content_type,
                allow,
                body,
            })
        }
        Req::Raw { bytes, .. } => {
            raw_exchange(base.trim_start_matches("http://"), bytes.clone()).await
        }
    }
}

/// Writes `request` (concurrently, so an early answer is read even while a big body is
/// still going out) and reads one response back.
async fn raw_exchange(addr: &str, request: Vec<u8>) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    // Keep the write half open until the answer is read: a half-closed socket may make the
    // server drop the connection before it answers.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if response_complete(&buf) {
            break;
        }
    }
    writer.abort();
    parse_response(&buf)
}

/// The head of a response as `httparse` reads it, and where its body starts.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    body_at: usize,
}

impl Head {
    /// `None` while the head is still incomplete.
    fn parse(buf: &[u8]) -> Result<Option<Self>, String> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let body_at = match res.parse(buf) {
            Ok(httparse::Status::Complete(at)) => at,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "bad response head ({e}): {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(200)])
                ));
            }
        };
        let status = res.code.ok_or("a response head without a status")?;
        let headers = res
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).trim().to_owned(),
                )
            })
            .collect();
        Ok(Some(Self {
            status,
            headers,
            body_at,
        }))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

fn response_complete(buf: &[u8]) -> bool {
    let Ok(Some(head)) = Head::parse(buf) else {
        return false;
    };
    let body = &buf[head.body_at..];
    if let Some(len) = head
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        return body.len() >= len;
    }
    if head.chunked() {
        return body.ends_with(b"0\r\n\r\n");
    }
    false
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(httparse::Status::Complete((at, size))) = httparse::parse_chunk_size(body) {
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        body = &body[at..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

fn parse_response(buf: &[u8]) -> Result<Reply, String> {
    if buf.is_empty() {
        // Closed without a word: status 0.
        return Ok(Reply {
            status: 0,
            content_type: String::new(),
            allow: false,
            body: Vec::new(),
        });
    }
    let head = Head::parse(buf)?.ok_or_else(|| {
        format!(
            "no complete response head in {} bytes: {:?}",
            buf.len(),
            String::from_utf8_lossy(&buf[..buf.len().min(200)])
        )
    })?;
    let body = &buf[head.body_at..];
    Ok(Reply {
        status: head.status,
        content_type: head.header("content-type").unwrap_or_default().to_owned(),
        allow: head.header("allow").is_some(),
        body: if head.chunked() {
            dechunk(body)
        } else {
            body.to_vec()
        },
    })
}

fn path_of(req: &Req) -> (String, bool) {
    match req {
        Req::Http { target, method, .. } => (
            target.split('?').next().unwrap_or("").to_owned(),
            *method == Method::HEAD,
        ),
        Req::Raw { bytes } => {
            let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let target = line.split(' ').nth(1).unwrap_or("");
            let head = line.starts_with("HEAD ");
            (
                target.split('?').next().unwrap_or("").trim().to_owned(),
                head,
            )
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// Every GraphQL error in a response has a message and one of the client codes.
fn check_graphql_body(v: &Value) -> Result<(), String> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if items.is_empty() {
        return Err("empty batch answer".into());
    }
    for item in items {
        let obj = item
            .as_object()
            .ok_or("a GraphQL answer that is not an object")?;
        if !obj.contains_key("data") && !obj.contains_key("errors") {
            return Err("neither data nor errors".into());
        }
        for e in obj
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let message = e["message"].as_str().ok_or("an error without a message")?;
            let code = e["extensions"]["code"]
                .as_str()
                .ok_or_else(|| format!("an error without a code: {e}"))?;
            if !CLIENT_CODES.contains(&code) {
                return Err(format!("server-side error code {code}: {message}"));
            }
        }
    }
    Ok(())
}

fn graphql_errors(body: &[u8]) -> Vec<(String, String)> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["errors"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["extensions"]["code"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn check(req: &Req, r: &Reply, expect: &Expect) -> Result<(), String> {
    let (path, head) = path_of(req);
    let status = r.status;
    if matches!(expect, Expect::Protocol) {
        // hyper answers what it cannot parse itself, with an empty body, or hangs up.
        let refused = status == 0 || ((400..500).contains(&status) && r.body.is_empty());
        if refused {
            return Ok(());
        }
    } else if status == 0 {
        return Err("connection closed without an answer".into());
    }
    if status >= 500 {
        return Err(format!("{status}: {}", snippet(&r.body)));
    }
    if (400..500).contains(&status) {
        if !r.content_type.starts_with("application/json") {
            return Err(format!(
                "{status} with content type {:?}: {:?}",
                r.content_type,
                snippet(&r.body)
            ));
        }
        if !head {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
                format!(
                    "{status} with a body that is not JSON ({e}): {:?}",
                    snippet(&r.body)
                )
            })?;
            let code = v["error"]["code"]
                .as_str()
                .or_else(|| v["errors"][0]["extensions"]["code"].as_str());
            if code.is_none()
                || (v.get("error").is_some() && v["error"]["message"].as_str().is_none())
            {
                return Err(format!("{status} JSON without error.code/message: {v}"));
            }
        }
        if status == 405 && !r.allow {
            return Err("405 without an Allow header".into());
        }
    } else if status == 200 {
        if !head {
            match path.as_str() {
                "/graphql" if r.content_type.starts_with("text/html") => {}
                "/graphql" => {
                    let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
                        format!(
                            "200 with a body that is not JSON ({e}): {:?}",
                            snippet(&r.body)
                        )
                    })?;
                    check_graphql_body(&v)?;
                }
                "/api/reports/daily_usage" | "/api/reports/user_visits" => {
                    let v: Value = serde_json::from_slice(&r.body)
                        .map_err(|e| format!("report not JSON: {e}"))?;
                    if !v.is_object() {
                        return Err(format!("report not an object: {}", snippet(&r.body)));
                    }
                }
                "/health_check" | "/readiness_check" => {
                    if r.body != b"ok" {
                        return Err(format!("probe answered {:?}", snippet(&r.body)));
                    }
                }
                "/metrics" => {
                    if !r.content_type.starts_with("text/plain") {
                        return Err(format!("metrics with content type {:?}", r.content_type));
                    }
                }
                other => return Err(format!("200 on {other:?}: {}", snippet(&r.body))),
            }
        }
    } else {
        return Err(format!("unexpected status {status}: {}", snippet(&r.body)));
    }

    let errors = || graphql_errors(&r.body);
    let json_code = || {
        serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
    };
    match expect {
        Expect::Any | Expect::Protocol => Ok(()),
        Expect::Status(want) if status == *want => Ok(()),
        Expect::Error(want, code) if status == *want && json_code().as_deref() == Some(code) => {
            Ok(())
        }
        Expect::Data if status == 200 && errors().is_empty() => {
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            if v["data"].is_null() {
                Err("no data".into())
            } else {
                Ok(())
            }
        }
        Expect::Errors if status == 200 && !errors().is_empty() => Ok(()),
        Expect::Code(code) if status == 200 && errors().iter().any(|(c, _)| c == code) => Ok(()),
        Expect::BadInput(arg) if status == 200 => {
            let errors = errors();
            let named = errors
                .iter()
                .find(|(c, m)| c == "BAD_USER_INPUT" && m.contains(arg));
            match named {
                // The caller's text may be echoed, clipped: a 10 kB argument must not come back whole.
                Some((_, m)) if m.len() < 600 => Ok(()),
                Some((_, m)) => Err(format!("error message of {} bytes", m.len())),
                None => Err(format!(
                    "wanted BAD_USER_INPUT naming {arg}, got {errors:?}"
                )),
            }
        }
        other => Err(format!(
            "wanted {other:?}, got {status} {:?}: {}",
            r.content_type,
            snippet(&r.body)
        )),
    }
}

async fn baseline(client: &reqwest::Client, base: &str) -> Result<(i64, i64), String> {
    let res = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": BASELINE }))
        .send()
        .await
        .map_err(|e| format!("baseline request failed: {e:?}"))?;
    let status = res.status();
    let body: Value = res
        .json()
        .await
        .map_err(|e| format!("baseline not JSON: {e}"))?;
    if status != 200 || body.get("errors").is_some() {
        return Err(format!("baseline got {status}: {body}"));
    }
    let s = &body["data"]["summary"];
    match (s["users"].as_i64(), s["tokensIssued"].as_i64()) {
        (Some(u), Some(t)) => Ok((u, t)),
        _ => Err(format!("baseline without numbers: {body}")),
    }
}

/// Runs every case against a fresh gateway on `backend`; returns the case count and the failures.
async fn run_suite(backend: Backend) -> (usize, Vec<String>) {
    let (users, tokens) = random_dataset(8, 60, 400);
    let app = TestApp::spawn(backend).await;
    app.insert(&users, &tokens).await;
    let client = hostile_client();
    let (users_before, issued) = baseline(&client, &app.base)
        .await
        .expect("baseline before the suite");
    assert_eq!(
        issued,
        tokens.len() as i64,
        "[{backend:?}] tokensIssued before the suite"
    );
    assert_eq!(
        users_before,
        users.len() as i64,
        "[{backend:?}] users before the suite"
    );

    let cases = cases();
    let mut failures: Vec<String> = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    let mut refused: Vec<String> = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(BOUND, send(&client, &app.base, &case.req)).await {
            Err(_) => Err(format!("no answer within {BOUND:?}")),
            Ok(Err(e)) => Err(e),
            Ok(Ok(reply)) => {
                if matches!(case.expect, Expect::Protocol) && reply.body.is_empty() {
                    refused.push(format!("{} ({})", case.name, reply.status));
                }
                check(&case.req, &reply, &case.expect)
            }
        };
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.name.clone());
        }
        if let Err(e) = outcome {
            let e: String = e.chars().take(400).collect();
            failures.push(format!("[{backend:?}] {}: {e}", case.name));
        }
        match baseline(&client, &app.base).await {
            Ok(now) if now == (users_before, issued) => {}
            Ok(now) => failures.push(format!(
                "[{backend:?}] after {}: baseline changed to {now:?}",
                case.name
            )),
            Err(e) => failures.push(format!("[{backend:?}] after {}: {e}", case.name)),
        }
    }
    eprintln!(
        "hostile [{backend:?}]: {} malformed requests refused by the HTTP layer without a body (status 0 = closed): {}",
        refused.len(),
        refused.join("; ")
    );
    eprintln!(
        "hostile [{backend:?}]: slowest case {:?} took {:?}",
        slowest.1, slowest.0
    );
    (cases.len(), failures)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn hostile_requests_get_a_4xx_with_json_or_a_correct_200_and_the_gateway_keeps_serving(
    #[case] backend: Backend,
) {
    if unavailable(backend) {
        return;
    }
    let started = Instant::now();
    let (total, failures) = run_suite(backend).await;
    assert!(total >= 200, "only {total} hostile cases");
    assert!(
        failures.is_empty(),
        "{} of {total} hostile cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "hostile [{backend:?}]: {total} cases, all 4xx-with-JSON or correct 200 ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}
