//! One generic cache, [`SwrCache`]: an answer is fresh for a bound, then served stale
//! while one background refresh runs (stale-while-revalidate); concurrent misses share
//! one fetch (single flight); every answer carries the age of its data. Also the
//! `CACHE_*` policy and how `CACHE_MAX_BYTES` is shared between the caches.
//!
//! Dashboards refresh the same few reports over and over; without this each call
//! is a full aggregation whose cost grows with the table.
//!
//! Every cache here is bounded by the bytes it holds (`CACHE_MAX_BYTES`), not only by
//! entries: one `usageByDay` over ten years of days is ~180 KB, so ten thousand of
//! them would be gigabytes (issue 11).

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::mem::size_of;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Fetched from the database for this request.
    Miss,
    /// From the cache, within the freshness bound.
    Hit,
    /// From the cache, past the freshness bound (being refreshed, or the database failed).
    Stale,
}

/// A report with the age of its data.
#[derive(Debug, Clone)]
pub struct Cached<T> {
    pub value: T,
    pub age: Duration,
    pub source: Source,
}

impl<T> Cached<T> {
    /// An answer just read from its source.
    pub fn miss(value: T) -> Self {
        Self {
            value,
            age: Duration::ZERO,
            source: Source::Miss,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Cached<U> {
        Cached {
            value: f(self.value),
            age: self.age,
            source: self.source,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// How long an answer is fresh; zero disables the cache.
    pub ttl: Duration,
    /// How long past `ttl` an answer may still be served while a background
    /// refresh runs; when the database is down the refresh fails and the answer
    /// keeps being served, marked stale, until this bound (stale-if-error).
    pub stale: Duration,
    pub max_entries: u64,
    /// Bytes all the caches together may hold (`CACHE_MAX_BYTES`), shared as [`Budget`] says.
    pub max_bytes: u64,
}

/// How `CACHE_MAX_BYTES` is shared between the caches, each bounded on its own.
///
/// Reports get three eighths: they are what a BI tool's sweep of distinct ranges fills.
/// The rendered legacy bodies a quarter: only two keys, but `user_visits` is about 63
/// bytes per user (6.3 MB at 100,000 users, plus its compressed forms once asked for).
/// Whole GraphQL answers a quarter, less a sixty-fourth for the POST bodies they were
/// asked by. Users by id and persisted queries a sixteenth each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub reports: u64,
    pub rest_bodies: u64,
    pub graphql_responses: u64,
    pub graphql_bodies: u64,
    pub users: u64,
    pub persisted_queries: u64,
}

impl From<crate::config::CacheSettings> for CachePolicy {
    fn from(s: crate::config::CacheSettings) -> Self {
        Self {
            ttl: s.ttl,
            stale: s.stale,
            max_entries: s.max_entries,
            max_bytes: s.max_bytes,
        }
    }
}

impl CachePolicy {
    pub fn budget(&self) -> Budget {
        let b = self.max_bytes;
        Budget {
            reports: b / 8 * 3,
            rest_bodies: b / 4,
            graphql_responses: b / 4 - b / 64,
            graphql_bodies: b / 64,
            users: b / 16,
            persisted_queries: b / 16,
        }
    }
}

/// What one cache entry costs besides its key and value: moka's node, its
/// access-order and timer links, the hash table slot and the key's `Arc`. An
/// allowance from moka's layout, not a measurement.
pub const ENTRY_OVERHEAD: usize = 192;

/// Header of an `Arc` allocation (strong and weak counts).
pub const ARC_HEADER: usize = 2 * size_of::<usize>();

/// An entry's weight for a cache bounded to `budget` bytes and `max_entries`
/// entries: its bytes, but never less than `budget / max_entries`, so the total
/// staying within `budget` also keeps the count within `max_entries` (moka
/// bounds one figure; this makes it bound both).
pub fn weight(bytes: usize, budget: u64, max_entries: u64) -> u32 {
    let floor = budget.div_ceil(max_entries.max(1));
    u32::try_from((bytes as u64).max(floor)).unwrap_or(u32::MAX)
}

/// What a cache key answers, for logs.
pub trait CacheKey: Clone + Eq + Hash + Debug + Send + Sync + 'static {
    /// The report (or body) the key belongs to.
    fn label(&self) -> &'static str;
}

/// A fetch error a cache shares between the callers of one fetch and logs when a
/// background refresh fails.
pub trait Failure: Send + Sync + 'static {
    /// The cause for the log, with any detail a client must not see.
    fn log_detail(&self) -> String;
}

struct Entry<V> {
    value: V,
    /// When the data was read (a fetch that passes on older data is dated back by its age).
    fetched: Instant,
    /// Where the fetch got it; an answer already stale when fetched is served but not kept.
    source: Source,
}

/// The bytes of one entry besides its key and the value's heap (for weighers).
pub fn entry_size<V>() -> usize {
    size_of::<Entry<V>>()
}

impl<V> Entry<V> {
    fn new(fetched: Cached<V>) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            value: fetched.value,
            fetched: now.checked_sub(fetched.age).unwrap_or(now),
            source: fetched.source,
        })
    }
}

/// One cache's series in `/metrics`: `cache_requests_total{cache, result}` by what a
/// lookup answered, and `cache_refresh_failures_total{cache}`.
#[derive(Clone)]
pub struct CacheCounters {
    pub hit: prometheus::IntCounter,
    pub miss: prometheus::IntCounter,
    pub stale: prometheus::IntCounter,
    pub refresh_failures: prometheus::IntCounter,
}

impl CacheCounters {
    fn count(&self, source: Source) {
        match source {
            Source::Hit => self.hit.inc(),
            Source::Miss => self.miss.inc(),
            Source::Stale => self.stale.inc(),
        }
    }
}

/// Answers by key, fresh for `ttl`, then served stale for up to `stale` more while one
/// background refresh runs; the total weight (bytes) stays within `max_bytes`.
/// Clones share the entries.
#[derive(Clone)]
pub struct SwrCache<K, V> {
    entries: moka::future::Cache<K, Arc<Entry<V>>>,
    ttl: Duration,
    stale: Duration,
    max_bytes: u64,
    refreshing: Arc<Mutex<HashSet<K>>>,
    /// Lookups by result and failed background refreshes.
    counters: Option<CacheCounters>,
}

impl<K: CacheKey, V: Clone + Send + Sync + 'static> SwrCache<K, V> {
    /// `weigh` gives an entry's bytes, as moka's weight; an answer heavier than
    /// `max_bytes` is served but not kept.
    pub fn new(
        ttl: Duration,
        stale: Duration,
        max_bytes: u64,
        weigh: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
        counters: Option<CacheCounters>,
    ) -> Self {
        let entries = moka::future::Cache::builder()
            .weigher(move |key: &K, entry: &Arc<Entry<V>>| weigh(key, &entry.value))
            // With a weigher the capacity is the total weight: bytes.
            .max_capacity(max_bytes)
            // Nothing older than fresh + stale is ever served.
            .time_to_live((ttl + stale).max(Duration::from_millis(1)))
            .build();
        Self {
            entries,
            ttl,
            stale,
            max_bytes,
            refreshing: Arc::default(),
            counters,
        }
    }

    /// Bytes held, by the weights (moka settles its figures lazily: see `run_pending_tasks`).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The bound `weighted_size` stays within.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Applies pending inserts and evictions now, so the figures above are settled.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }

    fn count(&self, source: Source) {
        if let Some(counters) = &self.counters {
            counters.count(source);
        }
    }

    /// Weighs `key`'s entry again (its value grew: a compressed form was added), keeping
    /// its age; the cache evicts to stay within its bound if need be.
    pub async fn reweigh(&self, key: &K) {
        if let Some(entry) = self.entries.get(key).await {
            self.entries.insert(key.clone(), entry).await;
        }
    }

    /// Stores an answer fetched outside [`Self::get`] (a revalidation), unless it is stale.
    pub async fn put(&self, key: K, fetched: Cached<V>) {
        if fetched.source != Source::Stale {
            self.entries.insert(key, Entry::new(fetched)).await;
        }
    }

    /// The cached answer for `key`, or `fetch`'s, with one fetch for any number of
    /// concurrent callers. `fetch` tells the age and source of the data it passes on
    /// (a fresh read: [`Cached::miss`]).
    pub async fn get<E, F, Fut>(&self, key: K, fetch: F) -> Result<Cached<V>, Arc<E>>
    where
        E: Failure,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Cached<V>, E>> + Send + 'static,
    {
        if let Some(entry) = self.entries.get(&key).await {
            let age = entry.fetched.elapsed();
            // An answer built on stale data is stale, whatever its age says.
            if age < self.ttl && entry.source != Source::Stale {
                self.count(Source::Hit);
                return Ok(Cached {
                    value: entry.value.clone(),
                    age,
                    source: Source::Hit,
                });
            }
            if age < self.ttl + self.stale && in_background_refresh() {
                // The refresh of an answer built on this one (a GraphQL answer or legacy
                // body on its reports): it waits for fresh data. Built on this stale entry
                // it would not be kept, and each next request would start another refresh
                // of it, a full execution each, until this entry's own refresh landed
                // (at 10M tokens, a few hundred of them on one core, stalling the rest).
                // A failure fails that refresh, which keeps its own stale answer.
                let fetched = fetch().await.map_err(Arc::new)?;
                self.count(Source::Miss);
                self.put(key, fetched.clone()).await;
                return Ok(fetched);
            }
            if age < self.ttl + self.stale {
                self.refresh_in_background(key, fetch);
                self.count(Source::Stale);
                return Ok(Cached {
                    value: entry.value.clone(),
                    age,
                    source: Source::Stale,
                });
            }
            self.entries.invalidate(&key).await;
        }
        let started = Instant::now();
        // Set by the one caller whose fetch runs; the others joined it (a hit, for the
        // counters: this cache answered them).
        let fetched_here = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = fetched_here.clone();
        let entry = self
            .entries
            .try_get_with(key.clone(), async move {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                fetch().await.map(Entry::new)
            })
            .await
            .inspect_err(|_| self.count(Source::Miss))?;
        self.count(if fetched_here.load(std::sync::atomic::Ordering::Relaxed) {
            Source::Miss
        } else {
            Source::Hit
        });
        // An answer built on stale data (the report under it is being refreshed) is kept,
        // dated by its data: the next requests are served it, marked stale, while one
        // background refresh waits for fresh data, instead of each building it again.
        // Past the stale bound it goes like any entry.
        // Callers that joined someone else's fetch got data as old as that fetch.
        let source = match entry.source {
            Source::Miss if entry.fetched < started => Source::Hit,
            other => other,
        };
        Ok(Cached {
            value: entry.value.clone(),
            age: entry.fetched.elapsed(),
            source,
        })
    }

    fn refresh_in_background<E, F, Fut>(&self, key: K, fetch: F)
    where
        E: Failure,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Cached<V>, E>> + Send + 'static,
    {
        let Ok(mut refreshing) = self.refreshing.lock() else {
            return;
        };
        if !refreshing.insert(key.clone()) {
            return;
        }
        drop(refreshing);
        let (entries, refreshing) = (self.entries.clone(), self.refreshing.clone());
        let failures = self.counters.as_ref().map(|c| c.refresh_failures.clone());
        tokio::spawn(BACKGROUND_REFRESH.scope((), async move {
            match fetch().await {
                Ok(fetched) if fetched.source != Source::Stale => {
                    entries.insert(key.clone(), Entry::new(fetched)).await
                }
                // Data no fresher than what is held: nothing to keep.
                Ok(_) => {}
                // The stale entry stays until its bound; the next caller tries again.
                Err(e) => {
                    if let Some(failures) = &failures {
                        failures.inc();
                    }
                    tracing::warn!(
                        report = key.label(),
                        key = ?key,
                        error = %e.log_detail(),
                        "background refresh of a cached report failed; the stale answer is served until its bound"
                    )
                }
            }
            if let Ok(mut set) = refreshing.lock() {
                set.remove(&key);
            }
        }));
    }
}

tokio::task_local! {
    /// Set while a cache refreshes a stale entry in the background.
    static BACKGROUND_REFRESH: ();
}

/// Whether this runs inside a background refresh (see [`SwrCache::get`]).
fn in_background_refresh() -> bool {
    BACKGROUND_REFRESH.try_with(|_| ()).is_ok()
}

/// The oldest data one request used, so an answer can say how old it is (REST `Age`).
#[derive(Debug, Default)]
pub struct Freshness(Mutex<Option<(Duration, Source)>>);

impl Freshness {
    pub fn record<T>(&self, cached: &Cached<T>) {
        if let Ok(mut slot) = self.0.lock() {
            let (age, source) = slot.get_or_insert((Duration::ZERO, Source::Miss));
            *age = (*age).max(cached.age);
            *source = match (*source, cached.source) {
                (Source::Stale, _) | (_, Source::Stale) => Source::Stale,
                (Source::Hit, _) | (_, Source::Hit) => Source::Hit,
                _ => Source::Miss,
            };
        }
    }

    pub fn get(&self) -> Option<(Duration, Source)> {
        self.0.lock().ok().and_then(|s| *s)
    }
}

#[cfg(test)]
mod tests;
