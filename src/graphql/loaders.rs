//! DataLoaders: users and visit counts by user id, batched into one statement per tick.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::users;

use crate::analytics::{Analytics, AnalyticsError};

pub struct UserLoader(Analytics);
pub struct VisitCountLoader(Analytics);

impl Loader<i32> for UserLoader {
    type Value = users::Model;
    type Error = Arc<AnalyticsError>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Self::Value>, Self::Error> {
        self.0.users_by_ids(keys).await.map_err(Arc::new)
    }
}

impl Loader<i32> for VisitCountLoader {
    type Value = i64;
    type Error = Arc<AnalyticsError>;

    async fn load(&self, keys: &[i32]) -> Result<HashMap<i32, Self::Value>, Self::Error> {
        self.0.visit_counts(keys).await.map_err(Arc::new)
    }
}

/// Made fresh for each request (see `PerRequestLoaders`): batching plus a cache that
/// lives as long as the request, so a prefetch serves every later `load_one`.
pub struct Loaders {
    pub users: DataLoader<UserLoader, HashMapCache>,
    pub visit_counts: DataLoader<VisitCountLoader, HashMapCache>,
}

impl Loaders {
    pub fn new(analytics: Analytics) -> Self {
        Self {
            users: DataLoader::with_cache(
                UserLoader(analytics.clone()),
                tokio::spawn,
                HashMapCache::default(),
            ),
            visit_counts: DataLoader::with_cache(
                VisitCountLoader(analytics),
                tokio::spawn,
                HashMapCache::default(),
            ),
        }
    }
}
