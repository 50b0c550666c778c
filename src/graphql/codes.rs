//! Machine-readable error codes BI tools can branch on (`extensions.code`).

pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
pub const DATABASE_UNAVAILABLE: &str = "DATABASE_UNAVAILABLE";
pub const TIMEOUT: &str = "TIMEOUT";
pub const INTERNAL: &str = "INTERNAL";
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
