//! Command line: `serve`, `check`, `render`, `migrate`, the operator commands of [`ops`],
//! and `destinations test` ([`destinations`]). Every subcommand takes `--config PATH`.

mod destinations;
mod ops;

use crate::app::{prepare, Application, Prepared, Role};
use crate::destinations::{preview, Destination};
use crate::smartsupp::{self, Identity, Stored};
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::io::Write;
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
    Serve {
        /// What this instance does (several instances share a PostgreSQL store).
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply the store's migrations and exit (serve applies them too).
    Migrate,
    /// Inspect and replay deliveries.
    #[command(subcommand)]
    Deliveries(ops::Deliveries),
    /// Inspect or erase conversations.
    #[command(subcommand)]
    Conversations(ops::Conversations),
    /// Prove destinations' credentials.
    #[command(subcommand)]
    Destinations(destinations::Destinations),
    /// Delete what the retention rules allow (store.retention, store.dead_retention).
    Purge {
        /// Delete conversations older than this instead of store.retention (e.g. 7d).
        #[arg(long, value_parser = crate::config::HumanDuration::parse)]
        older_than: Option<crate::config::HumanDuration>,
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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
        /// As a later version of the conversation, whose first version was delivered (a
        /// Zendesk comment, a HubSpot note, a recipe's `update` steps), with placeholders for
        /// what the first delivery recorded.
        #[arg(long)]
        later: bool,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { role } => serve(&cli.config, role),
        Command::Migrate => migrate(&cli.config),
        Command::Deliveries(command) => ops::deliveries(load(&cli.config)?, command),
        Command::Conversations(command) => ops::conversations(load(&cli.config)?, command),
        Command::Destinations(command) => destinations::run(load(&cli.config)?, command),
        Command::Purge {
            older_than,
            dry_run,
            json,
        } => ops::purge(load(&cli.config)?, older_than, dry_run, json),
        Command::Check => Ok(check(&cli.config)),
        Command::Render {
            destination,
            file,
            later,
        } => render(&cli.config, &destination, &file, later),
    }
}

fn load(config: &Path) -> anyhow::Result<Prepared> {
    let (settings, text) = crate::config::load(config)?;
    prepare(settings, config, &text)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn migrate(config: &Path) -> anyhow::Result<ExitCode> {
    let (settings, _) = crate::config::load(config)?;
    runtime()?.block_on(async {
        crate::store::Store::open(&settings.store.url, 1)
            .await
            .context("opening the store")
    })?;
    println!("{}: the store is migrated", config.display());
    Ok(ExitCode::SUCCESS)
}

fn serve(config: &Path, role: Role) -> anyhow::Result<ExitCode> {
    let prepared = load(config)?;
    crate::telemetry::init(&prepared.settings.log);
    runtime()?.block_on(async {
        let app = Application::build(prepared, role).await?;
        app.run_until_stopped().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Every way the destination can fail on the bundled samples: its `when` expression, its
/// requests for a first version, and (where it differs) for a later version.
fn sample_problems(prepared: &Prepared, destination: &dyn Destination) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    let mut report = |sample: &str, message: String| {
        let line = format!(
            "destinations.{}: sample {sample}: {message}",
            destination.name()
        );
        if !problems.iter().any(|p| p.ends_with(&message)) {
            problems.push(line);
        }
    };
    let has_when = prepared
        .settings
        .destinations
        .get(destination.name())
        .and_then(|d| d.when())
        .is_some();
    for (sample, json) in crate::samples::SAMPLES {
        let raw = json.as_bytes();
        if has_when {
            let routed = Identity::read(raw)
                .map_err(anyhow::Error::from)
                .and_then(|id| {
                    let stored = Stored {
                        key: id.key,
                        version: 0,
                        received_at: 0,
                    };
                    let context = handlebars::Context::from(smartsupp::context(raw, &stored)?);
                    Ok(prepared.renderer.matches(destination.name(), &context)?)
                });
            if let Err(e) = routed {
                report(sample, format!("when: {e:#}"));
            }
        }
        if let Err(e) = preview(destination, raw, None) {
            report(sample, format!("{e:#}"));
        }
        if let Some(previous) = destination.sample_previous() {
            if let Err(e) = preview(destination, raw, Some(&previous)) {
                report(sample, format!("as a later version: {e:#}"));
            }
        }
    }
    problems
}

fn check(config: &Path) -> ExitCode {
    let prepared = match load(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = std::fs::read_to_string(config).unwrap_or_default();
    for warning in destinations::warnings(config, &prepared, &text) {
        eprintln!("{warning}");
    }
    let mut failed = false;
    for destination in &prepared.destinations {
        for problem in sample_problems(&prepared, destination.as_ref()) {
            eprintln!("{problem}");
            failed = true;
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

fn render(config: &Path, name: &str, file: &Path, later: bool) -> anyhow::Result<ExitCode> {
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
    let previous = if later {
        Some(destination.sample_previous().with_context(|| {
            format!("{name}: a later version sends the same requests as the first")
        })?)
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    for request in preview(destination.as_ref(), &raw, previous.as_deref())? {
        // A closed pipe (`render … | head`) is not an error worth a panic.
        if out.write_all(request.display_masked().as_bytes()).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
