use std::process::ExitCode;

use coworking_gateway::config::{Cli, Command, Config};
use coworking_gateway::{cli, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse_with_env();
    let command = cli
        .command
        .clone()
        .unwrap_or(Command::Serve { migrate: false });
    if command == Command::Schema {
        // No configuration and no database: the schema alone, on a one-thread runtime.
        let printed = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(coworking_gateway::graphql::sdl()));
        return match printed {
            Ok(sdl) => {
                print!("{sdl}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: printing the schema: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::from_raw(&cli.settings) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, std::io::stdout);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(command, config))
}
