//! Visits per user (the legacy user-visits report), filtered, ordered and paged by keyset cursors.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use entity::{tokens, users};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, JoinType, Order, Query};

use std::mem::size_of;
use std::sync::Arc;

use super::Analytics;
use super::cache::Cached;
use super::error::{AnalyticsError, Result};
use super::reports::Report;
use super::time;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisitsFilter {
    pub min_visits: Option<i64>,
    pub active_only: bool,
    /// Inclusive local dates bounding `created_at`.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub timezone: Tz,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserVisits {
    pub user_id: i32,
    pub joined_at: NaiveDateTime,
    /// All tokens of the user, used or not (the legacy definition).
    pub visits: i64,
    /// Used tokens.
    pub check_ins: i64,
    pub last_visit_at: Option<NaiveDateTime>,
}

impl UserVisits {
    /// A row selected with the columns `user_id`, `joined_at`, `visits`, `check_ins`, `last_visit_at`.
    pub(super) fn from_row(row: &sea_orm::QueryResult) -> Result<Self> {
        Ok(Self {
            user_id: row.try_get("", "user_id")?,
            joined_at: row.try_get("", "joined_at")?,
            visits: row.try_get("", "visits")?,
            check_ins: row.try_get("", "check_ins")?,
            last_visit_at: row.try_get("", "last_visit_at")?,
        })
    }
}

impl Report for Vec<UserVisits> {
    /// The filter and the order the rows are sorted by.
    type Key = (VisitsFilter, VisitsOrder);
    const NAME: &'static str = "visits";
    /// The vector's whole capacity (rows are plain data, no strings).
    fn heap_bytes(&self) -> usize {
        self.capacity() * size_of::<UserVisits>()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VisitsOrder {
    UserIdAsc,
    VisitsDesc,
    /// Users who never checked in come last.
    LastVisitDesc,
    JoinedAtAsc,
}

impl VisitsOrder {
    /// Total order: every order breaks ties by user id.
    pub fn compare(self, a: &UserVisits, b: &UserVisits) -> Ordering {
        let primary = match self {
            Self::UserIdAsc => Ordering::Equal,
            Self::VisitsDesc => b.visits.cmp(&a.visits),
            Self::LastVisitDesc => match (a.last_visit_at, b.last_visit_at) {
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            Self::JoinedAtAsc => a.joined_at.cmp(&b.joined_at),
        };
        primary.then(a.user_id.cmp(&b.user_id))
    }

    fn code(self) -> &'static str {
        match self {
            Self::UserIdAsc => "id",
            Self::VisitsDesc => "visits",
            Self::LastVisitDesc => "last",
            Self::JoinedAtAsc => "joined",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            Self::UserIdAsc,
            Self::VisitsDesc,
            Self::LastVisitDesc,
            Self::JoinedAtAsc,
        ]
        .into_iter()
        .find(|o| o.code() == code)
    }
}

/// Where a page ends: the sort key of its last row, tied to one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub order: VisitsOrder,
    pub key: UserVisits,
}

const CURSOR_VERSION: &str = "uv1";

impl Cursor {
    /// Opaque and stable: the same row under the same order always gives the same cursor.
    pub fn encode(&self) -> String {
        let k = &self.key;
        let micros = |t: NaiveDateTime| t.and_utc().timestamp_micros().to_string();
        let raw = format!(
            "{CURSOR_VERSION}|{}|{}|{}|{}|{}",
            self.order.code(),
            k.user_id,
            k.visits,
            k.last_visit_at.map_or_else(|| "-".to_owned(), micros),
            micros(k.joined_at)
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: &str) -> Result<Self> {
        let bad = || {
            AnalyticsError::bad_input(
                "after",
                format!(
                    "malformed cursor '{}': pass an endCursor or edge cursor returned by this query",
                    time::truncate(cursor, 64)
                ),
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split('|').collect();
        let [version, order, user_id, visits, last, joined] = parts.as_slice() else {
            return Err(bad());
        };
        if *version != CURSOR_VERSION {
            return Err(bad());
        }
        let time = |s: &str| {
            s.parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_micros)
                .map(|t| t.naive_utc())
        };
        let last_visit_at = if *last == "-" {
            None
        } else {
            Some(time(last).ok_or_else(bad)?)
        };
        Ok(Self {
            order: VisitsOrder::from_code(order).ok_or_else(bad)?,
            key: UserVisits {
                user_id: user_id.parse().map_err(|_| bad())?,
                visits: visits.parse().map_err(|_| bad())?,
                check_ins: 0,
                last_visit_at,
                joined_at: time(joined).ok_or_else(bad)?,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub rows: Vec<UserVisits>,
    pub has_next: bool,
    pub has_previous: bool,
    /// Rows across all pages (`None` when it was not asked for).
    pub total: Option<usize>,
}

/// Up to `first` rows after `after` from `rows`, which must already be sorted by `order`
/// (this does not sort); a cursor issued for another order is bad input.
pub fn page(
    rows: &[UserVisits],
    order: VisitsOrder,
    after: Option<&Cursor>,
    first: usize,
) -> Result<Page> {
    let total = rows.len();
    let skip = match after {
        None => 0,
        Some(cursor) if cursor.order != order => {
            return Err(AnalyticsError::bad_input(
                "after",
                "this cursor was issued for a different orderBy; restart paging without after",
            ));
        }
        Some(cursor) => {
            rows.partition_point(|r| order.compare(r, &cursor.key) != Ordering::Greater)
        }
    };
    let end = skip.saturating_add(first).min(total);
    let has_next = end < total;
    Ok(Page {
        rows: rows[skip.min(end)..end].to_vec(),
        has_next,
        has_previous: skip > 0,
        total: Some(total),
    })
}

impl Analytics {
    /// Every user with tokens matching `f` (range, `active_only`, `min_visits`), sorted by
    /// `order`, through the report cache (sorted once per cached answer, not once per page).
    pub async fn visits_per_user(
        &self,
        f: &VisitsFilter,
        order: VisitsOrder,
    ) -> Result<Cached<Arc<Vec<UserVisits>>>> {
        let (this, filter) = (self.clone(), f.clone());
        let fetch = move || async move {
            let mut rows = this.fetch_visits(&filter).await?;
            rows.sort_unstable_by(|a, b| order.compare(a, b));
            Ok(rows)
        };
        self.cached((f.clone(), order), fetch).await
    }

    /// Every user with tokens matching `f`, by user id, straight from the database.
    async fn fetch_visits(&self, f: &VisitsFilter) -> Result<Vec<UserVisits>> {
        let (start, end) = time::utc_range(&f.timezone, f.from, f.to)?;
        let (t, u) = ("t", "u");
        let created = || Expr::col((t, tokens::Column::CreatedAt));
        // COUNT(*), not of a column outside the `created_at` index: the range is read from the index alone.
        let visits = || Func::count(Expr::col(sea_orm::sea_query::Asterisk));
        let mut query = Query::select();
        query
            .expr_as(Expr::col((u, users::Column::Id)), "user_id")
            .expr_as(Expr::col((u, users::Column::JoinedAt)), "joined_at")
            .expr_as(visits(), "visits")
            .expr_as(
                Func::count(Expr::col((t, tokens::Column::UsedAt))),
                "check_ins",
            )
            .expr_as(
                Func::max(Expr::col((t, tokens::Column::UsedAt))),
                "last_visit_at",
            )
            .from_as(tokens::Entity, t)
            .join_as(
                JoinType::InnerJoin,
                users::Entity,
                u,
                Expr::col((u, users::Column::Id)).equals((t, tokens::Column::UserId)),
            )
            .cond_where(
                Condition::all()
                    .add_option(start.map(|start| created().gte(start)))
                    .add_option(end.map(|end| created().lt(end)))
                    .add_option(
                        f.active_only
                            .then(|| Expr::col((u, users::Column::IsActive)).eq(true)),
                    ),
            )
            .group_by_columns([(u, users::Column::Id), (u, users::Column::JoinedAt)])
            .order_by((u, users::Column::Id), Order::Asc);
        if let Some(min) = f.min_visits {
            query.and_having(visits().gte(min));
        }
        let rows = self
            .all("visits_per_user", self.dialect.build(&query))
            .await?;
        rows.iter().map(UserVisits::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user_id: i32, visits: i64, last: Option<i64>) -> UserVisits {
        let t = |s: i64| {
            DateTime::from_timestamp(s, 0)
                .map(|d| d.naive_utc())
                .unwrap_or_default()
        };
        UserVisits {
            user_id,
            joined_at: t(1_000),
            visits,
            check_ins: 0,
            last_visit_at: last.map(t),
        }
    }

    #[test]
    fn paging_by_cursor_visits_every_row_once_in_order() {
        let rows: Vec<_> = (1..=25)
            .map(|i| {
                row(
                    i,
                    i64::from(i % 4),
                    if i % 3 == 0 {
                        None
                    } else {
                        Some(i64::from(i % 5))
                    },
                )
            })
            .collect();
        for order in [
            VisitsOrder::UserIdAsc,
            VisitsOrder::VisitsDesc,
            VisitsOrder::LastVisitDesc,
            VisitsOrder::JoinedAtAsc,
        ] {
            let mut expected = rows.clone();
            expected.sort_by(|a, b| order.compare(a, b));
            let mut seen = Vec::new();
            let mut after: Option<Cursor> = None;
            loop {
                let mut sorted = rows.clone();
                sorted.sort_by(|a, b| order.compare(a, b));
                let p = page(&sorted, order, after.as_ref(), 7).expect("page");
                seen.extend(p.rows.iter().cloned());
                let Some(last) = p.rows.last() else { break };
                let encoded = Cursor {
                    order,
                    key: last.clone(),
                }
                .encode();
                after = Some(Cursor::decode(&encoded).expect("decode"));
                if !p.has_next {
                    break;
                }
            }
            let ids = |v: &[UserVisits]| v.iter().map(|r| r.user_id).collect::<Vec<_>>();
            assert_eq!(ids(&seen), ids(&expected), "{order:?}");
        }
    }

    #[test]
    fn malformed_cursors_are_bad_input_naming_after() {
        for bad in [
            "",
            "zzz",
            "dXYxfGlkfDE",
            &URL_SAFE_NO_PAD.encode("uv1|nope|1|1|-|0"),
        ] {
            match Cursor::decode(bad) {
                Err(AnalyticsError::BadInput { argument, .. }) => assert_eq!(argument, "after"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
