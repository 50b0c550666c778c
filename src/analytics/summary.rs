//! Headline figures over a range: users, active users, tokens issued and used.

use chrono::NaiveDate;
use chrono_tz::Tz;
use entity::{tokens, users};
use sea_orm::sea_query::{Asterisk, Condition, Expr, ExprTrait, Func, Query};

use std::sync::Arc;

use super::Analytics;
use super::cache::Cached;
use super::error::Result;
use super::reports::Report;
use super::time;

#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Users who had joined by the end of the range.
    pub users: i64,
    /// Of those, users flagged active.
    pub active_users: i64,
    pub tokens_issued: i64,
    pub tokens_used: i64,
    /// `tokens_used / tokens_issued`, 0 when nothing was issued.
    pub usage_rate: f64,
}

impl Report for Summary {
    /// Inclusive local dates and the zone.
    type Key = (Option<NaiveDate>, Option<NaiveDate>, Tz);
    const NAME: &'static str = "summary";
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Analytics {
    /// Figures over inclusive local dates, through the report cache.
    pub async fn summary(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        tz: &Tz,
    ) -> Result<Cached<Arc<Summary>>> {
        let (this, tz_owned) = (self.clone(), *tz);
        let fetch = move || async move { this.summary_now(from, to, &tz_owned).await };
        self.cached((from, to, *tz), fetch).await
    }

    /// The same figures straight from the database (the background gauges want them current).
    pub async fn summary_now(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        tz: &Tz,
    ) -> Result<Summary> {
        let (start, end) = time::utc_range(tz, from, to)?;
        let count_all = || Func::count(Expr::col(Asterisk));
        let joined = || {
            Condition::all().add_option(end.map(|end| Expr::col(users::Column::JoinedAt).lt(end)))
        };
        let users_count = |only_active: bool| {
            Query::select()
                .expr(count_all())
                .from(users::Entity)
                .cond_where(
                    Condition::all()
                        .add_option(
                            only_active.then(|| Expr::col(users::Column::IsActive).eq(true)),
                        )
                        .add(joined()),
                )
                .to_owned()
        };
        let created = || Expr::col(tokens::Column::CreatedAt);
        let query = Query::select()
            .expr_as(users_count(false), "users")
            .expr_as(users_count(true), "active_users")
            .expr_as(count_all(), "issued")
            .expr_as(Func::count(Expr::col(tokens::Column::UsedAt)), "used")
            .from(tokens::Entity)
            .cond_where(
                Condition::all()
                    .add_option(start.map(|start| created().gte(start)))
                    .add_option(end.map(|end| created().lt(end))),
            )
            .to_owned();
        let row = self.one("summary", self.dialect.build(&query)).await?;
        let (users, active_users, tokens_issued, tokens_used) = match row {
            Some(r) => (
                r.try_get("", "users")?,
                r.try_get("", "active_users")?,
                r.try_get("", "issued")?,
                r.try_get("", "used")?,
            ),
            None => (0, 0, 0, 0),
        };
        #[allow(clippy::cast_precision_loss)]
        let usage_rate = if tokens_issued > 0 {
            tokens_used as f64 / tokens_issued as f64
        } else {
            0.0
        };
        Ok(Summary {
            users,
            active_users,
            tokens_issued,
            tokens_used,
            usage_rate,
        })
    }
}
