//! Query root for visits per user: a Relay-style connection with keyset cursors.

use async_graphql::{ComplexObject, Context, Enum, Object, Result, SimpleObject};

use super::connection::{PageInfo, page_size, total_count};
use super::errors::{gql_err, record_freshness};
use super::scalars::{Date, DateTime, utc};
use super::users::User;
use crate::analytics::visits::{self, Cursor, VisitsFilter};
use crate::analytics::{Analytics, time};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum VisitsOrder {
    UserIdAsc,
    /// Most visits first.
    VisitsDesc,
    /// Most recent check-in first; users who never checked in last.
    LastVisitDesc,
    JoinedAtAsc,
}

impl From<VisitsOrder> for visits::VisitsOrder {
    fn from(o: VisitsOrder) -> Self {
        match o {
            VisitsOrder::UserIdAsc => Self::UserIdAsc,
            VisitsOrder::VisitsDesc => Self::VisitsDesc,
            VisitsOrder::LastVisitDesc => Self::LastVisitDesc,
            VisitsOrder::JoinedAtAsc => Self::JoinedAtAsc,
        }
    }
}

/// One user's visits (only users with at least one token appear).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UserVisits {
    user_id: i32,
    /// All tokens of the user, used or not (the legacy definition).
    visits: i64,
    /// Used tokens.
    check_ins: i64,
    last_visit_at: Option<DateTime>,
    joined_at: DateTime,
}

#[ComplexObject]
impl UserVisits {
    /// The user, batched through a DataLoader.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        super::users::load_user(ctx, self.user_id).await
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct UserVisitsEdge {
    node: UserVisits,
    /// The row's sort key, encoded only if `cursor` is selected.
    #[graphql(skip)]
    key: Cursor,
}

#[ComplexObject]
impl UserVisitsEdge {
    async fn cursor(&self) -> String {
        self.key.encode()
    }
}

#[derive(SimpleObject)]
pub struct UserVisitsConnection {
    edges: Vec<UserVisitsEdge>,
    page_info: PageInfo,
    /// Users matching the filters, across all pages.
    total_count: i64,
}

#[derive(Default)]
pub struct VisitsQuery;

#[Object]
impl VisitsQuery {
    /// Visits per user, paged. `from`/`to` (inclusive local dates) bound the tokens counted.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "child_complexity * (1 + first.clamp(0, 10_000) as usize / 100)")]
    async fn visits_per_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i64,
        after: Option<String>,
        #[graphql(default_with = "VisitsOrder::UserIdAsc")] order_by: VisitsOrder,
        min_visits: Option<i64>,
        active_only: Option<bool>,
        from: Option<Date>,
        to: Option<Date>,
        #[graphql(default_with = "String::from(\"UTC\")")] timezone: String,
    ) -> Result<UserVisitsConnection> {
        let analytics = ctx.data::<Analytics>()?;
        let first = page_size(first, analytics.limits().max_page_size)?;
        let order: visits::VisitsOrder = order_by.into();
        let after = after
            .as_deref()
            .map(Cursor::decode)
            .transpose()
            .map_err(gql_err)?;
        let filter = VisitsFilter {
            min_visits,
            active_only: active_only.unwrap_or(false),
            from: Date::optional(from, "from")?,
            to: Date::optional(to, "to")?,
            timezone: time::parse_timezone(&timezone).map_err(gql_err)?,
        };
        // The total costs a count: only when the selection asks for it.
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let page = analytics
            .visits_page(&filter, order, after.as_ref(), first, with_total)
            .await
            .map_err(gql_err)?;
        record_freshness(ctx, &page);
        let page = page.value;
        // Look ahead: when the page selects `user`, fetch all its users in one statement
        // now; each node's `user` is then served from the request's loader cache.
        if ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("user")
            .exists()
        {
            // Straight to analytics (its user cache answers at once when warm), then
            // primed into the request's loader: no batching delay on the hot path.
            let ids: Vec<i32> = page.rows.iter().map(|r| r.user_id).collect();
            let users = analytics.users_by_ids(&ids).await.map_err(gql_err)?;
            ctx.data::<super::loaders::Loaders>()?
                .users
                .feed_many(users)
                .await;
        }
        let cursor_of = |r: &visits::UserVisits| {
            Cursor {
                order,
                key: r.clone(),
            }
            .encode()
        };
        let ends = [page.rows.first(), page.rows.last()].map(|r| r.map(cursor_of));
        let edges: Vec<UserVisitsEdge> = page
            .rows
            .iter()
            .map(|r| UserVisitsEdge {
                key: Cursor {
                    order,
                    key: r.clone(),
                },
                node: UserVisits {
                    user_id: r.user_id,
                    visits: r.visits,
                    check_ins: r.check_ins,
                    last_visit_at: r.last_visit_at.map(utc),
                    joined_at: utc(r.joined_at),
                },
            })
            .collect();
        let [start, end] = ends;
        Ok(UserVisitsConnection {
            page_info: PageInfo::new(
                start.iter().chain(end.iter()),
                page.has_next,
                page.has_previous,
            ),
            edges,
            total_count: total_count(page.total.unwrap_or(0)),
        })
    }
}
