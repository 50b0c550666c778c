//! How an analytics error becomes a GraphQL error: its `code`, its message, and what stays in the log.

use std::sync::Arc;

use async_graphql::ErrorExtensions;

use crate::analytics::AnalyticsError;
use crate::analytics::cache::{Cached, Freshness};
use crate::codes;

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
pub(crate) fn record_freshness<T>(ctx: &async_graphql::Context<'_>, cached: &Cached<T>) {
    if let Some(freshness) = ctx.data_opt::<Arc<Freshness>>() {
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
