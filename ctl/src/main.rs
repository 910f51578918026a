//! `taskmasterctl`: parses the command line and hands over to the library,
//! which returns the exit code (0 ok, 1 failed, 2 usage, 3 unreachable).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ctl::args::Cli::parse();
    ExitCode::from(ctl::main_with(cli).as_u8())
}
