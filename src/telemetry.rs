//! Tracing subscriber: JSON lines for CloudWatch when not on a terminal, pretty output on one.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Default filter when `RUST_LOG` is unset: our own info lines, and no SQL
/// statements from the database drivers below warn level.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";

/// Installs the global subscriber; a second call is a no-op (tests spawn many apps).
pub fn init<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Per-request facts shared between the HTTP layer and the GraphQL extensions:
/// the request id, and the bounded operation name once the query is parsed.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: String,
    operation: std::sync::Mutex<Option<String>>,
}

impl RequestContext {
    pub fn new(request_id: String) -> Self {
        Self {
            request_id,
            operation: std::sync::Mutex::new(None),
        }
    }

    pub fn set_operation(&self, label: &str) {
        if let Ok(mut op) = self.operation.lock() {
            *op = Some(label.to_owned());
        }
    }

    pub fn operation(&self) -> Option<String> {
        self.operation.lock().ok().and_then(|op| op.clone())
    }
}
