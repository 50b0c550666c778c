//! Automatic persisted queries kept within a byte budget (the APQ share of `CACHE_MAX_BYTES`).
//!
//! async-graphql's `LruCacheStorage` bounds entries only: 1,024 parsed documents of
//! up to `MAX_BODY_BYTES` each, and a parsed document is often 20-30 times its text
//! (fragments more), so a client registering big queries could hold gigabytes.

use std::fmt::{self, Write};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_graphql::extensions::apollo_persisted_queries::CacheStorage;
use async_graphql::parser::types::ExecutableDocument;

use crate::analytics::cache::ENTRY_OVERHEAD;

/// A client re-registers a query it finds missing, so an idle one may go.
const IDLE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct BoundedApqStorage(moka::future::Cache<String, ExecutableDocument>);

impl BoundedApqStorage {
    pub fn new(max_bytes: u64) -> Self {
        Self(
            moka::future::Cache::builder()
                .weigher(|hash: &String, doc: &ExecutableDocument| {
                    let bytes = hash.capacity() + document_bytes(doc) + ENTRY_OVERHEAD;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(max_bytes)
                .time_to_idle(IDLE)
                .build(),
        )
    }
}

/// Heap bytes of a parsed document, estimated as twice the length of its `Debug`
/// text: the AST has no size method, and over queries from `{ summary { users } }`
/// to 200 fragments or a 100 KB string argument the heap measured between 0.9 and
/// 1.9 times that length. Counted without building the text.
fn document_bytes(doc: &ExecutableDocument) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = write!(count, "{doc:?}");
    count.0.saturating_mul(2)
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// The trait is declared with `#[async_trait]`; these are the signatures it expands to.
impl CacheStorage for BoundedApqStorage {
    fn get<'life0, 'async_trait>(
        &'life0 self,
        key: String,
    ) -> Boxed<'async_trait, Option<ExecutableDocument>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.0.get(&key).await })
    }

    fn set<'life0, 'async_trait>(
        &'life0 self,
        key: String,
        query: ExecutableDocument,
    ) -> Boxed<'async_trait, ()>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move { self.0.insert(key, query).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn documents_are_weighed_and_evicted_by_bytes() {
        const BUDGET: u64 = 1024 * 1024;
        let store = BoundedApqStorage::new(BUDGET);
        // ~3 KB of text, over 200 KB parsed: a handful fit in 1 MiB, not 1,024.
        let big = |i: usize| {
            let fields: String = (0..400).map(|f| format!(" f{f}_{i}")).collect();
            format!("{{ summary {{{fields} }} }}")
        };
        for i in 0..50 {
            let doc = async_graphql::parser::parse_query(big(i)).expect("query parses");
            store.set(format!("hash{i}"), doc).await;
        }
        store.0.run_pending_tasks().await;
        let kept = store.0.entry_count();
        assert!(store.0.weighted_size() <= BUDGET);
        assert!((2..50).contains(&kept), "{kept} documents kept");
        let mut found = 0;
        for i in 0..50 {
            if store.get(format!("hash{i}")).await.is_some() {
                found += 1;
            }
        }
        assert_eq!(found, kept);
    }
}
