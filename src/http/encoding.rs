//! Conditional requests and content codings for the answers the gateway caches (both REST
//! reports, GraphQL over GET and POST): a strong `ETag` from the body's bytes,
//! `If-None-Match` answered with `304` and no body, the freshness headers, and the body in
//! gzip, br or zstd as `Accept-Encoding` asks. A cached body is compressed at most once per
//! coding per cache entry (by the first request that asks for that coding), never per
//! request; answers nobody caches are compressed as they stream (`CompressionLayer`).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::OnceCell;

use crate::analytics::cache::Source;

/// Bodies shorter than this go out as they are: compressing them saves less than it costs.
pub const MIN_COMPRESS_BYTES: usize = 1024;
/// Bodies longer than this are compressed on the blocking pool, off the request workers.
const BLOCKING_ABOVE: usize = 64 * 1024;

/// What every cacheable answer varies by: the media type (`Accept`), the coding, and the
/// caller (either credential header).
pub const VARY: &str = "accept, accept-encoding, authorization, x-api-key";

/// A content coding the gateway can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
    Zstd,
}

/// The compressed codings, in the order preferred when a client accepts several equally.
/// zstd comes last: stock clients advertise it without being able to decode it (graphql-
/// inspector's fetch on Node 20 sends `zstd` and then fails on a zstd body), so it is
/// only chosen when a client prefers it by `q` or accepts nothing else.
const COMPRESSED: [Coding; 3] = [Coding::Br, Coding::Gzip, Coding::Zstd];

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Br => "br",
            Self::Zstd => "zstd",
        }
    }

    fn slot(self) -> Option<usize> {
        match self {
            Self::Identity => None,
            Self::Zstd => Some(0),
            Self::Br => Some(1),
            Self::Gzip => Some(2),
        }
    }

    /// `body` in this coding (levels chosen for speed: a 6 MB report in tens of ms).
    pub fn compress(self, body: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Self::Identity => Ok(body.to_vec()),
            Self::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::new(6),
                );
                enc.write_all(body)?;
                enc.finish()
            }
            Self::Br => {
                let mut out = Vec::with_capacity(body.len() / 4);
                {
                    let mut enc = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
                    enc.write_all(body)?;
                    enc.flush()?;
                }
                Ok(out)
            }
            Self::Zstd => zstd::bulk::compress(body, 3),
        }
    }
}

/// The coding to answer with: the compressed one the client accepts with the highest
/// `q` (ties in [`COMPRESSED`] order), else identity. `*` stands for any coding not named.
pub fn negotiate(headers: &HeaderMap) -> Coding {
    let mut named: Vec<(String, f32)> = Vec::new();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if token.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            named.push((token, q));
        }
    }
    let q_of = |token: &str| {
        named
            .iter()
            .find(|(t, _)| t == token)
            .or_else(|| named.iter().find(|(t, _)| t == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    let mut best = (Coding::Identity, 0.0f32);
    for coding in COMPRESSED {
        let q = q_of(coding.token());
        if q > best.1 {
            best = (coding, q);
        }
    }
    best.0
}

/// A body with its validator and its compressed forms, each made on first demand.
/// The forms kept never add up to more than the body itself; a form that would is not
/// kept, and identity goes out instead.
pub struct Encoded {
    identity: Bytes,
    etag: HeaderValue,
    forms: [OnceCell<Option<Bytes>>; 3],
    kept: AtomicUsize,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("bytes", &self.identity.len())
            .field("etag", &self.etag)
            .finish()
    }
}

/// The strong validator of `body`: its length and the 64-bit XXH3 of its bytes (a fixed
/// algorithm, so the same on every pod and build), quoted. XXH3 runs at memory speed:
/// SipHash, used before, took about 40 ms of a 64 MB body's render at 1M users.
pub fn etag_of(body: &[u8]) -> HeaderValue {
    let hash = xxhash_rust::xxh3::xxh3_64(body);
    let tag = format!("\"{:x}-{hash:016x}\"", body.len());
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A weak validator over `semantic`, the bytes a body means (for a GraphQL answer: the
/// answer without its `extensions.cache` instants), for a body that differs from another
/// only in such metadata: `W/` and the same form as [`etag_of`].
pub fn weak_etag_of(semantic: &[u8]) -> HeaderValue {
    let strong = etag_of(semantic);
    let tag = format!("W/{}", strong.to_str().unwrap_or("\"0\""));
    HeaderValue::from_str(&tag).unwrap_or(strong)
}

impl Encoded {
    pub fn new(identity: Bytes) -> Self {
        let etag = etag_of(&identity);
        Self::with_etag(identity, etag)
    }

    /// A body with a validator of the caller's making (see [`weak_etag_of`]).
    pub fn with_etag(identity: Bytes, etag: HeaderValue) -> Self {
        Self {
            etag,
            identity,
            forms: Default::default(),
            kept: AtomicUsize::new(0),
        }
    }

    pub fn identity(&self) -> &Bytes {
        &self.identity
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// What this value holds on the heap now: the body and the forms made so far (at
    /// most as long as the body). A cache re-weighs an entry when this grows.
    pub fn held_bytes(&self) -> usize {
        self.identity.len() + self.kept.load(Ordering::Relaxed)
    }

    /// The body in `coding`, made once; `None` when it is sent as identity (short, not
    /// smaller, over the allowance, or the coder failed, which is logged).
    pub async fn form(&self, coding: Coding) -> Option<Bytes> {
        let slot = coding.slot()?;
        if self.identity.len() < MIN_COMPRESS_BYTES {
            return None;
        }
        let cell = self.forms.get(slot)?;
        cell.get_or_init(|| async {
            let body = self.identity.clone();
            let made = if body.len() > BLOCKING_ABOVE {
                tokio::task::spawn_blocking(move || coding.compress(&body))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
                    .and_then(|r| r)
            } else {
                coding.compress(&body)
            };
            match made {
                Ok(form) if form.len() < self.identity.len() => {
                    let before = self.kept.fetch_add(form.len(), Ordering::Relaxed);
                    if before + form.len() > self.identity.len() {
                        self.kept.fetch_sub(form.len(), Ordering::Relaxed);
                        None
                    } else {
                        Some(Bytes::from(form))
                    }
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(coding = coding.token(), error = %e, "compressing a cached body failed; sending it uncompressed");
                    None
                }
            }
        })
        .await
        .clone()
    }
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 has it for this
/// header) or is `*`.
pub fn none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(ours) = etag.to_str() else {
        return false;
    };
    let ours = ours.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// Whether the request asks to revalidate (`Cache-Control: no-cache`, or the HTTP/1.0
/// `Pragma: no-cache`): the answer is then recomputed from current data.
pub fn wants_revalidation(headers: &HeaderMap) -> bool {
    let says_no_cache = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| {
                let d = d.trim();
                d.eq_ignore_ascii_case("no-cache") || d.eq_ignore_ascii_case("max-age=0")
            })
    };
    says_no_cache(header::CACHE_CONTROL) || says_no_cache(header::PRAGMA)
}

/// How fresh an answer is, for its headers.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Age of the oldest data in it.
    pub age: Duration,
    pub source: Source,
    /// How long an answer is fresh (`CACHE_TTL_SECONDS`); zero: not cached, `no-cache`.
    pub ttl: Duration,
    /// How long past that it may be served stale while it is refreshed.
    pub stale: Duration,
    /// Authentication is on: shared caches must not keep it.
    pub private: bool,
}

impl Freshness {
    fn cache_control(&self) -> String {
        let scope = if self.private { "private, " } else { "" };
        if self.ttl.is_zero() {
            return format!("{scope}no-cache");
        }
        format!(
            "{scope}max-age={}, stale-while-revalidate={}",
            self.ttl.saturating_sub(self.age).as_secs(),
            self.stale.as_secs()
        )
    }

    fn x_cache(&self) -> &'static str {
        match self.source {
            Source::Miss => "MISS",
            Source::Hit => "HIT",
            Source::Stale => "STALE",
        }
    }
}

/// The answer to a request for `body`: `304` when `If-None-Match` names its `ETag`, else
/// `status` with the body in the best coding the client accepts; both with the validator,
/// `Cache-Control`, `Age`, `X-Cache` and `Vary`. Returns whether it was a `304`.
pub async fn respond(
    request: &HeaderMap,
    status: StatusCode,
    content_type: HeaderValue,
    body: &Encoded,
    freshness: Freshness,
) -> (Response, bool) {
    let not_modified = status == StatusCode::OK && none_match(request, body.etag());
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let coding = negotiate(request);
        match body.form(coding).await {
            Some(form) => {
                let mut r = (status, form).into_response();
                r.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(coding.token()),
                );
                r
            }
            None => (status, body.identity().clone()).into_response(),
        }
    };
    let headers = response.headers_mut();
    if !not_modified {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(header::ETAG, body.etag().clone());
    headers.insert(header::VARY, HeaderValue::from_static(VARY));
    for (name, value) in [
        (header::CACHE_CONTROL, freshness.cache_control()),
        (header::AGE, freshness.age.as_secs().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert("x-cache", HeaderValue::from_static(freshness.x_cache()));
    (response, not_modified)
}

/// A shared handle on an encoded body, as the caches hold it.
pub type SharedBody = Arc<Encoded>;

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn accept_encoding_picks_the_best_accepted_coding() {
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
        assert_eq!(negotiate(&accept("gzip, deflate")), Coding::Gzip);
        assert_eq!(negotiate(&accept("gzip, deflate, br, zstd")), Coding::Br);
        assert_eq!(negotiate(&accept("gzip;q=0.5, zstd")), Coding::Zstd);
        assert_eq!(negotiate(&accept("gzip;q=1.0, br;q=0.5")), Coding::Gzip);
        assert_eq!(negotiate(&accept("br;q=0, gzip;q=0")), Coding::Identity);
        assert_eq!(negotiate(&accept("identity")), Coding::Identity);
        assert_eq!(negotiate(&accept("*")), Coding::Br);
        assert_eq!(negotiate(&accept("br;q=0, *;q=0.5")), Coding::Gzip);
        assert_eq!(negotiate(&accept("deflate")), Coding::Identity);
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let tag = etag_of(b"{\"a\":1}");
        let t = tag.to_str().unwrap_or_default().to_owned();
        let inm = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
            none_match(&h, &tag)
        };
        assert!(inm(&t));
        assert!(inm(&format!("W/{t}")));
        assert!(inm(&format!("\"other\", {t}")));
        assert!(inm("*"));
        assert!(!inm("\"other\""));
        assert!(!none_match(&HeaderMap::new(), &tag));
        // A different body, a different tag.
        assert_ne!(etag_of(b"{\"a\":2}"), tag);
    }
}
