//! Pages of visits per user. Without a date range a page is read from the per-user rollup
//! (`gw_user_visits`) by keyset on an index of the order, so it costs O(page), and
//! `totalCount` is one count over the rollup, only when asked for. With a range the
//! counts depend on it: the rows of the range are aggregated (an index range on
//! `created_at`) and paged in memory through the report cache.

use std::mem::size_of;
use std::sync::Arc;

use chrono::NaiveDateTime;
use sea_orm::sea_query::{
    Alias, Asterisk, Condition, Expr, ExprTrait, Func, NullOrdering, Order, Query, SelectStatement,
};

use super::Analytics;
use super::cache::Cached;
use super::error::{AnalyticsError, Result};
use super::reports::Report;
use super::visits::{Cursor, Page, UserVisits, VisitsFilter, VisitsOrder, page};
use crate::db::dialect::Dialect;

/// The table alias the paging queries give `gw_user_visits`.
const R: &str = "r";

fn col(name: &str) -> Expr {
    Expr::col((R, Alias::new(name)))
}

/// One page's question: the filter, the order, where the last page ended, the size, and
/// whether the total is wanted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub filter: VisitsFilter,
    pub order: VisitsOrder,
    pub after: Option<UserVisits>,
    pub first: usize,
    pub with_total: bool,
}

impl Report for Page {
    type Key = PageKey;
    const NAME: &'static str = "visits_page";
    fn heap_bytes(&self) -> usize {
        self.rows.capacity() * size_of::<UserVisits>()
    }
}

/// The filter's conditions on the rollup (it holds only users with tokens).
fn filter_condition(f: &VisitsFilter) -> Condition {
    Condition::all()
        .add_option(f.active_only.then(|| col("is_active").eq(true)))
        .add_option(f.min_visits.map(|min| col("tokens").gte(min)))
}

/// Rows that sort strictly after `key` in `order` (each order breaks ties by user id).
/// The leading column's bound comes first so the index range starts at the cursor.
fn after_condition(dialect: Dialect, order: VisitsOrder, key: &UserVisits) -> Condition {
    let id_after = || col("user_id").gt(key.user_id);
    let ts = |t: NaiveDateTime| Expr::val(dialect.rollup_timestamp(t));
    match order {
        VisitsOrder::UserIdAsc => Condition::all().add(id_after()),
        VisitsOrder::VisitsDesc => Condition::all().add(col("tokens").lte(key.visits)).add(
            Condition::any()
                .add(col("tokens").lt(key.visits))
                .add(id_after()),
        ),
        // Users who never checked in come last, by user id.
        VisitsOrder::LastVisitDesc => match key.last_visit_at {
            Some(last) => Condition::any()
                .add(
                    Condition::all().add(col("last_used_at").lte(ts(last))).add(
                        Condition::any()
                            .add(col("last_used_at").lt(ts(last)))
                            .add(id_after()),
                    ),
                )
                .add(col("last_used_at").is_null()),
            None => Condition::all()
                .add(col("last_used_at").is_null())
                .add(id_after()),
        },
        VisitsOrder::JoinedAtAsc => Condition::all()
            .add(col("joined_at").gte(ts(key.joined_at)))
            .add(
                Condition::any()
                    .add(col("joined_at").gt(ts(key.joined_at)))
                    .add(id_after()),
            ),
    }
}

fn order_by(query: &mut SelectStatement, order: VisitsOrder) {
    match order {
        VisitsOrder::UserIdAsc => {}
        VisitsOrder::VisitsDesc => {
            query.order_by_expr(col("tokens"), Order::Desc);
        }
        VisitsOrder::LastVisitDesc => {
            query.order_by_expr_with_nulls(col("last_used_at"), Order::Desc, NullOrdering::Last);
        }
        VisitsOrder::JoinedAtAsc => {
            query.order_by_expr(col("joined_at"), Order::Asc);
        }
    }
    query.order_by_expr(col("user_id"), Order::Asc);
}

fn rollup_query() -> SelectStatement {
    let mut query = Query::select();
    query.from_as(Alias::new("gw_user_visits"), R);
    query
}

impl Analytics {
    /// Up to `first` users after `after` in `order`, with whether more follow and precede,
    /// and the total when `with_total`; through the report cache.
    pub async fn visits_page(
        &self,
        f: &VisitsFilter,
        order: VisitsOrder,
        after: Option<&Cursor>,
        first: usize,
        with_total: bool,
    ) -> Result<Cached<Arc<Page>>> {
        if after.is_some_and(|c| c.order != order) {
            return Err(AnalyticsError::bad_input(
                "after",
                "this cursor was issued for a different orderBy; restart paging without after",
            ));
        }
        if f.from.is_some() || f.to.is_some() {
            let rows = self.visits_per_user(f, order).await?;
            let answer = page(&rows.value, order, after, first)?;
            return Ok(rows.map(|_| Arc::new(answer)));
        }
        let key = PageKey {
            filter: f.clone(),
            order,
            after: after.map(|c| c.key.clone()),
            first,
            with_total,
        };
        let (this, question) = (self.clone(), key.clone());
        let fetch = move || async move { this.fetch_page(&question).await };
        self.cached(key, fetch).await
    }

    /// One page from the rollup, current as of the fold it starts with.
    async fn fetch_page(&self, k: &PageKey) -> Result<Page> {
        self.fold_rollups().await?;
        let mut query = rollup_query();
        query
            .expr_as(col("user_id"), "user_id")
            .expr_as(col("joined_at"), "joined_at")
            .expr_as(col("tokens"), "visits")
            .expr_as(col("used"), "check_ins")
            .expr_as(col("last_used_at"), "last_visit_at")
            .cond_where(
                filter_condition(&k.filter).add_option(
                    k.after
                        .as_ref()
                        .map(|key| after_condition(self.dialect, k.order, key)),
                ),
            )
            .limit(u64::try_from(k.first).unwrap_or(u64::MAX).saturating_add(1));
        order_by(&mut query, k.order);
        let rows = self
            .all("visits_page_rollup", self.dialect.build(&query))
            .await?;
        let mut rows = rows
            .iter()
            .map(UserVisits::from_row)
            .collect::<Result<Vec<_>>>()?;
        let has_next = rows.len() > k.first;
        rows.truncate(k.first);
        let has_previous = match &k.after {
            None => false,
            Some(key) => self.any_before(k, key).await?,
        };
        let total = if k.with_total {
            Some(self.rollup_count(&k.filter).await?)
        } else {
            None
        };
        Ok(Page {
            rows,
            has_next,
            has_previous,
            total,
        })
    }

    /// Whether a row of the filter sorts at or before `key` (so the page has a predecessor).
    async fn any_before(&self, k: &PageKey, key: &UserVisits) -> Result<bool> {
        let mut query = rollup_query();
        query
            .expr(Expr::val(1))
            .cond_where(
                filter_condition(&k.filter).add(after_condition(self.dialect, k.order, key).not()),
            )
            .limit(1);
        let row = self
            .one("visits_page_rollup", self.dialect.build(&query))
            .await?;
        Ok(row.is_some())
    }

    /// Users with tokens matching the filter, from the rollup.
    async fn rollup_count(&self, f: &VisitsFilter) -> Result<usize> {
        let mut query = rollup_query();
        query
            .expr_as(Func::count(Expr::col(Asterisk)), "n")
            .cond_where(filter_condition(f));
        let row = self
            .one("visits_count_rollup", self.dialect.build(&query))
            .await?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

/// One line of the legacy user-visits report: a user with tokens, read from the rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitLine {
    pub user_id: i32,
    pub joined_at: NaiveDateTime,
    /// All tokens of the user, used or not (the legacy definition).
    pub visits: i64,
}

impl Analytics {
    /// The smallest and largest user id in the per-user rollup (`None` when no user has a
    /// token), after folding its log, so ranges read next are current as of this call.
    pub async fn visit_line_bounds(&self) -> Result<Option<(i32, i32)>> {
        self.fold_rollups().await?;
        let mut query = rollup_query();
        query
            .expr_as(Func::min(col("user_id")), "lo")
            .expr_as(Func::max(col("user_id")), "hi");
        let Some(row) = self
            .one("visit_lines_rollup", self.dialect.build(&query))
            .await?
        else {
            return Ok(None);
        };
        let lo: Option<i32> = row.try_get_by_index(0)?;
        let hi: Option<i32> = row.try_get_by_index(1)?;
        Ok(lo.zip(hi))
    }

    /// Up to `limit` users with tokens whose id is above `after` and at most `through`, by
    /// id: a range of the rollup's primary key, uncached (the legacy body built from it is
    /// cached whole) and without a fold (see [`Self::visit_line_bounds`]).
    pub async fn visit_lines(
        &self,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<Vec<VisitLine>> {
        const COLUMNS: [&str; 3] = ["user_id", "joined_at", "visits"];
        let mut query = rollup_query();
        query
            .expr_as(col("user_id"), COLUMNS[0])
            .expr_as(col("joined_at"), COLUMNS[1])
            .expr_as(col("tokens"), COLUMNS[2])
            .and_where(col("user_id").gt(after))
            .and_where(col("user_id").lte(through))
            .order_by_expr(col("user_id"), Order::Asc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX));
        let stmt = self.dialect.build(&query);
        let Some(as_arrays) = self.dialect.columns_as_arrays(&stmt, &COLUMNS) else {
            let rows = self.all("visit_lines_rollup", stmt).await?;
            return rows
                .iter()
                .map(|row| {
                    Ok(VisitLine {
                        user_id: row.try_get_by_index(0)?,
                        joined_at: row.try_get_by_index(1)?,
                        visits: row.try_get_by_index(2)?,
                    })
                })
                .collect();
        };
        // One row; its arrays are NULL when the range is empty.
        let Some(row) = self.one("visit_lines_rollup", as_arrays).await? else {
            return Ok(Vec::new());
        };
        let ids: Option<Vec<i32>> = row.try_get_by_index(0)?;
        let joined: Option<Vec<NaiveDateTime>> = row.try_get_by_index(1)?;
        let visits: Option<Vec<i64>> = row.try_get_by_index(2)?;
        let (ids, joined, visits) = (
            ids.unwrap_or_default(),
            joined.unwrap_or_default(),
            visits.unwrap_or_default(),
        );
        if ids.len() != joined.len() || ids.len() != visits.len() {
            return Err(AnalyticsError::Internal(format!(
                "visit lines: arrays of {}, {} and {} values",
                ids.len(),
                joined.len(),
                visits.len()
            )));
        }
        let mut lines: Vec<VisitLine> = ids
            .into_iter()
            .zip(joined)
            .zip(visits)
            .map(|((user_id, joined_at), visits)| VisitLine {
                user_id,
                joined_at,
                visits,
            })
            .collect();
        if !lines.is_sorted_by_key(|l| l.user_id) {
            lines.sort_unstable_by_key(|l| l.user_id);
        }
        Ok(lines)
    }
}
