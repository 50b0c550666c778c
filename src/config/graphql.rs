//! GraphQL settings: the query limits, page and bucket bounds, introspection and the browser IDE.

use clap::Args;

use super::value::{boolean, defaults, int};

#[derive(Args, Debug, Clone)]
pub struct GraphqlArgs {
    /// GraphQL query depth limit.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", global = true, default_value_t = 12,
          value_parser = int::<usize>(1..=1_000, "an integer from 1 to 1000"))]
    pub graphql_max_depth: usize,
    /// GraphQL query complexity limit.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", global = true, default_value_t = 2_000,
          value_parser = int::<usize>(1..=1_000_000, "an integer from 1 to 1000000"))]
    pub graphql_max_complexity: usize,
    /// Largest `first` a connection accepts.
    #[arg(long, env = "MAX_PAGE_SIZE", global = true, default_value_t = 1_000,
          value_parser = int::<usize>(1..=100_000, "an integer from 1 to 100000"))]
    pub max_page_size: usize,
    /// Most buckets one usageByDay call may return.
    #[arg(long, env = "MAX_BUCKETS", global = true, default_value_t = 3_660,
          value_parser = int::<usize>(1..=100_000, "an integer from 1 to 100000"))]
    pub max_buckets: usize,
    /// Most operations in one batched GraphQL request.
    #[arg(long, env = "GRAPHQL_MAX_BATCH", global = true, default_value_t = 10,
          value_parser = int::<usize>(1..=1_000, "an integer from 1 to 1000"))]
    pub graphql_max_batch: usize,
    /// Most aliased fields in one GraphQL document.
    #[arg(long, env = "GRAPHQL_MAX_ALIASES", global = true, default_value_t = 30,
          value_parser = int::<usize>(0..=10_000, "an integer from 0 to 10000"))]
    pub graphql_max_aliases: usize,
    /// Allow schema introspection (true/false).
    #[arg(long, env = "GRAPHQL_INTROSPECTION", global = true, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = boolean(true))]
    pub graphql_introspection: bool,
    /// Serve the browser playground on GET /graphql (true/false).
    #[arg(long, env = "GRAPHQL_PLAYGROUND", global = true, default_value_t = true,
          action = clap::ArgAction::Set, value_parser = boolean(true))]
    pub graphql_playground: bool,
}

impl Default for GraphqlArgs {
    fn default() -> Self {
        defaults()
    }
}
