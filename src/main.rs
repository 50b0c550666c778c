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
        print!("{}", coworking_gateway::graphql::sdl());
        return ExitCode::SUCCESS;
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
