//! Per-client rate limit settings: the rate, the burst, and the proxies trusted in `X-Forwarded-For`.

use clap::Args;

use super::value::{defaults, float, int};

#[derive(Args, Debug, Clone)]
pub struct RateLimitArgs {
    /// Requests per second each client may make to the data roads (0: no limit).
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", global = true, default_value_t = 0.0,
          value_parser = float(0.0, 1_000_000.0, "requests per second, 0 for no limit"))]
    pub rate_limit_per_second: f64,
    /// Requests a client may make at once above the rate (default: twice the rate).
    #[arg(long, env = "RATE_LIMIT_BURST", global = true,
          value_parser = float(1.0, 1_000_000.0, "a number of requests from 1"))]
    pub rate_limit_burst: Option<f64>,
    /// Proxies in front of the gateway that append to X-Forwarded-For (0: use the peer address).
    #[arg(long, env = "TRUSTED_PROXY_HOPS", global = true, default_value_t = 0,
          value_parser = int::<usize>(0..=16, "a number of proxies from 0 to 16"))]
    pub trusted_proxy_hops: usize,
}

impl Default for RateLimitArgs {
    fn default() -> Self {
        defaults()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
    /// Proxies that append to `X-Forwarded-For`: the client is the N-th entry from the right.
    pub trusted_proxy_hops: usize,
}

impl RateLimitArgs {
    /// `None` when the rate is 0: no per-client limit.
    pub(super) fn limit(&self) -> Option<RateLimit> {
        let per_second = self.rate_limit_per_second;
        (per_second > 0.0).then_some(RateLimit {
            per_second,
            burst: self.rate_limit_burst.unwrap_or((per_second * 2.0).max(1.0)),
            trusted_proxy_hops: self.trusted_proxy_hops,
        })
    }
}
