//! Query root for usage over time: `usageByDay` and `summary`.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};

use super::errors::gql_err;
use super::scalars::{Date, DateTime};
use crate::analytics::time::{self, Granularity as TimeGranularity};
use crate::analytics::usage::UsageQuery as Query;
use crate::analytics::{Analytics, usage};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum Granularity {
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
}

impl From<Granularity> for TimeGranularity {
    fn from(g: Granularity) -> Self {
        match g {
            Granularity::Day => Self::Day,
            Granularity::Week => Self::Week,
            Granularity::Month => Self::Month,
        }
    }
}

/// Token activity in one bucket (a local day, ISO week or month).
#[derive(SimpleObject)]
pub struct UsageBucket {
    /// Local date on which the bucket starts.
    date: Date,
    /// The bucket's first instant, RFC 3339 with the zone's offset at that instant (a
    /// historic offset with seconds is rounded up to the minute, the local time moved
    /// with it, so `start` and `startEpochMs` are always the same instant).
    start: DateTime,
    /// `start` as milliseconds since the Unix epoch (for Grafana).
    start_epoch_ms: f64,
    /// Tokens used, bucketed by when they were created (the legacy daily-usage definition).
    visits: i64,
    /// All tokens created in the bucket.
    tokens_issued: i64,
    /// Distinct users with a used token in the bucket.
    unique_users: i64,
}

impl From<usage::UsageBucket> for UsageBucket {
    fn from(b: usage::UsageBucket) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let start_epoch_ms = b.start.timestamp_millis() as f64;
        Self {
            date: Date::new(b.date),
            start: DateTime(b.start),
            start_epoch_ms,
            visits: b.visits,
            tokens_issued: b.tokens_issued,
            unique_users: b.unique_users,
        }
    }
}

/// Headline figures over a range.
#[derive(SimpleObject)]
pub struct Summary {
    /// Users who had joined by the end of the range.
    users: i64,
    /// Of those, users flagged active.
    active_users: i64,
    tokens_issued: i64,
    tokens_used: i64,
    /// tokensUsed / tokensIssued (0 when nothing was issued).
    usage_rate: f64,
}

#[derive(Default)]
pub struct UsageQuery;

#[Object]
impl UsageQuery {
    /// Token usage per bucket, ascending. `from`/`to` are inclusive local dates in `timezone`
    /// (an exact IANA name); without `fill`, buckets with no tokens are left out. At most
    /// MAX_BUCKETS buckets are returned; `fill` needs `from` and `to`.
    #[allow(clippy::too_many_arguments)]
    async fn usage_by_day(
        &self,
        ctx: &Context<'_>,
        from: Option<Date>,
        to: Option<Date>,
        #[graphql(default_with = "Granularity::Day")] granularity: Granularity,
        #[graphql(default_with = "String::from(\"UTC\")")] timezone: String,
        #[graphql(default = false)] fill: bool,
    ) -> Result<Vec<UsageBucket>> {
        let analytics = ctx.data::<Analytics>()?;
        let query = Query {
            from: Date::optional(from, "from")?,
            to: Date::optional(to, "to")?,
            granularity: granularity.into(),
            timezone: time::parse_timezone(&timezone).map_err(gql_err)?,
            fill,
            // Distinct users cost a sort per bucket: only when the query selects them.
            unique_users: ctx.look_ahead().field("uniqueUsers").exists(),
        };
        let buckets = analytics.usage(&query).await.map_err(gql_err)?;
        // The limit is on what is returned, checked after the (shared) cache: the legacy
        // road lifts it, and a refresh never fails because of it.
        if ctx.data_opt::<usage::NoBucketLimit>().is_none() {
            let max = analytics.limits().max_buckets;
            usage::check_returned(&query, buckets.value.len(), max).map_err(gql_err)?;
        }
        super::record_freshness(ctx, &buckets);
        Ok(buckets
            .value
            .iter()
            .cloned()
            .map(UsageBucket::from)
            .collect())
    }

    /// Users, active users, tokens issued and used over inclusive local dates.
    async fn summary(
        &self,
        ctx: &Context<'_>,
        from: Option<Date>,
        to: Option<Date>,
        #[graphql(default_with = "String::from(\"UTC\")")] timezone: String,
    ) -> Result<Summary> {
        let analytics = ctx.data::<Analytics>()?;
        let tz = time::parse_timezone(&timezone).map_err(gql_err)?;
        let s = analytics
            .summary(
                Date::optional(from, "from")?,
                Date::optional(to, "to")?,
                &tz,
            )
            .await
            .map_err(gql_err)?;
        super::record_freshness(ctx, &s);
        Ok(Summary {
            users: s.value.users,
            active_users: s.value.active_users,
            tokens_issued: s.value.tokens_issued,
            tokens_used: s.value.tokens_used,
            usage_rate: s.value.usage_rate,
        })
    }
}
