//! Report cache: results keyed by query and normalised arguments, fresh for a bound,
//! then served stale while one background refresh runs; concurrent misses share one fetch.
//!
//! Dashboards refresh the same few reports over and over; without this each call
//! is a full aggregation whose cost grows with the table.
//!
//! Every cache here is bounded by the bytes it holds (`CACHE_MAX_BYTES`), not only by
//! entries: one `usageByDay` over ten years of days is ~180 KB, so ten thousand of
//! them would be gigabytes (issue 11).

use std::collections::HashSet;
use std::future::Future;
use std::mem::size_of;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::Result;
use super::summary::Summary;
use super::usage::{UsageBucket, UsageQuery};
use super::visits::{UserVisits, VisitsFilter, VisitsOrder};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Usage(UsageQuery),
    Visits(VisitsFilter, VisitsOrder),
    Summary(Option<NaiveDate>, Option<NaiveDate>, Tz),
}

#[derive(Debug, Clone)]
pub enum Value {
    Usage(Arc<Vec<UsageBucket>>),
    Visits(Arc<Vec<UserVisits>>),
    Summary(Arc<Summary>),
}

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
/// Reports get half: they are what a BI tool's sweep of distinct ranges fills.
/// The rendered legacy bodies a quarter: only two keys, but `user_visits` is
/// about 50 bytes per user (5 MB at 100,000 users). Users by id and persisted
/// queries an eighth each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub reports: u64,
    pub rest_bodies: u64,
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
            reports: b / 2,
            rest_bodies: b / 4,
            users: b / 8,
            persisted_queries: b / 8,
        }
    }
}

/// What one cache entry costs besides its key and value: moka's node, its
/// access-order and timer links, the hash table slot and the key's `Arc`. An
/// allowance from moka's layout, not a measurement.
pub const ENTRY_OVERHEAD: usize = 192;

/// Header of an `Arc` allocation (strong and weak counts).
const ARC_HEADER: usize = 2 * size_of::<usize>();

/// An entry's weight for a cache bounded to `budget` bytes and `max_entries`
/// entries: its bytes, but never less than `budget / max_entries`, so the total
/// staying within `budget` also keeps the count within `max_entries` (moka
/// bounds one figure; this makes it bound both).
pub fn weight(bytes: usize, budget: u64, max_entries: u64) -> u32 {
    let floor = budget.div_ceil(max_entries.max(1));
    u32::try_from((bytes as u64).max(floor)).unwrap_or(u32::MAX)
}

impl Value {
    /// Heap bytes this value holds: the `Arc` allocation and, for lists, the
    /// vector's whole capacity (every type in them is plain data, no strings).
    pub fn heap_bytes(&self) -> usize {
        fn list<T>(v: &Vec<T>) -> usize {
            ARC_HEADER + size_of::<Vec<T>>() + v.capacity() * size_of::<T>()
        }
        match self {
            Self::Usage(v) => list(v.as_ref()),
            Self::Visits(v) => list(v.as_ref()),
            Self::Summary(_) => ARC_HEADER + size_of::<Summary>(),
        }
    }
}

impl Key {
    /// The report a key belongs to, for logs and labels.
    pub fn report(&self) -> &'static str {
        match self {
            Self::Usage(_) => "usage",
            Self::Visits(..) => "visits",
            Self::Summary(..) => "summary",
        }
    }
}

/// What one cached report costs: key (plain data, stored inline) and the
/// entry's `Arc` allocation with the value's heap, plus moka's bookkeeping.
fn entry_bytes(entry: &Entry) -> usize {
    size_of::<Key>() + ARC_HEADER + size_of::<Entry>() + entry.value.heap_bytes() + ENTRY_OVERHEAD
}

/// Users by id (`Analytics::users_by_ids`), fresh for the report bound, within
/// the users' share of the budget and ten times `CACHE_MAX_ENTRIES` entries.
pub fn user_cache(policy: &CachePolicy) -> moka::future::Cache<i32, entity::users::Model> {
    let (budget, max_entries) = (policy.budget().users, policy.max_entries.saturating_mul(10));
    moka::future::Cache::builder()
        .weigher(move |_: &i32, user: &entity::users::Model| {
            let bytes = size_of::<i32>()
                + size_of::<entity::users::Model>()
                + user.first_name.capacity()
                + user.last_name.capacity()
                + ENTRY_OVERHEAD;
            weight(bytes, budget, max_entries)
        })
        .max_capacity(budget)
        .time_to_live(policy.ttl)
        .build()
}

struct Entry {
    value: Value,
    fetched: Instant,
}

pub struct ReportCache {
    entries: moka::future::Cache<Key, Arc<Entry>>,
    policy: CachePolicy,
    refreshing: Arc<Mutex<HashSet<Key>>>,
    /// `cache_refresh_failures_total{cache="reports"}`.
    refresh_failures: prometheus::IntCounter,
}

impl ReportCache {
    pub fn new(policy: CachePolicy, refresh_failures: prometheus::IntCounter) -> Self {
        let (budget, max_entries) = (policy.budget().reports, policy.max_entries);
        let entries = moka::future::Cache::builder()
            .weigher(move |_: &Key, entry: &Arc<Entry>| {
                weight(entry_bytes(entry), budget, max_entries)
            })
            // With a weigher the capacity is the total weight: bytes.
            .max_capacity(budget)
            // Nothing older than fresh + stale is ever served.
            .time_to_live(policy.ttl + policy.stale)
            .build();
        Self {
            entries,
            policy,
            refreshing: Arc::default(),
            refresh_failures,
        }
    }

    /// Bytes held, by the weights above (moka settles its figures lazily: see `run_pending_tasks`).
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The bound `weighted_size` stays within.
    pub fn max_bytes(&self) -> u64 {
        self.policy.budget().reports
    }

    /// Applies pending inserts and evictions now, so the figures above are settled.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// The cached answer for `key`, or `fetch`'s, with one fetch for any number of concurrent callers.
    pub async fn get<F, Fut>(&self, key: Key, fetch: F) -> Result<Cached<Value>>
    where
        F: FnOnce() -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let existing = self.entries.get(&key).await;
        if let Some(entry) = &existing {
            let age = entry.fetched.elapsed();
            if age < self.policy.ttl {
                return Ok(Cached {
                    value: entry.value.clone(),
                    age,
                    source: Source::Hit,
                });
            }
            if age < self.policy.ttl + self.policy.stale {
                self.refresh_in_background(key, fetch);
                return Ok(Cached {
                    value: entry.value.clone(),
                    age,
                    source: Source::Stale,
                });
            }
            self.entries.invalidate(&key).await;
        }
        let started = Instant::now();
        let fetched = self
            .entries
            .try_get_with(key, async move {
                fetch().await.map(|value| {
                    Arc::new(Entry {
                        value,
                        fetched: Instant::now(),
                    })
                })
            })
            .await;
        match fetched {
            Ok(entry) => {
                // Callers that joined someone else's fetch got data as old as that fetch.
                let age = entry.fetched.elapsed();
                let source = if entry.fetched >= started {
                    Source::Miss
                } else {
                    Source::Hit
                };
                Ok(Cached {
                    value: entry.value.clone(),
                    age,
                    source,
                })
            }
            Err(e) => Err((*e).clone()),
        }
    }

    fn refresh_in_background<F, Fut>(&self, key: Key, fetch: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        let Ok(mut refreshing) = self.refreshing.lock() else {
            return;
        };
        if !refreshing.insert(key.clone()) {
            return;
        }
        drop(refreshing);
        let (entries, refreshing) = (self.entries.clone(), self.refreshing.clone());
        let failures = self.refresh_failures.clone();
        tokio::spawn(async move {
            match fetch().await {
                Ok(value) => {
                    entries
                        .insert(
                            key.clone(),
                            Arc::new(Entry {
                                value,
                                fetched: Instant::now(),
                            }),
                        )
                        .await
                }
                // The stale entry stays until its bound; the next caller tries again.
                Err(e) => {
                    failures.inc();
                    // `Internal`'s display hides its detail from clients; the log needs it.
                    let cause = match &e {
                        super::AnalyticsError::Internal(detail) => detail.clone(),
                        other => other.to_string(),
                    };
                    tracing::warn!(
                        report = key.report(),
                        key = ?key,
                        error = %cause,
                        "background refresh of a cached report failed; the stale answer is served until its bound"
                    )
                }
            }
            if let Ok(mut set) = refreshing.lock() {
                set.remove(&key);
            }
        });
    }
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
