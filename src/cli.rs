//! What each subcommand does once the config is valid.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::Application;
use crate::config::{Command, Config};
use crate::db;
use crate::seed::{self, SeedPlan};

const BATCH_STATEMENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub async fn run(command: Command, mut config: Config) -> ExitCode {
    match command {
        Command::Serve { migrate } => {
            config.migrate_on_start |= migrate;
            serve(config).await
        }
        // Batch work, not requests: the per-request statement timeout does not apply.
        Command::Migrate => {
            config.db_statement_timeout = BATCH_STATEMENT_TIMEOUT;
            migrate(&config).await
        }
        Command::Seed {
            users,
            tokens,
            seed,
            append,
        } => {
            config.db_statement_timeout = BATCH_STATEMENT_TIMEOUT;
            seed_cmd(
                &config,
                SeedPlan {
                    users,
                    tokens,
                    seed,
                    append,
                },
            )
            .await
        }
        Command::Healthcheck => healthcheck(&config).await,
        Command::Schema => match crate::graphql::sdl().await {
            Ok(sdl) => {
                print!("{sdl}");
                ExitCode::SUCCESS
            }
            Err(e) => fail("printing the schema", e),
        },
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ExitCode {
    tracing::error!(error = %e, "{what}");
    eprintln!("error: {what}: {e}");
    ExitCode::FAILURE
}

async fn serve(config: Config) -> ExitCode {
    let started = Instant::now();
    let target = config.database.redacted();
    let app = match Application::build(config).await {
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
    let conn = match db::connect(config, Default::default(), None).await {
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

async fn seed_cmd(config: &Config, plan: SeedPlan) -> ExitCode {
    let conn = match db::connect(config, Default::default(), None).await {
        Ok(c) => c,
        Err(e) => return fail("cannot connect to the database", e),
    };
    if let Err(e) = db::migrate(&conn).await {
        return fail("migration failed", e);
    }
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
