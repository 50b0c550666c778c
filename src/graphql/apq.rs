//! Automatic persisted queries (Apollo's protocol, as an extension of our own so that each
//! refusal carries its code) kept within a byte budget (the APQ share of `CACHE_MAX_BYTES`).
//!
//! async-graphql's own extension and its `LruCacheStorage` bound entries only: 1,024 parsed documents of
//! up to `MAX_BODY_BYTES` each, and a parsed document is often 20-30 times its text
//! (fragments more), so a client registering big queries could hold gigabytes.

use std::fmt::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerResult};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::errors::{coded, with_code};
use crate::analytics::cache::ENTRY_OVERHEAD;
use crate::codes;

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

/// Apollo's `extensions.persistedQuery` (version 1): a hash alone runs the document
/// stored under it; a query with its hash is checked, parsed and stored. Each refusal
/// carries its code from here, where its kind is known (the messages are Apollo's,
/// which clients match on).
impl ExtensionFactory for BoundedApqStorage {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[derive(Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

#[async_graphql::async_trait::async_trait]
impl Extension for BoundedApqStorage {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return next.run(ctx, request).await;
        };
        let invalid = codes::GRAPHQL_VALIDATION_FAILED;
        let persisted: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
            coded(
                "Invalid \"PersistedQuery\" extension configuration.",
                invalid,
            )
        })?;
        if persisted.version != 1 {
            return Err(coded(
                format!(
                    "Only the \"PersistedQuery\" extension of version \"1\" is supported, and the current version is \"{}\".",
                    persisted.version
                ),
                invalid,
            ));
        }
        if request.query.is_empty() {
            let Some(doc) = self.0.get(&persisted.sha256_hash).await else {
                return Err(coded(
                    "PersistedQueryNotFound",
                    codes::PERSISTED_QUERY_NOT_FOUND,
                ));
            };
            request.set_parsed_query(doc);
        } else {
            let hash = hex::encode(Sha256::digest(request.query.as_bytes()));
            if persisted.sha256_hash != hash {
                return Err(coded("provided sha does not match query", invalid));
            }
            let doc = async_graphql::parser::parse_query(&request.query)
                .map_err(|e| with_code(e.into(), invalid))?;
            self.0.insert(hash, doc.clone()).await;
            request.query = String::new();
            request.set_parsed_query(doc);
        }
        next.run(ctx, request).await
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
            store.0.insert(format!("hash{i}"), doc).await;
        }
        store.0.run_pending_tasks().await;
        let kept = store.0.entry_count();
        assert!(store.0.weighted_size() <= BUDGET);
        assert!((2..50).contains(&kept), "{kept} documents kept");
        let mut found = 0;
        for i in 0..50 {
            if store.0.get(&format!("hash{i}")).await.is_some() {
                found += 1;
            }
        }
        assert_eq!(found, kept);
    }
}
