//! The per-client rate limit of the data roads (429 with `Retry-After`), GCRA via `governor`.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Principal;
use crate::codes;
use crate::config::RateLimit;
use crate::http::error::error_response;

/// Per-client rate limits (GCRA, `governor`): keyed by the authenticated principal,
/// else by the client address: the peer's, or with `TRUSTED_PROXY_HOPS=N` the N-th
/// address from the right of `X-Forwarded-For`, the one the outermost trusted proxy
/// saw. Entries to its left are the client's own words and never chosen.
pub struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    trusted_proxy_hops: usize,
    checks: std::sync::atomic::AtomicU64,
}

/// Every this many checks, clients whose budget is full again are forgotten.
const SWEEP_EVERY: u64 = 4096;

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let period = Duration::from_secs_f64(1.0 / limit.per_second).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(limit.burst.ceil().clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: governor::RateLimiter::dashmap(quota),
            trusted_proxy_hops: limit.trusted_proxy_hops,
            checks: Default::default(),
        }
    }

    /// `Err(wait)` when the client must wait before its next request.
    fn take(&self, client: &String) -> Result<(), Duration> {
        use governor::clock::{Clock, DefaultClock};
        if self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(client)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The key of a request that carries no principal.
    fn client_address(&self, req: &Request) -> String {
        let peer = || {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
        };
        if self.trusted_proxy_hops == 0 {
            return peer();
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        // Fewer entries than trusted proxies: the leftmost is still one a proxy wrote.
        match hops.len().checked_sub(self.trusted_proxy_hops) {
            Some(i) => hops[i].to_owned(),
            None => hops.first().map_or_else(peer, |h| (*h).to_owned()),
        }
    }
}

pub async fn rate_limit(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(limiter) = limiter else {
        return next.run(req).await;
    };
    let client = match req.extensions().get::<Principal>() {
        Some(p) => format!("principal:{}", p.0),
        None => limiter.client_address(&req),
    };
    match limiter.take(&client) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0);
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                &format!("too many requests: retry after {secs} s"),
            );
            if let Ok(value) = HeaderValue::from_str(&format!("{secs}")) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}
