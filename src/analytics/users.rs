//! Users by id (for the DataLoaders), keyset pages of users, and visit counts per user.

use std::collections::HashMap;

use entity::{tokens, users};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Analytics;
use super::error::Result;

pub struct UsersPage {
    pub rows: Vec<users::Model>,
    pub has_next: bool,
    pub total: u64,
}

impl Analytics {
    /// At most one statement for any number of ids; users read within the freshness
    /// bound come from the cache (a visits page shows the same members again and again).
    pub async fn users_by_ids(&self, ids: &[i32]) -> Result<HashMap<i32, users::Model>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match &self.user_cache {
                Some(cache) => match cache.get(id).await {
                    Some(user) => {
                        found.insert(*id, user);
                    }
                    None => missing.push(*id),
                },
                None => missing.push(*id),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let query = users::Entity::find()
            .filter(users::Column::Id.is_in(missing))
            .all(&self.db);
        let rows = crate::db::named("users_by_ids", query).await?;
        for user in rows {
            if let Some(cache) = &self.user_cache {
                cache.insert(user.id, user.clone()).await;
            }
            found.insert(user.id, user);
        }
        Ok(found)
    }

    /// All tokens per user (the legacy `visits`), one statement for any number of ids.
    pub async fn visit_counts(&self, ids: &[i32]) -> Result<HashMap<i32, i64>> {
        let query = tokens::Entity::find()
            .select_only()
            .column(tokens::Column::UserId)
            .column_as(Expr::col(tokens::Column::Id).count(), "visits")
            .filter(tokens::Column::UserId.is_in(ids.iter().copied()))
            .group_by(tokens::Column::UserId)
            .into_tuple::<(i32, i64)>()
            .all(&self.db);
        let rows = crate::db::named("visit_counts", query).await?;
        Ok(rows.into_iter().collect())
    }

    pub async fn users_page(
        &self,
        after: Option<i32>,
        first: u64,
        active_only: bool,
    ) -> Result<UsersPage> {
        crate::db::named(
            "users_page",
            self.users_page_inner(after, first, active_only),
        )
        .await
    }

    async fn users_page_inner(
        &self,
        after: Option<i32>,
        first: u64,
        active_only: bool,
    ) -> Result<UsersPage> {
        let mut base = users::Entity::find();
        if active_only {
            base = base.filter(users::Column::IsActive.eq(true));
        }
        let total = base.clone().count(&self.db).await?;
        let mut query = base
            .order_by_asc(users::Column::Id)
            .limit(first.saturating_add(1));
        if let Some(after) = after {
            query = query.filter(users::Column::Id.gt(after));
        }
        let mut rows = query.all(&self.db).await?;
        let has_next = rows.len() as u64 > first;
        rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
        Ok(UsersPage {
            rows,
            has_next,
            total,
        })
    }
}
