//! The schema extensions, outermost first: operation metrics and logs, error codes, the alias
//! limit, persisted queries (APQ), spec conformance (with its `checks` and response `shape`),
//! and the per-request DataLoaders.

mod apq;
mod checks;
mod coded;
mod conformance;
mod operation;
mod shape;

pub use apq::BoundedApqStorage;
pub use conformance::{Conformance, select};
pub use operation::{AliasLimit, ErrorCodes, OperationMetrics, PerRequestLoaders};
