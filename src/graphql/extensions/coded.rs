//! An error's `extensions.code`: set once, where the error's kind is known, and read back.

use async_graphql::ServerError;

use crate::codes;

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
