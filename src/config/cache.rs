//! Report cache settings: freshness, the stale window, and the entry and byte bounds.

use std::time::Duration;

use clap::Args;

use super::value::{defaults, float, int};

/// 32 MiB: every cache full at this bound peaks at 59–64 MiB RSS (README, "Cache memory"),
/// inside the pod's 96 Mi memory request (k8s/base/deployment.yaml).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 32 << 20;

#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// Seconds a cached report stays fresh (0 disables the cache).
    #[arg(long, env = "CACHE_TTL_SECONDS", global = true, default_value_t = 30.0,
          value_parser = float(0.0, 86_400.0, "seconds from 0 (off) to 86400"))]
    pub cache_ttl_seconds: f64,
    /// Seconds past freshness a report may be served stale while it is refreshed (or the database is down).
    #[arg(long, env = "CACHE_STALE_SECONDS", global = true, default_value_t = 300.0,
          value_parser = float(0.0, 86_400.0, "seconds from 0 to 86400"))]
    pub cache_stale_seconds: f64,
    /// Most cached reports kept.
    #[arg(long, env = "CACHE_MAX_ENTRIES", global = true, default_value_t = 10_000,
          value_parser = int::<u64>(1..=10_000_000, "an integer from 1 to 10000000"))]
    pub cache_max_entries: u64,
    /// Bytes all caches together may hold (reports, rendered REST bodies, users, persisted queries).
    #[arg(long, env = "CACHE_MAX_BYTES", global = true, default_value_t = DEFAULT_CACHE_MAX_BYTES,
          value_parser = int::<u64>(1_048_576..=1 << 40,
              "bytes from 1048576 (1 MiB) to 1099511627776 (1 TiB)"))]
    pub cache_max_bytes: u64,
}

impl Default for CacheArgs {
    fn default() -> Self {
        defaults()
    }
}

/// The cache settings as plain values; the analytics side turns them into its `CachePolicy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheSettings {
    /// How long an answer is fresh; zero disables the cache.
    pub ttl: Duration,
    /// How long past `ttl` an answer may still be served, marked stale.
    pub stale: Duration,
    pub max_entries: u64,
    /// Bytes all the caches together may hold (`CACHE_MAX_BYTES`).
    pub max_bytes: u64,
}

impl From<&CacheArgs> for CacheSettings {
    fn from(args: &CacheArgs) -> Self {
        Self {
            ttl: Duration::from_secs_f64(args.cache_ttl_seconds),
            stale: Duration::from_secs_f64(args.cache_stale_seconds),
            max_entries: args.cache_max_entries,
            max_bytes: args.cache_max_bytes,
        }
    }
}
