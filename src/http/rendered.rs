//! The rendered legacy report bodies' cache: held in `AppState`, filled by `reports`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::analytics::cache::Source;

/// A rendered legacy body and when the data behind it was read.
pub struct Rendered {
    pub body: axum::body::Bytes,
    pub data_read_at: Instant,
    pub source: Source,
}

/// The rendered bodies, fresh as long as their data is: a dashboard polling a
/// report gets the bytes without re-running the operation and re-serialising
/// thousands of rows. A miss takes the GraphQL road as always.
pub type RenderedCache = moka::future::Cache<&'static str, Arc<Rendered>>;

/// Weighed by body bytes within `max_bytes` (the REST share of `CACHE_MAX_BYTES`);
/// a body larger than that is served but not kept.
pub fn rendered_cache(ttl: Duration, max_bytes: u64) -> RenderedCache {
    use crate::analytics::cache::ENTRY_OVERHEAD;
    moka::future::Cache::builder()
        .weigher(|_: &&'static str, rendered: &Arc<Rendered>| {
            // One entry per report, so only the bytes bound it.
            let bytes = std::mem::size_of::<Rendered>() + rendered.body.len() + ENTRY_OVERHEAD;
            u32::try_from(bytes).unwrap_or(u32::MAX)
        })
        .max_capacity(max_bytes)
        .time_to_live(ttl.max(Duration::from_millis(1)))
        .build()
}
