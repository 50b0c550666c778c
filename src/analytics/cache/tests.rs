//! SwrCache's contract: single flight, stale-while-revalidate, the data's age, stale data not kept.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key(u8);

impl CacheKey for Key {
    fn label(&self) -> &'static str {
        "test"
    }
}

struct Failed;

impl Failure for Failed {
    fn log_detail(&self) -> String {
        "failed".to_owned()
    }
}

fn cache(ttl_ms: u64, stale_ms: u64) -> SwrCache<Key, usize> {
    let (ttl, stale) = (
        Duration::from_millis(ttl_ms),
        Duration::from_millis(stale_ms),
    );
    SwrCache::new(ttl, stale, 1 << 20, |_, _| 1, None)
}

/// A fetch that answers how many fetches ran before it, as data `age` old from `source`.
fn counting(
    fetches: &Arc<AtomicUsize>,
    age: Duration,
    source: Source,
) -> impl FnOnce() -> std::future::Ready<std::result::Result<Cached<usize>, Failed>>
+ Clone
+ Send
+ 'static {
    let fetches = fetches.clone();
    move || {
        let value = fetches.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Cached { value, age, source }))
    }
}

async fn get(c: &SwrCache<Key, usize>, fetches: &Arc<AtomicUsize>) -> Cached<usize> {
    let fetch = counting(fetches, Duration::ZERO, Source::Miss);
    c.get(Key(1), fetch)
        .await
        .map_err(|_| "fetch failed")
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch_and_later_calls_hit() {
    let (c, fetches) = (cache(60_000, 0), Arc::new(AtomicUsize::new(0)));
    let counted = fetches.clone();
    let slow = move || async move {
        counted.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, Failed>(Cached::miss(7))
    };
    let calls: Vec<_> = (0..10).map(|_| c.get(Key(1), slow.clone())).collect();
    let answers = futures_util::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|a| a.value == 7))
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one fetch for ten callers"
    );
    let hit = get(&c, &fetches).await;
    assert_eq!((hit.value, hit.source), (7, Source::Hit));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn past_the_bound_the_stale_answer_is_served_while_one_refresh_runs() {
    let (c, fetches) = (cache(30, 60_000), Arc::new(AtomicUsize::new(0)));
    assert_eq!(get(&c, &fetches).await.source, Source::Miss);
    tokio::time::sleep(Duration::from_millis(40)).await;
    let stale = get(&c, &fetches).await;
    assert_eq!((stale.value, stale.source), (0, Source::Stale));
    assert!(stale.age >= Duration::from_millis(40));
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(&c, &fetches).await.value == 0 {
        assert!(Instant::now() < deadline, "never refreshed");
        tokio::task::yield_now().await;
    }
    assert_eq!(get(&c, &fetches).await.source, Source::Hit);
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one background refresh");
}

#[tokio::test]
async fn the_data_age_a_fetch_passes_on_is_kept_and_stale_data_is_served_while_refreshed() {
    let (c, fetches) = (cache(60_000, 0), Arc::new(AtomicUsize::new(0)));
    let old = counting(&fetches, Duration::from_secs(5), Source::Hit);
    let first = c.get(Key(1), old).await.map_err(|_| "failed");
    assert!(first.is_ok_and(|a| a.age >= Duration::from_secs(5) && a.source == Source::Hit));
    assert!(get(&c, &fetches).await.age >= Duration::from_secs(5));

    let stale = counting(&fetches, Duration::from_secs(1), Source::Stale);
    let served = c.get(Key(2), stale.clone()).await.map_err(|_| "failed");
    assert!(served.is_ok_and(|a| a.source == Source::Stale));
    // Kept and served, marked stale, while one refresh runs in the background (it gets
    // stale data again: nothing to keep), not built again for each caller.
    let again = c.get(Key(2), stale).await.map_err(|_| "failed");
    assert!(again.is_ok_and(|a| a.source == Source::Stale && a.value == 1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(fetches.load(Ordering::SeqCst), 3, "one background refresh");
    // A refresh with fresh data replaces it.
    let fresh = counting(&fetches, Duration::ZERO, Source::Miss);
    let served = c.get(Key(2), fresh.clone()).await.map_err(|_| "failed");
    assert!(served.is_ok_and(|a| a.source == Source::Stale && a.value == 1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let now = c.get(Key(2), fresh).await.map_err(|_| "failed");
    assert!(
        now.is_ok_and(|a| a.source == Source::Hit && a.value == 3),
        "refreshed"
    );
}

/// Inside a background refresh (of an answer built on this entry), a stale entry is not
/// served: the refresh waits for fresh data, so what it builds can be kept.
#[tokio::test]
async fn a_background_refresh_reads_fresh_data_under_it() {
    let (upper, lower) = (cache(60_000, 60_000), cache(1, 60_000));
    let fetches = Arc::new(AtomicUsize::new(0));
    let first = lower
        .get(Key(1), counting(&fetches, Duration::ZERO, Source::Miss))
        .await;
    assert!(first.is_ok_and(|a| a.value == 0));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The upper answer is stale (dated 61 s), so the next lookup refreshes it in the
    // background; that refresh asks the lower cache, whose entry is stale by now.
    let (lower2, f2) = (lower.clone(), fetches.clone());
    let rebuild = move || async move {
        let below = lower2
            .get(Key(1), counting(&f2, Duration::ZERO, Source::Miss))
            .await
            .map_err(|_| Failed)?;
        Ok::<_, Failed>(below)
    };
    upper
        .put(
            Key(1),
            Cached {
                value: 0,
                age: Duration::from_secs(61),
                source: Source::Miss,
            },
        )
        .await;
    let served = upper
        .get(Key(1), rebuild.clone())
        .await
        .map_err(|_| "failed");
    assert!(served.is_ok_and(|a| a.source == Source::Stale));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let now = upper.get(Key(1), rebuild).await.map_err(|_| "failed");
    assert!(
        now.is_ok_and(|a| a.source == Source::Hit && a.value == 1),
        "the refresh read the lower entry afresh and was kept"
    );
}
