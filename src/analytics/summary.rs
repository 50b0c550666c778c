//! Headline figures over a range: users, active users, tokens issued and used.

use chrono::NaiveDate;
use chrono_tz::Tz;
use sea_orm::Value as SqlValue;

use super::time;
use std::sync::Arc;

use super::cache::{Cached, Key, Value};
use super::{Analytics, Result};

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

impl Analytics {
    /// Figures over inclusive local dates, through the report cache.
    pub async fn summary(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        tz: &Tz,
    ) -> Result<Cached<Arc<Summary>>> {
        let (this, tz_owned) = (self.clone(), *tz);
        let fetch = move || async move {
            this.summary_now(from, to, &tz_owned)
                .await
                .map(|s| Value::Summary(Arc::new(s)))
        };
        let cached = self.cached(Key::Summary(from, to, *tz), fetch).await?;
        match cached.value {
            Value::Summary(ref s) => Ok(cached.clone().map(|_| s.clone())),
            _ => Err(super::AnalyticsError::Internal(
                "cache entry of the wrong kind".into(),
            )),
        }
    }

    /// The same figures straight from the database (the background gauges want them current).
    pub async fn summary_now(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        tz: &Tz,
    ) -> Result<Summary> {
        let (start, end) = time::utc_range(tz, from, to)?;
        let mut values: Vec<SqlValue> = Vec::new();
        let mut joined = String::new();
        if let Some(end) = end {
            joined.push_str(" AND joined_at < ?");
            values.push(end.into());
        }
        let users = format!("(SELECT COUNT(*) FROM users WHERE 1 = 1{joined})");
        let active = format!("(SELECT COUNT(*) FROM users WHERE is_active = ?{joined})");
        let mut active_values: Vec<SqlValue> = vec![true.into()];
        active_values.extend(values.clone());
        values.extend(active_values);
        let mut tokens = String::from(" FROM tokens WHERE 1 = 1");
        if let Some(start) = start {
            tokens.push_str(" AND created_at >= ?");
            values.push(start.into());
        }
        if let Some(end) = end {
            tokens.push_str(" AND created_at < ?");
            values.push(end.into());
        }
        let sql = format!(
            "SELECT {users} AS users, {active} AS active_users, COUNT(*) AS issued, COUNT(used_at) AS used{tokens}"
        );
        let row = self
            .one("summary", self.dialect.statement(&sql, values))
            .await?;
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
