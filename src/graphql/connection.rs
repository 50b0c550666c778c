//! Relay connection pieces every paged field shares: `PageInfo`, the page-size check and the total count.

use async_graphql::{Result, SimpleObject};

use super::errors::bad_input;

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// The page's info from its edges' cursors, first to last.
    pub fn new<'a>(
        mut cursors: impl DoubleEndedIterator<Item = &'a String>,
        has_next_page: bool,
        has_previous_page: bool,
    ) -> Self {
        let start_cursor = cursors.next().cloned();
        let end_cursor = cursors
            .next_back()
            .cloned()
            .or_else(|| start_cursor.clone());
        Self {
            has_next_page,
            has_previous_page,
            start_cursor,
            end_cursor,
        }
    }
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

/// `totalCount` as GraphQL's `Int` range allows.
pub(crate) fn total_count(total: impl TryInto<i64>) -> i64 {
    total.try_into().unwrap_or(i64::MAX)
}
