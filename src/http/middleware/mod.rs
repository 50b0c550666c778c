//! The hand-written middleware that remains: the access log and metrics, the rate limit.

pub mod observe;
pub mod rate_limit;
