//! DataLoaders: users and visit counts by user id, batched into one statement per tick.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
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

/// Shared by all requests: no cache (data changes), only batching.
pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub visit_counts: DataLoader<VisitCountLoader>,
}

impl Loaders {
    pub fn new(analytics: Analytics) -> Self {
        Self {
            users: DataLoader::new(UserLoader(analytics.clone()), tokio::spawn),
            visit_counts: DataLoader::new(VisitCountLoader(analytics), tokio::spawn),
        }
    }
}
