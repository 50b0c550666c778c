//! Database settings: `DATABASE_URL`, the legacy `DB_*` variables, the embedded SQLite file, the pool.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::value::{ConfigError, defaults, int, secret};

#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// Database URL (postgres://… or sqlite:…); takes precedence over DB_*.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true, value_parser = secret)]
    pub database_url: Option<SecretString>,
    /// Legacy PostgreSQL user name; setting it (or DB_HOST) selects PostgreSQL.
    #[arg(long, env = "DB_USERNAME", global = true)]
    pub db_username: Option<String>,
    /// Legacy PostgreSQL password (env only, never printed).
    #[arg(skip)]
    pub db_password: Option<SecretString>,
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,
    /// Read, like every `DB_*`, only when they select PostgreSQL: checked then, not before.
    #[arg(long, env = "DB_PORT", global = true)]
    pub db_port: Option<String>,
    #[arg(long, env = "DB_NAME", global = true)]
    pub db_name: Option<String>,
    /// SQLite file used when no PostgreSQL is configured.
    #[arg(
        long,
        env = "SQLITE_PATH",
        global = true,
        default_value = "./coworking.db"
    )]
    pub sqlite_path: String,
    /// Maximum database connections in the pool.
    #[arg(long, env = "DB_POOL_MAX", global = true, default_value_t = 10,
          value_parser = int::<u32>(1..=1_000, "an integer from 1 to 1000"))]
    pub db_pool_max: u32,
    /// How long a request may wait for a pooled connection, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", global = true, default_value_t = 1_500,
          value_parser = int::<u64>(1..=600_000, "milliseconds from 1 to 600000"))]
    pub db_acquire_timeout_ms: u64,
    /// PostgreSQL statement_timeout, in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", global = true, default_value_t = 30_000,
          value_parser = int::<u64>(1..=3_600_000, "milliseconds from 1 to 3600000"))]
    pub db_statement_timeout_ms: u64,
}

impl Default for DbArgs {
    fn default() -> Self {
        defaults()
    }
}

#[derive(Clone)]
pub enum DatabaseTarget {
    /// No database configured: the embedded SQLite file, migrated and seeded with demo data.
    EmbeddedDefault { path: PathBuf },
    /// A SQLite URL given explicitly (migrated, never seeded).
    Sqlite { url: String },
    /// PostgreSQL; the URL may hold a password.
    Postgres { url: SecretString },
}

impl DatabaseTarget {
    pub fn url(&self) -> String {
        match self {
            Self::EmbeddedDefault { path } => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Sqlite { url } => url.clone(),
            Self::Postgres { url } => url.expose_secret().to_owned(),
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
            Self::Postgres { url } => redact_url(url.expose_secret()),
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

const URL_ACCEPTED: &str = "postgres://user:password@host:port/db, postgresql://…, sqlite://path?mode=rwc or sqlite::memory:";

impl DbArgs {
    pub(super) fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }

    pub(super) fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.db_statement_timeout_ms)
    }

    /// `DATABASE_URL` if set, else PostgreSQL from the legacy `DB_*`, else the embedded file.
    pub(super) fn target(&self) -> Result<DatabaseTarget, ConfigError> {
        if let Some(url) = self
            .database_url
            .as_ref()
            .map(|u| u.expose_secret().trim())
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
                    Ok(DatabaseTarget::Postgres { url: url.into() })
                }
                // The raw value may contain a password: name the setting, never echo it.
                _ => Err(ConfigError::new(
                    "DATABASE_URL (--database-url)",
                    "the value is not a PostgreSQL or SQLite URL",
                    URL_ACCEPTED,
                )),
            };
        }
        if self.db_username.is_some() || self.db_host.is_some() {
            return self.legacy_postgres();
        }
        if self.sqlite_path.trim().is_empty() {
            return Err(ConfigError::new(
                "SQLITE_PATH (--sqlite-path)",
                "the path is empty",
                "a file path such as ./coworking.db",
            ));
        }
        Ok(DatabaseTarget::EmbeddedDefault {
            path: PathBuf::from(&self.sqlite_path),
        })
    }

    fn legacy_postgres(&self) -> Result<DatabaseTarget, ConfigError> {
        let host = self.db_host.as_deref().unwrap_or("127.0.0.1").trim();
        let name = self.db_name.as_deref().unwrap_or("postgres").trim();
        let user = self.db_username.as_deref().unwrap_or("postgres");
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
        let port = match self.db_port.as_deref() {
            None => 5432,
            Some(raw) => raw
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|port| *port >= 1)
                .ok_or_else(|| {
                    ConfigError::new(
                        "DB_PORT",
                        format!("'{raw}' is not usable"),
                        "an integer from 1 to 65535",
                    )
                })?,
        };
        let _ = url.set_port(Some(port));
        url.set_path(&format!("/{name}"));
        let _ = url.set_username(user);
        if let Some(password) = self
            .db_password
            .as_ref()
            .map(ExposeSecret::expose_secret)
            .filter(|p| !p.is_empty())
        {
            let _ = url.set_password(Some(password));
        }
        Ok(DatabaseTarget::Postgres {
            url: url.to_string().into(),
        })
    }
}
