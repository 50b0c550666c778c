//! Query root for members: `user(id)` and a paged `users` list; `User.visits` is batched.

use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entity::users;

use super::connection::{PageInfo, page_size};
use super::errors::{bad_input, gql_err};
use super::loaders::Loaders;
use super::scalars::{DateTime, utc};
use crate::analytics::Analytics;

/// A member of the coworking space.
#[derive(SimpleObject, Clone)]
#[graphql(complex)]
pub struct User {
    id: i32,
    first_name: String,
    last_name: String,
    joined_at: DateTime,
    is_active: bool,
}

impl From<users::Model> for User {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            first_name: u.first_name,
            last_name: u.last_name,
            joined_at: utc(u.joined_at),
            is_active: u.is_active,
        }
    }
}

#[ComplexObject]
impl User {
    /// All tokens of the user, used or not (batched through a DataLoader).
    async fn visits(&self, ctx: &Context<'_>) -> Result<i64> {
        let loaders = ctx.data::<Loaders>()?;
        let n = loaders
            .visit_counts
            .load_one(self.id)
            .await
            .map_err(|e| gql_err((*e).clone()))?;
        Ok(n.unwrap_or(0))
    }
}

pub(crate) async fn load_user(ctx: &Context<'_>, id: i32) -> Result<Option<User>> {
    let loaders = ctx.data::<Loaders>()?;
    let user = loaders
        .users
        .load_one(id)
        .await
        .map_err(|e| gql_err((*e).clone()))?;
    Ok(user.map(User::from))
}

#[derive(SimpleObject)]
pub struct UserEdge {
    cursor: String,
    node: User,
}

#[derive(SimpleObject)]
pub struct UserConnection {
    edges: Vec<UserEdge>,
    page_info: PageInfo,
    total_count: i64,
}

const USER_CURSOR: &str = "u1|";

fn user_cursor(id: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("{USER_CURSOR}{id}"))
}

fn decode_user_cursor(cursor: &str) -> Result<i32> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(USER_CURSOR).and_then(|id| id.parse().ok()))
        .ok_or_else(|| {
            bad_input(
                "after",
                "malformed cursor: pass an endCursor returned by users",
            )
        })
}

#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// One member by id, or null.
    async fn user(&self, ctx: &Context<'_>, id: i32) -> Result<Option<User>> {
        load_user(ctx, id).await
    }

    /// Members by id, paged.
    #[graphql(complexity = "child_complexity * (1 + first.clamp(0, 10_000) as usize / 100)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i64,
        after: Option<String>,
        active_only: Option<bool>,
    ) -> Result<UserConnection> {
        let analytics = ctx.data::<Analytics>()?;
        let first = page_size(first, analytics.limits().max_page_size)?;
        let after = after.as_deref().map(decode_user_cursor).transpose()?;
        let page = analytics
            .users_page(after, first as u64, active_only.unwrap_or(false))
            .await
            .map_err(gql_err)?;
        let edges: Vec<UserEdge> = page
            .rows
            .into_iter()
            .map(|u| UserEdge {
                cursor: user_cursor(u.id),
                node: u.into(),
            })
            .collect();
        Ok(UserConnection {
            page_info: PageInfo {
                has_next_page: page.has_next,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i64::try_from(page.total).unwrap_or(i64::MAX),
        })
    }
}
