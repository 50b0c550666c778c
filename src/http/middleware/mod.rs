//! The hand-written middleware that remains, one file each; request ids, the time and
//! body limits and panics are `tower_http` layers (see `http::with_stack`).

pub mod header_limit;
pub mod json_errors;
pub mod observe;
pub mod rate_limit;
pub mod request_id;
