//! Report cache: results keyed by query and normalised arguments, fresh for a bound,
//! then served stale while one background refresh runs; concurrent misses share one fetch.
//!
//! Dashboards refresh the same few reports over and over; without this each call
//! is a full aggregation whose cost grows with the table.

use std::collections::HashSet;
use std::future::Future;
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
}

struct Entry {
    value: Value,
    fetched: Instant,
}

pub struct ReportCache {
    entries: moka::future::Cache<Key, Arc<Entry>>,
    policy: CachePolicy,
    refreshing: Arc<Mutex<HashSet<Key>>>,
}

impl ReportCache {
    pub fn new(policy: CachePolicy) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(policy.max_entries)
            // Nothing older than fresh + stale is ever served.
            .time_to_live(policy.ttl + policy.stale)
            .build();
        Self {
            entries,
            policy,
            refreshing: Arc::default(),
        }
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
                    tracing::warn!(error = %e, "background refresh of a cached report failed")
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
