//! The command line: the subcommands over the settings, and what each does once the config is valid.

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::Application;
use crate::auth::AuthConfig;
use crate::config::{self, Config, Settings};
use crate::seed::{self, SeedPlan};
use crate::{db, telemetry};

const BATCH_STATEMENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Parser, Debug)]
#[command(
    name = "coworking-gateway",
    version,
    about = "GraphQL analytics gateway for the coworking service, with the legacy REST reports"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
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
        #[arg(long, default_value_t = SeedPlan::DEMO.users)]
        users: u64,
        #[arg(long, default_value_t = SeedPlan::DEMO.tokens)]
        tokens: u64,
        #[arg(long, default_value_t = SeedPlan::DEMO.seed)]
        seed: u64,
        /// Spread the tokens over this many days ending 2023-02-14 (7: the demo data).
        #[arg(long, default_value_t = SeedPlan::DEMO.days,
              value_parser = config::int::<u64>(1..=seed::MAX_DAYS, "a number of days from 1 to 36500"))]
        days: u64,
        /// Add to a database that already holds rows.
        #[arg(long)]
        append: bool,
    },
    /// Check or rebuild the rollups the reports read (migrates first).
    Rollup {
        #[command(subcommand)]
        action: RollupAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Exit 0 when the local gateway's liveness probe answers 200 (for container health checks).
    Healthcheck,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupAction {
    /// Compare every rollup row with the raw rows; exit 1 naming the first difference.
    Verify,
    /// Rebuild the rollups from the raw rows (after a manual fix, or a failed verify).
    Rebuild,
}

/// The binary: a refused setting exits with status 2 and one line naming it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match config::refused_value(&e) {
            Some(_) if wants_schema() => return print_schema(),
            Some(line) => return refused(line),
            // --help, --version, an unknown flag: clap's own rendering and status.
            None => e.exit(),
        },
    };
    let settings = cli.settings.with_env_password();
    match cli.command.unwrap_or(Command::Serve { migrate: false }) {
        Command::Schema => print_schema(),
        Command::Serve { migrate } => with_config(&settings, |mut config, auth| {
            config.migrate_on_start |= migrate;
            serve(config, auth)
        }),
        // Batch work, not requests: the per-request statement timeout does not apply.
        Command::Migrate => with_config(&settings, |mut config, _| async move {
            config.db_statement_timeout = BATCH_STATEMENT_TIMEOUT;
            migrate(&config).await
        }),
        Command::Seed {
            users,
            tokens,
            seed,
            append,
            days,
        } => with_config(&settings, |mut config, _| async move {
            config.db_statement_timeout = BATCH_STATEMENT_TIMEOUT;
            let plan = SeedPlan {
                users,
                tokens,
                seed,
                append,
                days,
            };
            seed_cmd(&config, plan).await
        }),
        Command::Rollup { action } => with_config(&settings, |mut config, _| async move {
            config.db_statement_timeout = BATCH_STATEMENT_TIMEOUT;
            rollup_cmd(&config, action).await
        }),
        Command::Healthcheck => {
            with_config(
                &settings,
                |config, _| async move { healthcheck(&config).await },
            )
        }
    }
}

fn refused(line: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {line}");
    ExitCode::from(2)
}

/// Resolves the config and the credentials its auth files hold (so every command refuses
/// a bad one the same way), starts logging and runs `command` on the multi-thread runtime.
fn with_config<F: Future<Output = ExitCode>>(
    settings: &Settings,
    command: impl FnOnce(Config, AuthConfig) -> F,
) -> ExitCode {
    let config = match Config::from_settings(settings) {
        Ok(config) => config,
        Err(e) => return refused(e),
    };
    let auth = match AuthConfig::from_settings(&config.auth) {
        Ok(auth) => auth,
        Err(e) => return refused(e),
    };
    telemetry::init(config.log_format, std::io::stdout);
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command(config, auth)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the command line asks for `schema`, which reads no setting: clap checks every
/// setting before it looks at the subcommand, so a bad one must not stop it.
fn wants_schema() -> bool {
    Cli::command()
        .mut_args(|arg| arg.value_parser(clap::builder::ValueParser::os_string()))
        .try_get_matches()
        .is_ok_and(|matches| matches.subcommand_name() == Some("schema"))
}

/// No configuration and no database: the schema alone, on a one-thread runtime.
fn print_schema() -> ExitCode {
    let printed = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(crate::graphql::sdl()));
    match printed {
        Ok(sdl) => {
            print!("{sdl}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: printing the schema: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    tracing::error!(error = %e, "{what}");
    eprintln!("error: {what}: {e}");
    ExitCode::FAILURE
}

async fn serve(config: Config, auth: AuthConfig) -> ExitCode {
    let started = Instant::now();
    let target = config.database.redacted();
    let app = match Application::build_with_auth(config, auth).await {
        Ok(app) => app,
        Err(e) => return fail("cannot start", e),
    };
    let addr = match app.local_addr() {
        Ok(a) => a,
        Err(e) => return fail("cannot read the bound address", e),
    };
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let base = format!("http://{host}:{}", addr.port());
    tracing::info!(
        database = %target,
        ready_ms = started.elapsed().as_millis() as u64,
        "listening on {addr}; try {base}/graphql (playground), {base}/api/reports/daily_usage, {base}/api/reports/user_visits, {base}/health_check"
    );
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("server error", e),
    }
}

async fn migrate(config: &Config) -> ExitCode {
    let conn = match db::connect(config, None).await {
        Ok(c) => c,
        Err(e) => return fail("cannot connect to the database", e),
    };
    match db::migrate(&conn).await {
        Ok(()) => {
            tracing::info!(database = %config.database.redacted(), "migrations applied");
            ExitCode::SUCCESS
        }
        Err(e) => fail("migration failed", e),
    }
}

/// The database, migrated (batch commands work on the current schema), or the exit status.
async fn connect_migrated(config: &Config) -> Result<sea_orm::DatabaseConnection, ExitCode> {
    let conn = db::connect(config, None)
        .await
        .map_err(|e| fail("cannot connect to the database", e))?;
    db::migrate(&conn)
        .await
        .map_err(|e| fail("migration failed", e))?;
    Ok(conn)
}

async fn seed_cmd(config: &Config, plan: SeedPlan) -> ExitCode {
    let conn = match connect_migrated(config).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = Instant::now();
    let result = seed::seed(&conn, plan, |done, total| {
        let _ = writeln!(
            std::io::stderr(),
            "seed: {done}/{total} tokens written ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
    })
    .await;
    match result {
        Ok(()) => {
            let _ = writeln!(
                std::io::stderr(),
                "seed: done: {} users, {} tokens in {:.1} s",
                plan.users,
                plan.tokens,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("seed failed", e),
    }
}

async fn rollup_cmd(config: &Config, action: RollupAction) -> ExitCode {
    let conn = match connect_migrated(config).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = Instant::now();
    let elapsed = || started.elapsed().as_secs_f64();
    match action {
        RollupAction::Rebuild => match db::rollup::rebuild(&conn).await {
            Ok(sizes) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "rollup rebuild: {} slots, {} users in {:.1} s",
                    sizes.slots,
                    sizes.users,
                    elapsed()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail("rollup rebuild failed", e),
        },
        RollupAction::Verify => {
            let (ok, detail) = match db::rollup::verify(&conn).await {
                Ok(db::rollup::Verdict::Match { slots, users }) => (
                    true,
                    format!("the rollups match the raw rows: {slots} slots, {users} users"),
                ),
                Ok(db::rollup::Verdict::Differs(difference)) => (
                    false,
                    format!(
                        "the rollups differ from the raw rows: {difference}; run `coworking-gateway rollup rebuild`"
                    ),
                ),
                Err(e) => return fail("rollup verify failed", e),
            };
            // Recorded for the gateway's rollup_verify_* metrics (a verify Job's outcome).
            if let Err(e) = db::rollup::record_check(&conn, ok, &detail).await {
                tracing::warn!(error = %e, "could not record the verify result");
            }
            let _ = writeln!(
                std::io::stderr(),
                "rollup verify: {detail} ({:.1} s)",
                elapsed()
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                tracing::error!(difference = %detail, "rollup verify failed");
                ExitCode::FAILURE
            }
        }
    }
}

/// For container health checks in an image without curl: GET /health_check on the local port.
async fn healthcheck(config: &Config) -> ExitCode {
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", config.port)).await?;
        stream
            .write_all(
                b"GET /health_check HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<bool, std::io::Error>(buf.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), check).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
