//! The `deskbridge` binary: parse the command line and run it.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = deskbridge::cli::Cli::parse();
    match deskbridge::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
