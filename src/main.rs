//! The `deskbridge` binary: parse the command line and run it.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
