//! The whole-response cache of GraphQL answers: a query asked again within its freshness
//! is answered with the stored bytes (and their compressed forms), without parsing,
//! validating or executing it again.
//!
//! The key is the normalised document (comments and insignificant whitespace and commas
//! dropped, or the persisted query's hash when only that is sent), the operation name,
//! the variables (as canonical JSON: keys sorted) and, when authentication is on, the
//! caller. The value is the serialised answer with its `ETag`. Its freshness is that of
//! the oldest report it used, through the same [`SwrCache`] as the reports
//! (stale-while-revalidate, single flight, bounded by bytes). Only answers without any
//! error are stored: `DATABASE_UNAVAILABLE`, `TIMEOUT` and `INTERNAL` must never be
//! served again, and the rest (bad input, limits) cost nothing to recompute.

use std::fmt::Write as _;
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::Request;

use super::{Context, body_of, is_request_error, with_context};
use crate::analytics::cache::{
    ARC_HEADER, CacheCounters, CacheKey, CachePolicy, Cached, ENTRY_OVERHEAD, Failure, Freshness,
    Source, SwrCache, entry_size, weight,
};
use crate::auth::Principal;
use crate::http::encoding::{Encoded, SharedBody, weak_etag_of};
use crate::http::state::AppState;

pub type ResponseCache = SwrCache<ResponseKey, SharedBody>;

/// One GraphQL question, as the cache tells questions apart.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ResponseKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash, Debug)]
struct KeyParts {
    document: String,
    persisted: Option<String>,
    operation: Option<String>,
    variables: String,
    principal: Option<String>,
}

impl CacheKey for ResponseKey {
    fn label(&self) -> &'static str {
        "graphql_response"
    }
}

impl ResponseKey {
    pub fn of(request: &Request, principal: Option<&Principal>) -> Self {
        let persisted = request
            .extensions
            .get("persistedQuery")
            .and_then(|v| match v {
                async_graphql::Value::Object(o) => o.get("sha256Hash"),
                _ => None,
            })
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.clone()),
                _ => None,
            });
        let mut variables = String::new();
        if let Ok(value) = serde_json::to_value(&request.variables) {
            canonical_json(&value, &mut variables);
        }
        Self(Arc::new(KeyParts {
            document: normalise(&request.query),
            persisted,
            operation: request.operation_name.clone(),
            variables,
            principal: principal.map(|p| p.0.clone()),
        }))
    }

    fn bytes(&self) -> usize {
        let p = &self.0;
        ARC_HEADER
            + size_of::<KeyParts>()
            + p.document.capacity()
            + p.persisted.as_ref().map_or(0, String::capacity)
            + p.operation.as_ref().map_or(0, String::capacity)
            + p.variables.capacity()
            + p.principal.as_ref().map_or(0, String::capacity)
    }
}

/// A GraphQL document without what does not change its meaning: comments, and whitespace
/// and commas between tokens (one space is kept where two names or numbers would merge).
/// Strings and block strings are kept byte for byte.
pub fn normalise(document: &str) -> String {
    let mut out = String::with_capacity(document.len());
    let mut chars = document.chars().peekable();
    let mut gap = false;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for n in chars.by_ref() {
                    if n == '\n' || n == '\r' {
                        break;
                    }
                }
                gap = true;
            }
            c if c.is_whitespace() || c == ',' || c == '\u{feff}' => gap = true,
            '"' => {
                if gap && out.chars().last().is_some_and(word) {
                    out.push(' ');
                }
                gap = false;
                out.push('"');
                let block = chars.peek() == Some(&'"') && {
                    let mut look = chars.clone();
                    look.next();
                    look.peek() == Some(&'"')
                };
                if block {
                    out.push_str("\"\"");
                    chars.next();
                    chars.next();
                    // Up to the closing """ (an escaped \""" stays inside).
                    let mut quotes = 0;
                    while let Some(n) = chars.next() {
                        out.push(n);
                        if n == '\\' {
                            let mut look = chars.clone();
                            if (0..3).all(|_| look.next() == Some('"')) {
                                out.push_str("\"\"\"");
                                chars = look;
                                quotes = 0;
                                continue;
                            }
                        }
                        quotes = if n == '"' { quotes + 1 } else { 0 };
                        if quotes == 3 {
                            break;
                        }
                    }
                } else {
                    while let Some(n) = chars.next() {
                        out.push(n);
                        if n == '\\' {
                            if let Some(escaped) = chars.next() {
                                out.push(escaped);
                            }
                        } else if n == '"' || n == '\n' {
                            break;
                        }
                    }
                }
            }
            c => {
                if gap && word(c) && out.chars().last().is_some_and(word) {
                    out.push(' ');
                }
                // `...` followed by a name stays apart from what precedes only by itself.
                gap = false;
                out.push(c);
            }
        }
    }
    out
}

/// `value` as JSON with every object's keys sorted, so equal variables give equal keys.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:", serde_json::Value::String(k.clone()));
                if let Some(v) = map.get(k) {
                    canonical_json(v, out);
                }
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// What a request asks: the key of its answer and the parts to execute it again from.
#[derive(Debug)]
pub struct Asked {
    pub key: ResponseKey,
    query: String,
    operation: Option<String>,
    variables: async_graphql::Variables,
    extensions: std::collections::HashMap<String, async_graphql::Value>,
}

impl Asked {
    pub fn new(request: Request, principal: Option<&Principal>) -> Self {
        let key = ResponseKey::of(&request, principal);
        Self {
            key,
            query: request.query,
            operation: request.operation_name,
            variables: request.variables,
            extensions: request.extensions.0,
        }
    }

    pub fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }

    /// The request again, as it was read (query, operation, variables, extensions).
    pub fn request(&self) -> Request {
        let mut request = Request::new(self.query.clone()).variables(self.variables.clone());
        if let Some(name) = &self.operation {
            request = request.operation_name(name.clone());
        }
        request.extensions.0 = self.extensions.clone();
        request
    }

    fn bytes(&self) -> usize {
        // The variables and extensions are weighed by their JSON text, near their heap.
        fn json<T: serde::Serialize>(value: &T) -> usize {
            serde_json::to_vec(value).map_or(0, |v| v.len())
        }
        self.key.bytes()
            + size_of::<Self>()
            + self.query.capacity()
            + self.operation.as_ref().map_or(0, String::capacity)
            + json(&self.variables)
            + json(&self.extensions)
    }
}

/// POST bodies already read, by their exact bytes and the caller: what they asked. A body
/// sent again (a dashboard polling) then skips the JSON parse, the document's normalising
/// and the variables' canonical form, and goes straight to the answer's cache. Only bodies
/// that were one valid request object are kept; bounded by bytes like every cache.
pub type BodyMemo = moka::future::Cache<(axum::body::Bytes, Option<String>), Arc<Asked>>;

pub fn body_memo(policy: &CachePolicy, budget: u64) -> BodyMemo {
    let max_entries = policy.max_entries;
    moka::future::Cache::builder()
        .weigher(
            move |(body, principal): &(axum::body::Bytes, Option<String>), asked: &Arc<Asked>| {
                let bytes = body.len()
                    + principal.as_ref().map_or(0, String::capacity)
                    + ARC_HEADER
                    + asked.bytes()
                    + ENTRY_OVERHEAD;
                weight(bytes, budget, max_entries)
            },
        )
        // What a body asks never changes: entries leave only when the bound needs room.
        .max_capacity(budget)
        .build()
}

/// Weighed by key and body bytes (with the compressed forms made so far: re-weighed when
/// one is added) within `budget`, each entry at least `budget / CACHE_MAX_ENTRIES`.
pub fn response_cache(policy: &CachePolicy, budget: u64, counters: CacheCounters) -> ResponseCache {
    let max_entries = policy.max_entries;
    SwrCache::new(
        policy.ttl,
        policy.stale,
        budget,
        move |key: &ResponseKey, body: &SharedBody| {
            let bytes = key.bytes()
                + entry_size::<SharedBody>()
                + ARC_HEADER
                + size_of::<Encoded>()
                + body.held_bytes()
                + ENTRY_OVERHEAD;
            weight(bytes, budget, max_entries)
        },
        Some(counters),
    )
}

/// An answer that is not stored (it has errors): sent to the callers that waited for it,
/// then forgotten.
#[derive(Debug, Clone)]
pub struct Unstored {
    pub body: SharedBody,
    /// Execution never began (parse, validation, variables): 400 under
    /// `application/graphql-response+json`.
    pub request_error: bool,
    /// The first error's code, for the log of a failed background refresh.
    code: String,
}

impl Failure for Unstored {
    fn log_detail(&self) -> String {
        format!("the answer had errors ({})", self.code)
    }
}

/// RFC 3339 in whole seconds, UTC.
fn instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Executes `request` and serialises the answer; one without errors is returned to be
/// stored (or, with the cache off, sent with its strong `ETag` all the same), with the age
/// of the oldest data it used and, with a TTL, in `extensions.cache`, when that data was
/// read and until when the answer is fresh and may be served stale (instants, not an
/// age: the stored bytes stay the same for their whole life, so each compressed form is
/// made once; the `Age` header gives the age). Such an answer's `ETag` is weak, over the
/// answer without those instants, so it changes with the data and not with each refill.
pub async fn execute(
    state: &AppState,
    request: Request,
    context: &Context,
) -> Result<Cached<SharedBody>, Unstored> {
    let note = !state.config.cache.ttl.is_zero();
    let freshness = Arc::new(Freshness::default());
    let request = with_context(request, context).data(freshness.clone());
    let mut response = state.schema.execute(request).await;
    let (age, source) = freshness.get().unwrap_or((Duration::ZERO, Source::Miss));
    let storable = response.errors.is_empty();
    let serialise = |response: &async_graphql::Response| {
        serde_json::to_vec(&body_of(response)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "serialising a GraphQL answer failed");
            br#"{"errors":[{"message":"the answer could not be serialised","extensions":{"code":"INTERNAL"}}]}"#.to_vec()
        })
    };
    // Each refill moves the instants below; the validator covers the answer without them,
    // so a poller keeps getting 304 across refills while the data stays the same (weak:
    // the bytes differ in those instants).
    let mut weak_tag = None;
    if storable && note {
        weak_tag = Some(weak_etag_of(&serialise(&response)));
        let policy = state.config.cache;
        let data_at = chrono::Utc::now()
            - chrono::Duration::from_std(age).unwrap_or_else(|_| chrono::Duration::zero());
        let span = |d: Duration| {
            chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::zero())
        };
        let cache = serde_json::json!({
            "dataAt": instant(data_at),
            "freshUntil": instant(data_at + span(policy.ttl)),
            "staleUntil": instant(data_at + span(policy.ttl + policy.stale)),
        });
        if let Ok(value) = async_graphql::Value::from_json(cache) {
            response.extensions.insert("cache".to_owned(), value);
        }
    }
    let json = serialise(&response);
    let body = Arc::new(match weak_tag {
        Some(tag) => Encoded::with_etag(json.into(), tag),
        None => Encoded::new(json.into()),
    });
    if storable {
        Ok(Cached {
            value: body,
            age,
            source,
        })
    } else {
        let code = response
            .errors
            .first()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string())
            .unwrap_or_default();
        Err(Unstored {
            body,
            request_error: is_request_error(&response),
            code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn documents_that_mean_the_same_normalise_the_same() {
        let a =
            "query Q($d: Date!) {\n  usageByDay(from: $d, granularity: DAY) { date, visits }\n}";
        let b = "query Q( $d : Date! ){usageByDay(from:$d granularity:DAY){date visits}} # note";
        assert_eq!(normalise(a), normalise(b));
        assert_eq!(normalise("{ a b }"), "{a b}");
        // Strings keep their spaces, commas and hashes; names stay apart.
        assert_eq!(
            normalise(r#"{ f(s: "a,  b # c") }"#),
            r#"{f(s:"a,  b # c")}"#
        );
        assert_ne!(
            normalise(r#"{ f(s: "a b") }"#),
            normalise(r#"{ f(s: "a  b") }"#)
        );
        assert_eq!(
            normalise("{ f(s: \"\"\" x,  \\\"\"\" y \"\"\") }"),
            "{f(s:\"\"\" x,  \\\"\"\" y \"\"\")}"
        );
        assert_eq!(
            normalise("query  Q { ... on T { a } }"),
            "query Q{...on T{a}}"
        );
        assert_ne!(normalise("{ a }"), normalise("{ b }"));
    }
}
