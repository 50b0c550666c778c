//! The error codes clients branch on, and the one JSON error body that carries them.
//!
//! A leaf: it imports nothing from the crate, so `graphql` (GraphQL `extensions.code`),
//! `auth` and `http` (`{"error":{"code","message"}}`) all name the same codes.

/// An argument or request the client must change (GraphQL and HTTP 400).
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
/// The database could not be reached in time (HTTP 503).
pub const DATABASE_UNAVAILABLE: &str = "DATABASE_UNAVAILABLE";
/// A statement or the whole request ran out of time (HTTP 504).
pub const TIMEOUT: &str = "TIMEOUT";
/// Anything else; the detail goes to the log, never to the client (HTTP 500).
pub const INTERNAL: &str = "INTERNAL";
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// An automatic persisted query's hash the gateway does not hold: send the query with it.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
pub const RATE_LIMITED: &str = "RATE_LIMITED";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const NOT_ACCEPTABLE: &str = "NOT_ACCEPTABLE";
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
pub const HEADERS_TOO_LARGE: &str = "HEADERS_TOO_LARGE";
/// A 4xx no other code names.
pub const BAD_REQUEST: &str = "BAD_REQUEST";

/// The one JSON error body of every non-GraphQL error answer:
/// `{"error":{"code":…,"message":…}}`.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}
