//! The `coworking-gateway` binary: everything it does is in [`coworking_gateway::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    coworking_gateway::cli::main()
}
