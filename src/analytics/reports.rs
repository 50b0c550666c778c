//! The report cache: one [`SwrCache`] for every report type, so they share the reports'
//! bytes and `CACHE_MAX_ENTRIES`; each report type names its own key ([`Report`]).

use std::any::{Any, TypeId};
use std::fmt::{self, Debug};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem::size_of_val;
use std::sync::Arc;

use super::cache::{
    ARC_HEADER, CacheCounters, CacheKey, CachePolicy, Cached, ENTRY_OVERHEAD, SwrCache, entry_size,
    weight,
};
use super::error::{AnalyticsError, Result};

/// An answer the report cache holds, keyed by its own key type.
pub trait Report: Send + Sync + 'static {
    /// What identifies one answer: the normalised arguments.
    type Key: Clone + Eq + Hash + Debug + Send + Sync + 'static;
    /// The report's name in logs.
    const NAME: &'static str;
    /// Heap bytes the answer holds besides itself (a vector's whole capacity).
    fn heap_bytes(&self) -> usize;
}

/// A report's key with the report's type, so equal keys of two reports never meet.
struct Typed<R: Report>(R::Key, PhantomData<fn() -> R>);

/// What the shared cache needs of a typed key.
trait AnyKey: Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn eq_any(&self, other: &dyn AnyKey) -> bool;
    fn hash_any(&self, state: &mut dyn Hasher);
    fn bytes(&self) -> usize;
}

impl<R: Report> Debug for Typed<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: Report> AnyKey for Typed<R> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn eq_any(&self, other: &dyn AnyKey) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|o| o.0 == self.0)
    }
    fn hash_any(&self, mut state: &mut dyn Hasher) {
        self.0.hash(&mut state);
    }
    fn bytes(&self) -> usize {
        size_of_val(self)
    }
}

/// A key of any report.
#[derive(Clone)]
pub struct ReportKey {
    report: &'static str,
    answer: TypeId,
    key: Arc<dyn AnyKey>,
}

impl ReportKey {
    fn new<R: Report>(key: R::Key) -> Self {
        Self {
            report: R::NAME,
            answer: TypeId::of::<R>(),
            key: Arc::new(Typed::<R>(key, PhantomData)),
        }
    }
}

impl PartialEq for ReportKey {
    fn eq(&self, other: &Self) -> bool {
        self.answer == other.answer && self.key.eq_any(other.key.as_ref())
    }
}

impl Eq for ReportKey {}

impl Hash for ReportKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.answer.hash(state);
        self.key.hash_any(state);
    }
}

impl Debug for ReportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key.fmt(f)
    }
}

impl CacheKey for ReportKey {
    fn label(&self) -> &'static str {
        self.report
    }
}

/// An answer of any report, with its heap bytes for the weigher.
#[derive(Clone)]
pub struct ReportValue {
    answer: Arc<dyn Any + Send + Sync>,
    heap_bytes: usize,
}

impl ReportValue {
    fn new<R: Report>(answer: R) -> Self {
        let heap_bytes = ARC_HEADER + size_of_val(&answer) + answer.heap_bytes();
        Self {
            answer: Arc::new(answer),
            heap_bytes,
        }
    }
}

pub type ReportCache = SwrCache<ReportKey, ReportValue>;

/// The reports' share of `CACHE_MAX_BYTES`; an entry weighs at least that share over
/// `CACHE_MAX_ENTRIES`, so both bounds hold.
pub fn report_cache(policy: &CachePolicy, counters: CacheCounters) -> ReportCache {
    let (budget, max_entries) = (policy.budget().reports, policy.max_entries);
    SwrCache::new(
        policy.ttl,
        policy.stale,
        budget,
        move |key: &ReportKey, value: &ReportValue| {
            let key_bytes = size_of_val(key) + ARC_HEADER + key.key.bytes();
            let bytes = key_bytes
                + ARC_HEADER
                + entry_size::<ReportValue>()
                + value.heap_bytes
                + ENTRY_OVERHEAD;
            weight(bytes, budget, max_entries)
        },
        Some(counters),
    )
}

tokio::task_local! {
    /// Set while a request that asked to revalidate (`Cache-Control: no-cache`) runs.
    static REVALIDATE: ();
}

/// Runs `f` so that every report it reads is computed afresh (and stored for the next
/// caller) instead of served from the cache: a client's `Cache-Control: no-cache`.
pub async fn revalidating<F: Future>(f: F) -> F::Output {
    REVALIDATE.scope((), f).await
}

/// Whether the running request asked to revalidate (see [`revalidating`]).
pub fn revalidation_requested() -> bool {
    REVALIDATE.try_with(|_| ()).is_ok()
}

/// `fetch`'s answer through `cache` (or straight, when the cache is off).
pub async fn cached<R, F, Fut>(
    cache: Option<&ReportCache>,
    key: R::Key,
    fetch: F,
) -> Result<Cached<Arc<R>>>
where
    R: Report,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let Some(cache) = cache else {
        return Ok(Cached::miss(Arc::new(fetch().await?)));
    };
    let cached = if revalidation_requested() {
        let fresh = Cached::miss(ReportValue::new(fetch().await?));
        cache.put(ReportKey::new::<R>(key), fresh.clone()).await;
        fresh
    } else {
        let fetch = move || async move { fetch().await.map(|r| Cached::miss(ReportValue::new(r))) };
        cache
            .get(ReportKey::new::<R>(key), fetch)
            .await
            .map_err(|e| (*e).clone())?
    };
    let answer = cached.value.answer.clone();
    // The key holds `R`'s type, and only this function stores under it: always `R`.
    match answer.downcast::<R>() {
        Ok(answer) => Ok(cached.map(|_| answer)),
        Err(_) => Err(AnalyticsError::Internal(format!(
            "the report cache held another type under a {} key",
            R::NAME
        ))),
    }
}
