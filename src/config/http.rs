//! HTTP server settings: address and port, log format, request limits, shutdown drain.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::value::{defaults, int, text};

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// HTTP port.
    #[arg(long = "port", env = "APP_PORT", global = true, default_value_t = 5153,
          value_parser = int::<u16>(0..=65535, "an integer from 0 to 65535"))]
    pub app_port: u16,
    /// Address to bind.
    #[arg(long = "bind", env = "BIND_ADDRESS", global = true, default_value = "0.0.0.0",
          value_parser = text(|s| s.parse::<IpAddr>().ok(),
              "an IPv4 or IPv6 address such as 0.0.0.0 or 127.0.0.1",
              |raw| format!("'{raw}' is not an IP address")))]
    pub bind_address: IpAddr,
    /// auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = "auto",
          value_parser = text(|s| LogFormat::from_str(s, true).ok(), "auto, json, pretty",
              |raw| format!("'{}' is not a log format", raw.trim().to_ascii_lowercase())))]
    pub log_format: LogFormat,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", global = true, default_value_t = 20,
          value_parser = int::<u64>(0..=3_600, "seconds from 0 to 3600"))]
    pub shutdown_drain_seconds: u64,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", global = true, default_value_t = 1_048_576,
          value_parser = int::<usize>(256..=1 << 30, "bytes from 256 to 1073741824"))]
    pub max_body_bytes: usize,
    /// Longest a request may take before a 504, in milliseconds.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", global = true, default_value_t = 10_000,
          value_parser = int::<u64>(1..=3_600_000, "milliseconds from 1 to 3600000"))]
    pub request_timeout_ms: u64,
}

impl Default for HttpArgs {
    fn default() -> Self {
        defaults()
    }
}

impl HttpArgs {
    pub(super) fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_seconds)
    }

    pub(super) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}
