//! Settings from CLI flags and environment variables (including the legacy `DB_*` ones), validated once.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// A value that must never reach a log line, an error message or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "coworking-gateway",
    version,
    about = "GraphQL analytics gateway for the coworking service, with the legacy REST reports"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: RawSettings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve HTTP (the default when no subcommand is given).
    Serve {
        /// Run pending migrations before serving (SQLite always migrates).
        #[arg(long)]
        migrate: bool,
    },
    /// Run pending migrations and exit (adopts an existing legacy database).
    Migrate,
    /// Write deterministic demo data (bulk SQL; refuses a non-empty database without --append).
    Seed {
        #[arg(long, default_value_t = 1_000)]
        users: u64,
        #[arg(long, default_value_t = 2_500)]
        tokens: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Add to a database that already holds rows.
        #[arg(long)]
        append: bool,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Exit 0 when the local gateway's liveness probe answers 200 (for container health checks).
    Healthcheck,
}

/// Settings as given, still unvalidated; `Config::from_raw` checks each one.
#[derive(Args, Debug, Clone, Default)]
pub struct RawSettings {
    /// Database URL (postgres://… or sqlite:…); takes precedence over DB_*.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Legacy PostgreSQL user name; setting it (or DB_HOST) selects PostgreSQL.
    #[arg(long, env = "DB_USERNAME", global = true)]
    pub db_username: Option<String>,
    /// Legacy PostgreSQL password (env only, never printed).
    #[arg(skip)]
    pub db_password: Option<String>,
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,
    #[arg(long, env = "DB_PORT", global = true)]
    pub db_port: Option<String>,
    #[arg(long, env = "DB_NAME", global = true)]
    pub db_name: Option<String>,
    /// SQLite file used when no PostgreSQL is configured.
    #[arg(long, env = "SQLITE_PATH", global = true)]
    pub sqlite_path: Option<String>,
    /// HTTP port.
    #[arg(long = "port", env = "APP_PORT", global = true)]
    pub app_port: Option<String>,
    /// Address to bind.
    #[arg(long = "bind", env = "BIND_ADDRESS", global = true)]
    pub bind_address: Option<String>,
    /// auto (JSON unless stdout is a terminal), json or pretty.
    #[arg(long, env = "LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Maximum database connections in the pool.
    #[arg(long, env = "DB_POOL_MAX", global = true)]
    pub db_pool_max: Option<String>,
    /// How long a request may wait for a pooled connection, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", global = true)]
    pub db_acquire_timeout_ms: Option<String>,
    /// PostgreSQL statement_timeout, in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", global = true)]
    pub db_statement_timeout_ms: Option<String>,
    /// GraphQL query depth limit.
    #[arg(long, env = "GRAPHQL_MAX_DEPTH", global = true)]
    pub graphql_max_depth: Option<String>,
    /// GraphQL query complexity limit.
    #[arg(long, env = "GRAPHQL_MAX_COMPLEXITY", global = true)]
    pub graphql_max_complexity: Option<String>,
    /// Largest `first` a connection accepts.
    #[arg(long, env = "MAX_PAGE_SIZE", global = true)]
    pub max_page_size: Option<String>,
    /// Most buckets one usageByDay call may return.
    #[arg(long, env = "MAX_BUCKETS", global = true)]
    pub max_buckets: Option<String>,
    /// Seconds a cached report stays fresh (0 disables the cache).
    #[arg(long, env = "CACHE_TTL_SECONDS", global = true)]
    pub cache_ttl_seconds: Option<String>,
    /// Seconds past freshness a report may be served stale while it is refreshed (or the database is down).
    #[arg(long, env = "CACHE_STALE_SECONDS", global = true)]
    pub cache_stale_seconds: Option<String>,
    /// Most cached reports kept.
    #[arg(long, env = "CACHE_MAX_ENTRIES", global = true)]
    pub cache_max_entries: Option<String>,
    /// Bytes all caches together may hold (reports, rendered REST bodies, users, persisted queries).
    #[arg(long, env = "CACHE_MAX_BYTES", global = true)]
    pub cache_max_bytes: Option<String>,
    /// Serve /metrics on this port instead of the main one.
    #[arg(long, env = "METRICS_PORT", global = true)]
    pub metrics_port: Option<String>,
    /// Comma-separated GraphQL operation names that get their own metrics label (others are `other`).
    #[arg(long, env = "GRAPHQL_KNOWN_OPERATIONS", global = true)]
    pub graphql_known_operations: Option<String>,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_DRAIN_SECONDS", global = true)]
    pub shutdown_drain_seconds: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<String>,
    /// Longest a request may take before a 504, in milliseconds.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", global = true)]
    pub request_timeout_ms: Option<String>,
    /// Most operations in one batched GraphQL request.
    #[arg(long, env = "GRAPHQL_MAX_BATCH", global = true)]
    pub graphql_max_batch: Option<String>,
    /// Most aliased fields in one GraphQL document.
    #[arg(long, env = "GRAPHQL_MAX_ALIASES", global = true)]
    pub graphql_max_aliases: Option<String>,
    /// Allow schema introspection (true/false).
    #[arg(long, env = "GRAPHQL_INTROSPECTION", global = true)]
    pub graphql_introspection: Option<String>,
    /// Serve the browser playground on GET /graphql (true/false).
    #[arg(long, env = "GRAPHQL_PLAYGROUND", global = true)]
    pub graphql_playground: Option<String>,
    /// Requests per second each client may make to the data roads (0: no limit).
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", global = true)]
    pub rate_limit_per_second: Option<String>,
    /// Requests a client may make at once above the rate.
    #[arg(long, env = "RATE_LIMIT_BURST", global = true)]
    pub rate_limit_burst: Option<String>,
    /// Proxies in front of the gateway that append to X-Forwarded-For (0: use the peer address).
    #[arg(long, env = "TRUSTED_PROXY_HOPS", global = true)]
    pub trusted_proxy_hops: Option<String>,
    /// Comma-separated SHA-256 hex digests of accepted API keys.
    #[arg(
        long,
        env = "AUTH_API_KEY_HASHES",
        global = true,
        hide_env_values = true
    )]
    pub auth_api_key_hashes: Option<String>,
    /// File with one SHA-256 hex digest of an accepted API key per line (e.g. a mounted Secret).
    #[arg(long, env = "AUTH_API_KEY_HASHES_FILE", global = true)]
    pub auth_api_key_hashes_file: Option<String>,
    /// File holding the HS256 secret for JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_HS256_SECRET_FILE", global = true)]
    pub auth_jwt_hs256_secret_file: Option<String>,
    /// File holding one or more PEM RSA public keys for RS256 JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_RS256_PUBLIC_KEYS_FILE", global = true)]
    pub auth_jwt_rs256_public_keys_file: Option<String>,
    /// Required `aud` of JWT bearer tokens.
    #[arg(long, env = "AUTH_JWT_AUDIENCE", global = true)]
    pub auth_jwt_audience: Option<String>,
    /// Require credentials on /metrics too (true/false).
    #[arg(long, env = "AUTH_METRICS", global = true)]
    pub auth_metrics: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// No database configured: the embedded SQLite file, migrated and seeded with demo data.
    EmbeddedDefault { path: PathBuf },
    /// A SQLite URL given explicitly (migrated, never seeded).
    Sqlite { url: String },
    /// PostgreSQL; the URL may hold a password.
    Postgres { url: Secret },
}

impl DatabaseTarget {
    pub fn url(&self) -> String {
        match self {
            Self::EmbeddedDefault { path } => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Sqlite { url } => url.clone(),
            Self::Postgres { url } => url.expose().to_owned(),
        }
    }
    pub fn is_sqlite(&self) -> bool {
        !matches!(self, Self::Postgres { .. })
    }
    /// The target with any password masked, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::EmbeddedDefault { path } => format!("sqlite file {}", path.display()),
            Self::Sqlite { url } => url.clone(),
            Self::Postgres { url } => redact_url(url.expose()),
        }
    }
}

impl fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("REDACTED"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseTarget,
    pub bind_address: IpAddr,
    pub port: u16,
    pub log_format: LogFormat,
    pub db_pool_max: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub graphql_max_depth: usize,
    pub graphql_max_complexity: usize,
    pub max_page_size: usize,
    pub max_buckets: usize,
    pub shutdown_drain: Duration,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub graphql_max_batch: usize,
    pub graphql_max_aliases: usize,
    pub graphql_introspection: bool,
    pub graphql_playground: bool,
    /// `None`: no per-client rate limit.
    pub rate_limit: Option<RateLimit>,
    pub auth: crate::auth::AuthConfig,
    /// Run pending migrations before serving (`serve --migrate`); SQLite always migrates.
    pub migrate_on_start: bool,
    pub cache: crate::analytics::cache::CachePolicy,
    /// `None`: /metrics on the main port.
    pub metrics_port: Option<u16>,
    pub graphql_known_operations: Vec<String>,
}

/// 32 MiB: with the ~20 MB the process needs besides, it stays well under the
/// pod's 64 Mi memory request (k8s/base/deployment.yaml) and half its 128 Mi limit.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 32 << 20;

/// Operation names labelled as themselves by default: the README's and the dashboards' own.
pub const DEFAULT_KNOWN_OPERATIONS: &str = "Usage,UsageByDay,VisitsPerUser,Visits,Users,User,Summary,Page,DashUsage,DashVisits,DashSummary";

/// A setting that could not be used; its `Display` is the one line printed before exiting with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {problem}; accepted: {accepted}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
    pub accepted: &'static str,
}

impl ConfigError {
    pub(crate) fn new(
        setting: &'static str,
        problem: impl Into<String>,
        accepted: &'static str,
    ) -> Self {
        Self {
            setting,
            problem: problem.into(),
            accepted,
        }
    }
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    raw: &Option<String>,
    setting: &'static str,
    default: T,
    min: T,
    max: T,
    accepted: &'static str,
) -> Result<T, ConfigError> {
    let Some(raw) = raw.as_deref() else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(ConfigError::new(
            setting,
            format!("'{raw}' is not usable"),
            accepted,
        )),
    }
}

impl Config {
    /// Defaults that work on a laptop: embedded SQLite, port 5153, every limit at its documented value.
    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let database = database_target(raw)?;
        let bind_address = match raw.bind_address.as_deref() {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(s) => s.trim().parse().map_err(|_| {
                ConfigError::new(
                    "BIND_ADDRESS (--bind)",
                    format!("'{s}' is not an IP address"),
                    "an IPv4 or IPv6 address such as 0.0.0.0 or 127.0.0.1",
                )
            })?,
        };
        let port = number(
            &raw.app_port,
            "APP_PORT (--port)",
            5153u16,
            0,
            u16::MAX,
            "an integer from 0 to 65535",
        )?;
        let log_format = match raw
            .log_format
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("auto") => LogFormat::Auto,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT (--log-format)",
                    format!("'{other}' is not a log format"),
                    "auto, json, pretty",
                ));
            }
        };
        Ok(Self {
            database,
            bind_address,
            port,
            log_format,
            db_pool_max: number(
                &raw.db_pool_max,
                "DB_POOL_MAX (--db-pool-max)",
                10u32,
                1,
                1_000,
                "an integer from 1 to 1000",
            )?,
            db_acquire_timeout: Duration::from_millis(number(
                &raw.db_acquire_timeout_ms,
                "DB_ACQUIRE_TIMEOUT_MS (--db-acquire-timeout-ms)",
                1_500u64,
                1,
                600_000,
                "milliseconds from 1 to 600000",
            )?),
            db_statement_timeout: Duration::from_millis(number(
                &raw.db_statement_timeout_ms,
                "DB_STATEMENT_TIMEOUT_MS (--db-statement-timeout-ms)",
                30_000u64,
                1,
                3_600_000,
                "milliseconds from 1 to 3600000",
            )?),
            graphql_max_depth: number(
                &raw.graphql_max_depth,
                "GRAPHQL_MAX_DEPTH (--graphql-max-depth)",
                12usize,
                1,
                1_000,
                "an integer from 1 to 1000",
            )?,
            graphql_max_complexity: number(
                &raw.graphql_max_complexity,
                "GRAPHQL_MAX_COMPLEXITY (--graphql-max-complexity)",
                2_000usize,
                1,
                1_000_000,
                "an integer from 1 to 1000000",
            )?,
            max_page_size: number(
                &raw.max_page_size,
                "MAX_PAGE_SIZE (--max-page-size)",
                1_000usize,
                1,
                100_000,
                "an integer from 1 to 100000",
            )?,
            max_buckets: number(
                &raw.max_buckets,
                "MAX_BUCKETS (--max-buckets)",
                3_660usize,
                1,
                100_000,
                "an integer from 1 to 100000",
            )?,
            shutdown_drain: Duration::from_secs(number(
                &raw.shutdown_drain_seconds,
                "SHUTDOWN_DRAIN_SECONDS (--shutdown-drain-seconds)",
                20u64,
                0,
                3_600,
                "seconds from 0 to 3600",
            )?),
            max_body_bytes: number(
                &raw.max_body_bytes,
                "MAX_BODY_BYTES (--max-body-bytes)",
                1_048_576usize,
                256,
                1 << 30,
                "bytes from 256 to 1073741824",
            )?,
            request_timeout: Duration::from_millis(number(
                &raw.request_timeout_ms,
                "REQUEST_TIMEOUT_MS (--request-timeout-ms)",
                10_000u64,
                1,
                3_600_000,
                "milliseconds from 1 to 3600000",
            )?),
            graphql_max_batch: number(
                &raw.graphql_max_batch,
                "GRAPHQL_MAX_BATCH (--graphql-max-batch)",
                10usize,
                1,
                1_000,
                "an integer from 1 to 1000",
            )?,
            graphql_max_aliases: number(
                &raw.graphql_max_aliases,
                "GRAPHQL_MAX_ALIASES (--graphql-max-aliases)",
                30usize,
                0,
                10_000,
                "an integer from 0 to 10000",
            )?,
            graphql_introspection: boolean(
                &raw.graphql_introspection,
                "GRAPHQL_INTROSPECTION (--graphql-introspection)",
                true,
            )?,
            graphql_playground: boolean(
                &raw.graphql_playground,
                "GRAPHQL_PLAYGROUND (--graphql-playground)",
                true,
            )?,
            rate_limit: {
                let per_second = number(
                    &raw.rate_limit_per_second,
                    "RATE_LIMIT_PER_SECOND (--rate-limit-per-second)",
                    0.0f64,
                    0.0,
                    1_000_000.0,
                    "requests per second, 0 for no limit",
                )?;
                let burst = number(
                    &raw.rate_limit_burst,
                    "RATE_LIMIT_BURST (--rate-limit-burst)",
                    (per_second * 2.0).max(1.0),
                    1.0,
                    1_000_000.0,
                    "a number of requests from 1",
                )?;
                let trusted_proxy_hops = number(
                    &raw.trusted_proxy_hops,
                    "TRUSTED_PROXY_HOPS (--trusted-proxy-hops)",
                    0usize,
                    0,
                    16,
                    "a number of proxies from 0 to 16",
                )?;
                (per_second > 0.0).then_some(RateLimit {
                    per_second,
                    burst,
                    trusted_proxy_hops,
                })
            },
            auth: crate::auth::AuthConfig::from_raw(raw)?,
            migrate_on_start: false,
            cache: crate::analytics::cache::CachePolicy {
                ttl: Duration::from_secs_f64(number(
                    &raw.cache_ttl_seconds,
                    "CACHE_TTL_SECONDS (--cache-ttl-seconds)",
                    30.0f64,
                    0.0,
                    86_400.0,
                    "seconds from 0 (off) to 86400",
                )?),
                stale: Duration::from_secs_f64(number(
                    &raw.cache_stale_seconds,
                    "CACHE_STALE_SECONDS (--cache-stale-seconds)",
                    300.0f64,
                    0.0,
                    86_400.0,
                    "seconds from 0 to 86400",
                )?),
                max_entries: number(
                    &raw.cache_max_entries,
                    "CACHE_MAX_ENTRIES (--cache-max-entries)",
                    10_000u64,
                    1,
                    10_000_000,
                    "an integer from 1 to 10000000",
                )?,
                max_bytes: number(
                    &raw.cache_max_bytes,
                    "CACHE_MAX_BYTES (--cache-max-bytes)",
                    DEFAULT_CACHE_MAX_BYTES,
                    1_048_576,
                    1 << 40,
                    "bytes from 1048576 (1 MiB) to 1099511627776 (1 TiB)",
                )?,
            },
            metrics_port: match raw
                .metrics_port
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                None => None,
                Some(_) => Some(number(
                    &raw.metrics_port,
                    "METRICS_PORT (--metrics-port)",
                    0u16,
                    1,
                    u16::MAX,
                    "an integer from 1 to 65535, or empty for the main port",
                )?),
            },
            graphql_known_operations: known_operations(
                raw.graphql_known_operations
                    .as_deref()
                    .unwrap_or(DEFAULT_KNOWN_OPERATIONS),
            )?,
        })
    }

    /// Settings for tests and tools: defaults around an explicit database URL.
    pub fn for_database_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_raw(&RawSettings {
            database_url: Some(url.to_owned()),
            ..RawSettings::default()
        })
    }
}

fn boolean(
    raw: &Option<String>,
    setting: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match raw
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError::new(
            setting,
            format!("'{other}' is not a boolean"),
            "true or false",
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
    /// Proxies that append to `X-Forwarded-For`: the client is the N-th entry from the right.
    pub trusted_proxy_hops: usize,
}

fn known_operations(raw: &str) -> Result<Vec<String>, ConfigError> {
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
    if names.len() > 200 || !names.iter().all(valid) {
        return Err(ConfigError::new(
            "GRAPHQL_KNOWN_OPERATIONS",
            "not a list of GraphQL names",
            "up to 200 comma-separated names like DailyUsage,VisitsPerUser",
        ));
    }
    Ok(names)
}

const URL_ACCEPTED: &str = "postgres://user:password@host:port/db, postgresql://…, sqlite://path?mode=rwc or sqlite::memory:";

fn database_target(raw: &RawSettings) -> Result<DatabaseTarget, ConfigError> {
    if let Some(url) = raw
        .database_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if url.starts_with("sqlite:") {
            return Ok(DatabaseTarget::Sqlite {
                url: url.to_owned(),
            });
        }
        return match url::Url::parse(url) {
            Ok(parsed)
                if matches!(parsed.scheme(), "postgres" | "postgresql")
                    && parsed.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                Ok(DatabaseTarget::Postgres {
                    url: Secret::new(url),
                })
            }
            // The raw value may contain a password: name the setting, never echo it.
            _ => Err(ConfigError::new(
                "DATABASE_URL (--database-url)",
                "the value is not a PostgreSQL or SQLite URL",
                URL_ACCEPTED,
            )),
        };
    }
    if raw.db_username.is_some() || raw.db_host.is_some() {
        let host = raw.db_host.as_deref().unwrap_or("127.0.0.1").trim();
        let port = number(
            &raw.db_port,
            "DB_PORT",
            5432u16,
            1,
            u16::MAX,
            "an integer from 1 to 65535",
        )?;
        let name = raw.db_name.as_deref().unwrap_or("postgres").trim();
        let user = raw.db_username.as_deref().unwrap_or("postgres");
        let mut url = url::Url::parse("postgres://localhost/").map_err(|_| {
            ConfigError::new("DB_HOST", "cannot build a URL", "a host name or IP address")
        })?;
        url.set_host(Some(host)).map_err(|_| {
            ConfigError::new(
                "DB_HOST",
                format!("'{host}' is not a host name"),
                "a host name or IP address",
            )
        })?;
        let _ = url.set_port(Some(port));
        url.set_path(&format!("/{name}"));
        let _ = url.set_username(user);
        if let Some(password) = raw.db_password.as_deref().filter(|p| !p.is_empty()) {
            let _ = url.set_password(Some(password));
        }
        return Ok(DatabaseTarget::Postgres {
            url: Secret::new(url.to_string()),
        });
    }
    let path = raw.sqlite_path.as_deref().unwrap_or("./coworking.db");
    if path.trim().is_empty() {
        return Err(ConfigError::new(
            "SQLITE_PATH (--sqlite-path)",
            "the path is empty",
            "a file path such as ./coworking.db",
        ));
    }
    Ok(DatabaseTarget::EmbeddedDefault {
        path: PathBuf::from(path),
    })
}

impl Cli {
    /// Parses flags and env; the password is read from the environment only, so it never shows in `ps`.
    pub fn parse_with_env() -> Self {
        let mut cli = Self::parse();
        cli.settings.db_password = std::env::var("DB_PASSWORD").ok();
        cli
    }
}
