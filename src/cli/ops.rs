//! Operator commands against the configured store, no server needed: `deliveries`,
//! `conversations` and `purge`. Tables for people, `--json` for scripts; exit codes 0 (done),
//! 1 (error), 3 (not found), 4 (refused: deliveries still pending).

use super::runtime;
use crate::app::Prepared;
use crate::config::HumanDuration;
use crate::store::admin::{DeliveryFilter, DeliveryInfo, Erased, Replay, Replayer, Retention};
use crate::store::{now_ms, DeliveryState, Store};
use anyhow::Context as _;
use clap::Subcommand;
use std::process::ExitCode;

/// Exit code: nothing has that id or key.
const NOT_FOUND: u8 = 3;
/// Exit code: refused because deliveries are still pending.
const REFUSED: u8 = 4;

/// `deskbridge deliveries …`
#[derive(Debug, Subcommand)]
pub enum Deliveries {
    /// List deliveries, newest first.
    List {
        /// Only this state: pending, done or dead.
        #[arg(long, value_enum)]
        state: Option<DeliveryState>,
        /// Only this destination.
        #[arg(long)]
        destination: Option<String>,
        /// Only those changed within this long (e.g. 2h, 30m, 7d).
        #[arg(long, value_parser = HumanDuration::parse)]
        since: Option<HumanDuration>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One delivery: its attempts and the request it sends now (secrets masked).
    Show {
        /// Delivery id.
        id: i64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replay deliveries with the current templates and a fresh retry schedule.
    Retry {
        /// Delivery ids (done or dead).
        ids: Vec<i64>,
        /// Every dead delivery (narrowed by --destination and --since).
        #[arg(long, conflicts_with = "ids")]
        dead: bool,
        /// With --dead: only this destination.
        #[arg(long, requires = "dead")]
        destination: Option<String>,
        /// With --dead: only those that died within this long.
        #[arg(long, requires = "dead", value_parser = HumanDuration::parse)]
        since: Option<HumanDuration>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `deskbridge conversations …`
#[derive(Debug, Subcommand)]
pub enum Conversations {
    /// Every version of a conversation with its deliveries.
    Show {
        /// Conversation key (`<accountId>-<channel.id>`).
        key: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Erase a visitor's conversation (every version, delivery and attempt); refused while a
    /// delivery is pending.
    Delete {
        /// Conversation key.
        key: String,
    },
}

fn ago(ms: i64) -> String {
    let seconds = ((now_ms() - ms) / 1000).max(0);
    format!("{} ago", crate::text::human_duration(seconds))
}

fn print_table(rows: &[DeliveryInfo]) {
    println!(
        "{:>8}  {:<24} {:>3}  {:<14} {:<8} {:>8}  {:<14} LAST ERROR",
        "ID", "CONVERSATION", "V", "DESTINATION", "STATE", "ATTEMPTS", "CHANGED"
    );
    for d in rows {
        println!(
            "{:>8}  {:<24} {:>3}  {:<14} {:<8} {:>8}  {:<14} {}",
            d.id,
            d.key,
            d.version,
            d.destination,
            d.state,
            d.attempts,
            ago(d.updated_at),
            d.last_error.as_deref().unwrap_or("")
        );
    }
}

fn since(d: Option<HumanDuration>) -> Option<i64> {
    d.map(|d| d.before(now_ms()))
}

async fn open(prepared: &Prepared) -> anyhow::Result<Store> {
    let s = &prepared.settings.store;
    Store::open(&s.url, 2).await.context("opening the store")
}

/// Runs `deskbridge deliveries …`.
pub fn deliveries(prepared: Prepared, command: Deliveries) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(&prepared).await?;
        match command {
            Deliveries::List { state, destination, since: within, limit, json } => {
                let rows = store
                    .deliveries(DeliveryFilter { state, destination, since: since(within), limit })
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print_table(&rows);
                }
                Ok(ExitCode::SUCCESS)
            }
            Deliveries::Show { id, json } => {
                let Some(view) = crate::admin::views::delivery(&store, &prepared.destinations, None, id).await? else {
                    eprintln!("no delivery {id}");
                    return Ok(ExitCode::from(NOT_FOUND));
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let d = &view.delivery;
                println!("delivery {} of conversation {} v{} to {}: {}", d.id, d.key, d.version, d.destination, d.state);
                println!("attempts: {}, changed {}", d.attempts, ago(d.updated_at));
                if let Some(result) = &d.result {
                    println!("result: {result}");
                }
                for link in &view.links {
                    println!("created {} {}{}", link.label, link.id, link.url.as_deref().map(|u| format!(" {u}")).unwrap_or_default());
                }
                for a in &view.attempts {
                    println!(
                        "  #{} {} {:>6} ms  status {}  {}{}",
                        a.attempt,
                        ago(a.started_at),
                        a.duration_ms,
                        a.status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                        a.error.as_deref().unwrap_or("ok"),
                        a.excerpt.as_deref().map(|e| format!("\n      response: {e}")).unwrap_or_default()
                    );
                }
                for r in &view.replays {
                    println!("  replayed by {} {} (it was {})", r.by, ago(r.at), r.was);
                }
                if let Some(sent) = &view.last_request {
                    println!("\nrequest as last sent:\n{sent}");
                }
                match (&view.request, &view.request_error) {
                    (Some(request), _) => println!("\nrequest as rendered now:\n{request}"),
                    (None, error) => println!("\nthe request cannot be rendered now: {}", error.as_deref().unwrap_or("")),
                }
                Ok(ExitCode::SUCCESS)
            }
            Deliveries::Retry { ids, dead, destination, since: within, json } => {
                if ids.is_empty() && !dead {
                    anyhow::bail!("name delivery ids, or --dead");
                }
                let what = if dead {
                    Replay::Dead { destination, since: since(within) }
                } else {
                    Replay::Ids(ids)
                };
                let n = store.replay(what, Replayer::Cli).await?;
                if json {
                    println!("{}", serde_json::json!({ "replayed": n }));
                } else {
                    println!("{n} deliveries are due again (a running deskbridge picks them up within a second)");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// Runs `deskbridge conversations …`.
pub fn conversations(prepared: Prepared, command: Conversations) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(&prepared).await?;
        match command {
            Conversations::Show { key, json } => {
                let versions = store.conversation(key.clone()).await?;
                if versions.is_empty() {
                    eprintln!("no conversation {key}");
                    return Ok(ExitCode::from(NOT_FOUND));
                }
                if json {
                    let list: Vec<serde_json::Value> = versions
                        .iter()
                        .map(|v| {
                            serde_json::json!({
                                "key": v.key, "version": v.version, "received_at": v.received_at,
                                "client_ip": v.client_ip, "deliveries": v.deliveries,
                                "body": serde_json::from_slice::<serde_json::Value>(&v.raw).unwrap_or(serde_json::Value::Null),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(ExitCode::SUCCESS);
                }
                for v in &versions {
                    println!(
                        "{} v{}: received {} from {} ({} bytes)",
                        v.key,
                        v.version,
                        ago(v.received_at),
                        v.client_ip.as_deref().unwrap_or("?"),
                        v.raw.len()
                    );
                    print_table(&v.deliveries);
                    println!();
                }
                Ok(ExitCode::SUCCESS)
            }
            Conversations::Delete { key } => match store.erase(key.clone()).await? {
                Erased::Deleted(n) => {
                    println!("deleted {n} version(s) of {key} with their deliveries and attempts");
                    Ok(ExitCode::SUCCESS)
                }
                Erased::NotFound => {
                    eprintln!("no conversation {key}");
                    Ok(ExitCode::from(NOT_FOUND))
                }
                Erased::Pending(n) => {
                    eprintln!("{key} has {n} pending deliveries; deleted nothing (retry later)");
                    Ok(ExitCode::from(REFUSED))
                }
            },
        }
    })
}

/// Runs `deskbridge purge`.
pub fn purge(
    prepared: Prepared,
    older_than: Option<HumanDuration>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(&prepared).await?;
        let purged = store.purge(Retention::of(&prepared.settings.store, older_than), dry_run).await?;
        if json {
            println!("{}", serde_json::json!({ "dry_run": dry_run, "conversations": purged.conversations, "deliveries": purged.deliveries, "events": purged.events }));
        } else {
            let verb = if dry_run { "would delete" } else { "deleted" };
            println!("{verb} {} conversation version(s), {} deliveries and {} Smartsupp event(s)", purged.conversations, purged.deliveries, purged.events);
        }
        Ok(ExitCode::SUCCESS)
    })
}
