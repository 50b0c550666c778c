//! GraphQL errors and their `extensions.code`: the resolvers' errors from analytics
//! errors, and a code set once, where an error's kind is known, and read back.

use async_graphql::{ErrorExtensions, ServerError};

use crate::analytics::AnalyticsError;
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

pub(crate) fn gql_err(e: AnalyticsError) -> async_graphql::Error {
    e.extend()
}

pub(crate) fn bad_input(
    argument: &'static str,
    message: impl Into<String>,
) -> async_graphql::Error {
    gql_err(AnalyticsError::bad_input(argument, message))
}

/// `error` with `code`, unless it already has one (the first to know its kind wins).
pub fn with_code(mut error: ServerError, code: &str) -> ServerError {
    code_if_none(&mut error, code);
    error
}

/// Gives `code` to each of `errors` that has none yet.
pub fn code_each(errors: &mut [ServerError], code: &str) {
    for error in errors {
        code_if_none(error, code);
    }
}

fn code_if_none(error: &mut ServerError, code: &str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

/// A new error with its code: one made before execution, so it has no path.
pub fn coded(message: impl Into<String>, code: &str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

/// The code an error carries (`INTERNAL` if none: every error leaves with one).
pub fn code_of(error: &ServerError) -> &str {
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(s)) => s.as_str(),
        _ => codes::INTERNAL,
    }
}
