//! The rendered legacy report bodies' cache: held in `AppState`, filled by `reports`.

use std::time::Duration;

use std::mem::size_of;

use crate::analytics::cache::{
    ARC_HEADER, CacheCounters, CacheKey, ENTRY_OVERHEAD, SwrCache, entry_size,
};
use crate::http::encoding::{Encoded, SharedBody};

/// The legacy reports' labels in the rendered-body cache and logs (daily usage also runs
/// as the GraphQL operation of that name).
pub const DAILY_USAGE_OPERATION: &str = "LegacyDailyUsage";
pub const USER_VISITS_OPERATION: &str = "LegacyUserVisits";

/// The two legacy reports, each with its body writer in `reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyReport {
    DailyUsage,
    UserVisits,
}

impl CacheKey for LegacyReport {
    fn label(&self) -> &'static str {
        match self {
            Self::DailyUsage => DAILY_USAGE_OPERATION,
            Self::UserVisits => USER_VISITS_OPERATION,
        }
    }
}

/// The rendered bodies, fresh as long as their data is: a dashboard polling a
/// report gets the bytes without re-running the operation and re-serialising
/// thousands of rows. A miss reads the analytics layer as always. A body is stale when
/// its data is, with the reports' stale window: served (marked) while one background
/// refresh renders it from fresh reports. Each body carries its
/// `ETag` and, once asked for, its compressed forms (see `http::encoding`).
pub type RenderedCache = SwrCache<LegacyReport, SharedBody>;

/// Weighed by body bytes, with the compressed forms made so far (re-weighed when one
/// is added), within
/// `max_bytes` (the REST share of `CACHE_MAX_BYTES`); a body larger than that is served
/// but not kept.
pub fn rendered_cache(
    ttl: Duration,
    stale: Duration,
    max_bytes: u64,
    counters: CacheCounters,
) -> RenderedCache {
    SwrCache::new(
        ttl,
        stale,
        max_bytes,
        // One entry per report, so only the bytes bound it.
        |_: &LegacyReport, body: &SharedBody| {
            let bytes = entry_size::<SharedBody>()
                + ARC_HEADER
                + size_of::<Encoded>()
                + body.held_bytes()
                + ENTRY_OVERHEAD;
            u32::try_from(bytes).unwrap_or(u32::MAX)
        },
        Some(counters),
    )
}
