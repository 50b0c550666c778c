//! The async-graphql schema: one query root per domain, merged; limits, APQ and error codes set in `build_schema`.

mod apq;
mod checks;
mod conformance;
mod connection;
mod errors;
mod extensions;
mod loaders;
mod scalars;
mod sdl;
mod shape;
mod usage;
mod users;
mod visits;

use std::sync::Arc;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema};

use crate::analytics::Analytics;
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

/// Tells the caller's road (REST `Age` headers) how old the data behind this answer is.
pub(crate) fn record_freshness<T>(
    ctx: &async_graphql::Context<'_>,
    cached: &crate::analytics::cache::Cached<T>,
) {
    if let Some(freshness) = ctx.data_opt::<Arc<crate::analytics::cache::Freshness>>() {
        freshness.record(cached);
    }
}
