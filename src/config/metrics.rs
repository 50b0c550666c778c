//! Metrics settings: a port of its own for `/metrics`, and the operation names labelled as themselves.

use clap::Args;

use super::value::{defaults, int, text};

/// Operation names labelled as themselves by default: the README's and the dashboards' own.
pub const DEFAULT_KNOWN_OPERATIONS: &str = "Usage,UsageByDay,VisitsPerUser,Visits,Users,User,Summary,Page,DashUsage,DashVisits,DashSummary";

#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Serve /metrics on this port instead of the main one (empty: the main port).
    #[arg(long, env = "METRICS_PORT", global = true,
          value_parser = int::<u16>(1..=65535,
              "an integer from 1 to 65535, or empty for the main port").empty_means(0))]
    pub metrics_port: Option<u16>,
    /// Comma-separated GraphQL operation names that get their own metrics label (others are `other`).
    #[arg(long, env = "GRAPHQL_KNOWN_OPERATIONS", global = true,
          default_value = DEFAULT_KNOWN_OPERATIONS,
          value_parser = text(known_operations,
              "up to 200 comma-separated names like DailyUsage,VisitsPerUser",
              |_| "not a list of GraphQL names".to_owned()).env_name())]
    pub graphql_known_operations: OperationNames,
}

impl Default for MetricsArgs {
    fn default() -> Self {
        defaults()
    }
}

/// GraphQL operation names, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationNames(pub Vec<String>);

impl MetricsArgs {
    /// `None` (the main port) when unset or empty.
    pub(super) fn port(&self) -> Option<u16> {
        self.metrics_port.filter(|port| *port != 0)
    }
}

fn known_operations(raw: &str) -> Option<OperationNames> {
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let valid = |n: &String| {
        n.len() <= 64
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    (names.len() <= 200 && names.iter().all(valid)).then_some(OperationNames(names))
}
