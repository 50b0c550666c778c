//! What every Relay-style connection shares: `PageInfo` and the checked page size.

use async_graphql::{Result, SimpleObject};

use super::errors::bad_input;

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// Checks `first` against the configured cap.
pub(crate) fn page_size(first: i64, cap: usize) -> Result<usize> {
    match usize::try_from(first) {
        Ok(n) if n <= cap => Ok(n),
        _ => Err(bad_input(
            "first",
            format!("first must be between 0 and {cap}, got {first}"),
        )),
    }
}
