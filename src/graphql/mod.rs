//! The async-graphql schema: one query root per domain, merged; limits, APQ and error codes set in `build_schema`.

mod apq;
mod checks;
mod coded;
mod conformance;
mod extensions;
mod loaders;
mod scalars;
mod sdl;
mod shape;
mod usage;
mod users;
mod visits;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, ErrorExtensions, MergedObject, Schema};

use crate::analytics::{Analytics, AnalyticsError};
use crate::codes;
use crate::metrics::Metrics;

pub use conformance::select as select_operation;
pub use scalars::{Date, DateTime};

#[derive(MergedObject, Default)]
pub struct QueryRoot(usage::UsageQuery, visits::VisitsQuery, users::UsersQuery);

pub type AppSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

#[derive(Debug, Clone, Copy)]
pub struct SchemaLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_aliases: usize,
    pub introspection: bool,
    /// Bytes the persisted-query store may hold.
    pub apq_max_bytes: u64,
}

/// The one schema every road uses: `/graphql` and the legacy REST adapters.
pub fn build_schema(
    analytics: Analytics,
    limits: SchemaLimits,
    metrics: Arc<Metrics>,
) -> AppSchema {
    let builder = Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription);
    let builder = if limits.introspection {
        builder
    } else {
        builder.disable_introspection()
    };
    builder
        .data(analytics)
        .data(metrics)
        .limit_complexity(limits.max_complexity)
        // Outermost first: metrics see the codes ErrorCodes adds.
        .extension(extensions::OperationMetrics)
        .extension(extensions::ErrorCodes)
        .extension(extensions::AliasLimit(limits.max_aliases))
        .extension(apq::BoundedApqStorage::new(limits.apq_max_bytes))
        // Inside APQ, so it sees the query a persisted hash stands for.
        .extension(conformance::Conformance {
            max_depth: limits.max_depth,
        })
        .extension(extensions::PerRequestLoaders)
        .finish()
}

/// The schema's SDL as graphql-js prints it (`schema.graphql`); needs no database.
pub async fn sdl() -> Result<String, String> {
    let schema = Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription).finish();
    sdl::print(&schema).await
}

impl ErrorExtensions for AnalyticsError {
    fn extend(&self) -> async_graphql::Error {
        let (code, message) = match self {
            AnalyticsError::BadInput { argument, message } => {
                let e = async_graphql::Error::new(format!("{argument}: {message}"))
                    .extend_with(|_, ext| ext.set("argument", *argument));
                return e.extend_with(|_, ext| ext.set("code", codes::BAD_USER_INPUT));
            }
            AnalyticsError::Unavailable => (codes::DATABASE_UNAVAILABLE, self.to_string()),
            AnalyticsError::Timeout => (codes::TIMEOUT, self.to_string()),
            AnalyticsError::Internal(detail) => {
                // The detail may hold SQL; it goes to the log, never to the client.
                tracing::error!(error = %detail, "analytics query failed");
                (codes::INTERNAL, self.to_string())
            }
        };
        async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code))
    }
}

/// Tells the caller's road (REST `Age` headers) how old the data behind this answer is.
pub(crate) fn record_freshness<T>(
    ctx: &async_graphql::Context<'_>,
    cached: &crate::analytics::cache::Cached<T>,
) {
    if let Some(freshness) = ctx.data_opt::<Arc<crate::analytics::cache::Freshness>>() {
        freshness.record(cached);
    }
}

pub(crate) fn gql_err(e: AnalyticsError) -> async_graphql::Error {
    e.extend()
}

pub(crate) fn bad_input(
    argument: &'static str,
    message: impl Into<String>,
) -> async_graphql::Error {
    gql_err(AnalyticsError::bad_input(argument, message))
}
