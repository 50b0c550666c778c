//! Users by id (for the DataLoaders), keyset pages of users, and visit counts per user.

use std::collections::HashMap;

use entity::{tokens, users};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Analytics, Result};

pub struct UsersPage {
    pub rows: Vec<users::Model>,
    pub has_next: bool,
    pub total: u64,
}

impl Analytics {
    /// One statement for any number of ids.
    pub async fn users_by_ids(&self, ids: &[i32]) -> Result<HashMap<i32, users::Model>> {
        let query = users::Entity::find()
            .filter(users::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db);
        let rows = crate::db::named("users_by_ids", query).await?;
        Ok(rows.into_iter().map(|u| (u.id, u)).collect())
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
