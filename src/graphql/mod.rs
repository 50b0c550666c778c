//! The async-graphql schema: one query root per domain, merged; limits, APQ and error codes set in `build_schema`.

mod loaders;
mod scalars;
mod usage;
mod users;
mod visits;

use std::sync::Arc;

use async_graphql::extensions::apollo_persisted_queries::{
    ApolloPersistedQueries, LruCacheStorage,
};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
};
use async_graphql::{
    EmptyMutation, EmptySubscription, ErrorExtensions, MergedObject, Request, Response, Schema,
    ServerError, ServerResult,
};

use crate::analytics::{Analytics, AnalyticsError};

pub use scalars::Date;

#[derive(MergedObject, Default)]
pub struct QueryRoot(usage::UsageQuery, visits::VisitsQuery, users::UsersQuery);

pub type AppSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

#[derive(Debug, Clone, Copy)]
pub struct SchemaLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

/// The one schema every road uses: `/graphql` and the legacy REST adapters.
pub fn build_schema(analytics: Analytics, limits: SchemaLimits) -> AppSchema {
    Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription)
        .data(analytics)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(ApolloPersistedQueries::new(LruCacheStorage::new(1024)))
        .extension(ErrorCodes)
        .extension(PerRequestLoaders)
        .finish()
}

/// Gives every request, whichever road it came by, its own DataLoaders.
struct PerRequestLoaders;

impl ExtensionFactory for PerRequestLoaders {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequestLoaders)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequestLoaders {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = match ctx.data_opt::<Analytics>() {
            Some(analytics) => request.data(loaders::Loaders::new(analytics.clone())),
            None => request,
        };
        next.run(ctx, request).await
    }
}

/// The schema without a database, for printing the SDL.
pub fn sdl() -> String {
    Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription)
        .finish()
        .sdl()
}

/// Machine-readable codes BI tools can branch on.
pub mod codes {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const DATABASE_UNAVAILABLE: &str = "DATABASE_UNAVAILABLE";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const INTERNAL: &str = "INTERNAL";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
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

pub(crate) fn gql_err(e: AnalyticsError) -> async_graphql::Error {
    e.extend()
}

pub(crate) fn bad_input(
    argument: &'static str,
    message: impl Into<String>,
) -> async_graphql::Error {
    gql_err(AnalyticsError::bad_input(argument, message))
}

/// Gives every error a `code`, including the ones async-graphql raises itself
/// while parsing and validating, which carry none.
struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let executed = !matches!(response.data, async_graphql::Value::Null);
        for error in &mut response.errors {
            add_code(error, executed);
        }
        response
    }
}

fn add_code(error: &mut ServerError, executed: bool) {
    if error
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .is_some()
    {
        return;
    }
    let m = error.message.as_str();
    let code = if m.contains("PersistedQueryNotFound") {
        codes::PERSISTED_QUERY_NOT_FOUND
    } else if m.starts_with("Invalid value for argument")
        || m.starts_with("Invalid value for variable")
        || m.contains("Failed to parse")
        || m.contains("Variable \"")
        || m.contains("Only integers from")
    {
        codes::BAD_USER_INPUT
    } else if !executed && m.trim_start().starts_with("-->") {
        codes::GRAPHQL_PARSE_FAILED
    } else if !executed {
        codes::GRAPHQL_VALIDATION_FAILED
    } else {
        codes::INTERNAL
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}
