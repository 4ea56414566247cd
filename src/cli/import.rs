//! `deskbridge import smartsupp`: pages through the REST API's finished conversations, fetches
//! each one's messages and contact, and commits them through the same assembly and store as
//! events. Resumable (a cursor in the store), paced, never a second copy of a conversation
//! already received by hook or as events.

use crate::app::Prepared;
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::receiver::{commit_assembled, ReceiverState};
use crate::smartsupp::events::{assemble, Api, ApiError, Inputs, Source};
use crate::store::{Ingested, Store};
use crate::worker::Wakers;
use anyhow::Context as _;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The cursor's name in the store.
const CURSOR: &str = "smartsupp";
/// Conversations asked for per search page.
const PAGE: u32 = 50;

/// `import` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Import {
    /// Backfill finished Smartsupp conversations through the REST API (smartsupp.api_token).
    Smartsupp {
        /// Conversations created within this long before now (e.g. 30d, 12h).
        #[arg(long, default_value = "30d", value_parser = crate::config::HumanDuration::parse)]
        since: crate::config::HumanDuration,
        /// Only conversations created before this (RFC 3339, or a duration before now).
        #[arg(long)]
        until: Option<String>,
        /// Show what would be imported; store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Forget an unfinished import and start over.
        #[arg(long)]
        restart: bool,
        /// Smartsupp's account id, when the API's answers do not carry it (it keys
        /// conversations: `<account id>-<conversation id>`, as events do).
        #[arg(long)]
        account_id: Option<String>,
    },
}

/// Where an import stands, saved after every page.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Cursor {
    since: i64,
    until: i64,
    after: Option<Value>,
    pages: u64,
    imported: u64,
    skipped: u64,
    total: Option<u64>,
}

fn parse_until(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(d) = crate::config::HumanDuration::parse(text) {
        return Ok(d.before(now));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("--until {text:?} is neither RFC 3339 nor a duration such as 7d"))
}

/// Runs the import.
pub fn run(prepared: Prepared, command: Import) -> anyhow::Result<ExitCode> {
    let Import::Smartsupp {
        since,
        until,
        dry_run,
        restart,
        account_id,
    } = command;
    let settings = prepared.settings.clone();
    let api = Api::from_settings(&settings.smartsupp)?
        .context("smartsupp.api_token is not set: the import reads Smartsupp's REST API")?;
    super::runtime()?.block_on(async move {
        let store = Store::open(&settings.store.url, 2)
            .await
            .context("opening the store")?;
        let now = crate::store::now_ms();
        let fresh = Cursor {
            since: since.before(now),
            until: match &until {
                Some(u) => parse_until(u, now)?,
                None => now,
            },
            after: None,
            pages: 0,
            imported: 0,
            skipped: 0,
            total: None,
        };
        if restart && !dry_run {
            store.save_import_cursor(CURSOR.into(), None).await?;
        }
        let saved = store
            .import_cursor(CURSOR.into())
            .await?
            .and_then(|c| serde_json::from_str::<Cursor>(&c).ok());
        let mut cursor = match saved {
            Some(c) if !dry_run => {
                eprintln!(
                    "resuming the import of conversations created {} – {} after {} page(s) ({} imported, {} skipped); --restart starts over",
                    iso(c.since),
                    iso(c.until),
                    c.pages,
                    c.imported,
                    c.skipped
                );
                c
            }
            _ => fresh,
        };
        let names: Vec<String> = settings.destinations.keys().cloned().collect();
        let state = ReceiverState::new(
            &settings,
            store.clone(),
            prepared.renderer.clone(),
            std::sync::Arc::new(Metrics::new(&names)),
            Wakers::new(&names),
            std::sync::Arc::new(Limiter::default()),
            None,
        );
        let progress = Progress::new(std::io::stderr().is_terminal());
        let retries = settings.smartsupp.api_retry_schedule.clone();
        let mut agents: Option<std::collections::HashMap<String, String>> = None;
        loop {
            let page = with_retries(&retries, || {
                api.search(cursor.since, cursor.until, PAGE, cursor.after.as_ref())
            })
            .await
            .context("searching conversations")?;
            if cursor.total.is_none() {
                cursor.total = page["total"].as_u64();
            }
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if agents.is_none() {
                agents = Some(with_retries(&retries, || api.agents()).await.unwrap_or_default());
            }
            for item in &items {
                let Some(id) = item.get("id").and_then(crate::smartsupp::events::envelope::id_of) else {
                    continue;
                };
                let account = item
                    .get("account_id")
                    .and_then(crate::smartsupp::events::envelope::id_of)
                    .or_else(|| account_id.clone())
                    .context("the API's conversations carry no account_id: give --account-id (as events name it)")?;
                let key = format!("{account}-{id}");
                if store.conversation_known(key.clone()).await? {
                    cursor.skipped += 1;
                    progress.show(&cursor);
                    continue;
                }
                let messages = with_retries(&retries, || api.messages(&id)).await?;
                let contact_id = item.get("contact_id").and_then(crate::smartsupp::events::envelope::id_of);
                let contact = match contact_id {
                    Some(cid) => match with_retries(&retries, || api.contact(&cid)).await {
                        Ok(c) => crate::smartsupp::events::ContactLookup::Found(c),
                        Err(ApiError::NotFound) => crate::smartsupp::events::ContactLookup::NotFound,
                        Err(e) => return Err(e.into()),
                    },
                    None => crate::smartsupp::events::ContactLookup::NotAsked,
                };
                let body = assemble(&Inputs {
                    account_id: account,
                    conversation_id: id.clone(),
                    events: Vec::new(),
                    api: Some(crate::smartsupp::events::ApiData {
                        conversation: Some(item.clone()),
                        messages: Some(messages),
                        contact,
                        agents: agents.clone().unwrap_or_default(),
                        failed: None,
                    }),
                    source: Source::Import,
                });
                if dry_run {
                    println!("{}", json!({"conversation": key, "messages": body["messages"].as_array().map_or(0, Vec::len), "visitor": body["visitor"]["name"]}));
                    cursor.imported += 1;
                    continue;
                }
                let committed = commit_assembled(&state, serde_json::to_vec(&body)?.into())
                    .await
                    .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
                match committed.ingested {
                    Ingested::Accepted { .. } => cursor.imported += 1,
                    Ingested::Duplicate => cursor.skipped += 1,
                }
                progress.show(&cursor);
            }
            cursor.pages += 1;
            cursor.after = page.get("after").filter(|a| !a.is_null()).cloned();
            let finished = items.is_empty() || cursor.after.is_none();
            if !dry_run {
                let saved = (!finished).then(|| serde_json::to_string(&cursor)).transpose()?;
                store.save_import_cursor(CURSOR.into(), saved).await?;
            }
            progress.show(&cursor);
            if finished {
                break;
            }
        }
        progress.done();
        println!(
            "{}: {} conversation(s) {}, {} skipped (already received by hook, as events or imported)",
            if dry_run { "dry run" } else { "import finished" },
            cursor.imported,
            if dry_run { "would be imported" } else { "imported" },
            cursor.skipped
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `call`, waiting out retryable failures along `schedule` (never sooner than the
/// server's `Retry-After`).
async fn with_retries<T, F, Fut>(
    schedule: &[crate::config::HumanDuration],
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut step = 0;
    loop {
        match call().await {
            Err(ApiError::Retryable {
                reason,
                retry_after,
            }) if step < schedule.len() => {
                let wait = retry_after.map_or(schedule[step].0, |r| r.max(schedule[step].0));
                tracing::info!(reason = %reason, "Smartsupp API unavailable; waiting");
                tokio::time::sleep(wait).await;
                step += 1;
            }
            other => return other,
        }
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Progress on a terminal: count, rate and ETA on one line.
struct Progress {
    terminal: bool,
    started: Instant,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            started: Instant::now(),
        }
    }

    fn show(&self, c: &Cursor) {
        if !self.terminal {
            return;
        }
        let done = c.imported + c.skipped;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = match (c.total, rate > 0.0) {
            (Some(total), true) if total > done => {
                let left = Duration::from_secs_f64((total - done) as f64 / rate);
                format!(", about {}s left", left.as_secs())
            }
            _ => String::new(),
        };
        let total = c.total.map(|t| format!("/{t}")).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{done}{total} conversations ({} imported, {} skipped), {rate:.1}/s{eta}   ",
            c.imported, c.skipped
        );
        let _ = err.flush();
    }

    fn done(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}
