//! Command line: `serve`, `check` and `render`. Every subcommand takes `--config PATH`.

use crate::app::{prepare, Application, Prepared};
use crate::destinations::{context_for, idempotency_key, Destination, Job, Progress, Request};
use crate::smartsupp::{Identity, Stored};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// deskbridge: Smartsupp conversations into help desks, CRMs and webhooks.
#[derive(Debug, Parser)]
#[command(name = "deskbridge", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "DESKBRIDGE_CONFIG",
        default_value = "config/deskbridge.yaml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive hooks and deliver them until SIGTERM.
    Serve,
    /// Validate the configuration and templates, and render every destination against the
    /// bundled sample conversations.
    Check,
    /// Print the request(s) a destination would send for a conversation, sending nothing.
    Render {
        /// Destination name from the configuration.
        #[arg(long)]
        destination: String,
        /// A Smartsupp hook body (JSON file).
        file: PathBuf,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve => serve(&cli.config),
        Command::Check => Ok(check(&cli.config)),
        Command::Render { destination, file } => render(&cli.config, &destination, &file),
    }
}

fn load(config: &Path) -> anyhow::Result<Prepared> {
    let (settings, text) = crate::config::load(config)?;
    prepare(settings, config, &text)
}

fn serve(config: &Path) -> anyhow::Result<ExitCode> {
    let prepared = load(config)?;
    crate::telemetry::init(&prepared.settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(prepared).await?;
        app.run_until_stopped().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The requests `destination` would send for the hook body `raw`.
fn requests_for(destination: &dyn Destination, raw: &[u8]) -> anyhow::Result<Vec<Request>> {
    let identity = Identity::read(raw)?;
    let stored = Stored {
        key: identity.key,
        version: 1,
        received_at: crate::store::now_ms(),
    };
    let context = context_for(destination, raw, &stored)?;
    let key = idempotency_key(&stored, destination.name());
    let progress = Progress::default();
    let job = Job {
        context: &context,
        conversation: &stored,
        idempotency_key: &key,
        result: None,
        previous: None,
        attempts: 0,
        progress: &progress,
    };
    Ok(destination.requests(&job)?)
}

fn check(config: &Path) -> ExitCode {
    let prepared = match load(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for destination in &prepared.destinations {
        let mut reported: Vec<String> = Vec::new();
        for (sample, json) in crate::samples::SAMPLES {
            if let Err(e) = requests_for(destination.as_ref(), json.as_bytes()) {
                let message = format!("{e:#}");
                if !reported.contains(&message) {
                    eprintln!(
                        "destinations.{}: sample {sample}: {message}",
                        destination.name()
                    );
                    reported.push(message);
                }
                failed = true;
            }
        }
    }
    if failed {
        return ExitCode::FAILURE;
    }
    println!(
        "{}: ok ({} destination(s), each rendered against {} sample conversations)",
        config.display(),
        prepared.destinations.len(),
        crate::samples::SAMPLES.len()
    );
    ExitCode::SUCCESS
}

fn render(config: &Path, name: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let prepared = load(config)?;
    let destination = prepared
        .destinations
        .iter()
        .find(|d| d.name() == name)
        .with_context(|| {
            let known: Vec<&str> = prepared.destinations.iter().map(|d| d.name()).collect();
            format!(
                "no destination {name:?} in {} (known: {})",
                config.display(),
                known.join(", ")
            )
        })?;
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    for request in requests_for(destination.as_ref(), &raw)? {
        print!("{}", request.display_masked());
    }
    Ok(ExitCode::SUCCESS)
}
