//! The assembler: takes conversations whose assembly is due from the store (a settle time
//! after their closing event), completes them from the REST API when a token is set, builds
//! them into the hook's model and commits them like a hook. Everything it works from is in
//! the store, so a crash or restart loses nothing: an unfinished assembly is due again.

use super::ReceiverState;
use crate::smartsupp::events::{assemble, is_closed, ApiData, ApiError, Envelope, Inputs, Source};
use crate::store::events::{Assembly, AssemblyOutcome};
use crate::store::now_ms;
use actix_web::web;
use serde_json::Value;
use std::time::Duration;

/// Conversations taken per pass.
const BATCH: usize = 8;

/// The running assembler task.
pub struct Assembler {
    task: tokio::task::JoinHandle<()>,
}

impl Assembler {
    /// Starts assembling with the receiver's configuration (which reloads swap).
    pub fn start(state: web::Data<ReceiverState>) -> Self {
        Self {
            task: tokio::spawn(run(state)),
        }
    }

    /// Stops; an assembly cut short is due again at the next start.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// How often the store is asked for due assemblies: a quarter of the settle time, between
/// 20 ms and one second.
fn poll_every(settle: Duration) -> Duration {
    (settle / 4).clamp(Duration::from_millis(20), Duration::from_secs(1))
}

async fn run(state: web::Data<ReceiverState>) {
    loop {
        let live = state.live();
        let s = &live.smartsupp;
        let lease = s.api_timeout.0 * 8 + Duration::from_secs(60);
        let claimed = state
            .store
            .claim_assemblies(BATCH, now_ms() + lease.as_millis() as i64)
            .await;
        match claimed {
            Ok(list) if !list.is_empty() => {
                for assembly in list {
                    let outcome = assemble_one(&state, &assembly).await;
                    if let Err(e) = state.store.finish_assembly(&assembly, outcome).await {
                        tracing::warn!(conversation = %assembly.key, error = %e, "assembly not recorded; it will run again");
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read due assemblies; will try again"),
        }
        tokio::time::sleep(poll_every(s.settle.0)).await;
    }
}

#[tracing::instrument(skip_all, fields(conversation = %assembly.key))]
async fn assemble_one(state: &ReceiverState, assembly: &Assembly) -> AssemblyOutcome {
    let live = state.live();
    let retry = |error: String, wait: Duration| AssemblyOutcome::Retry {
        at: now_ms() + wait.as_millis() as i64,
        error,
    };
    let events = match load_events(state, assembly).await {
        Ok(e) => e,
        Err(e) => return retry(e.to_string(), Duration::from_secs(5)),
    };
    if !is_closed(&events) {
        // Reopened since: the next close schedules it again.
        return AssemblyOutcome::Done;
    }
    let api = match &live.api {
        None => None,
        Some(api) => {
            let hint = events
                .iter()
                .find_map(|e| Envelope::of(e).ok().and_then(|e| e.contact_id));
            match api.complete(&assembly.conversation_id, hint).await {
                Ok(data) => Some(data),
                Err(ApiError::NotFound) => Some(ApiData {
                    failed: Some("Smartsupp's API does not know the conversation".into()),
                    ..ApiData::default()
                }),
                Err(ApiError::Retryable {
                    reason,
                    retry_after,
                }) if (assembly.attempts as usize) < live.smartsupp.api_retry_schedule.len() => {
                    let step = live.smartsupp.api_retry_schedule[assembly.attempts as usize].0;
                    let wait = retry_after.map_or(step, |r| r.max(step));
                    tracing::info!(reason = %reason, wait_ms = wait.as_millis() as u64, "Smartsupp API unavailable; assembly retried later");
                    return retry(reason, wait);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Smartsupp API failed; assembling from events alone");
                    Some(ApiData {
                        failed: Some(e.to_string()),
                        ..ApiData::default()
                    })
                }
            }
        }
    };
    let body = assemble(&Inputs {
        account_id: assembly.account_id.clone(),
        conversation_id: assembly.conversation_id.clone(),
        events,
        api,
        source: Source::Events,
    });
    let body = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(e) => return retry(e.to_string(), Duration::from_secs(5)),
    };
    match super::commit_assembled(state, body.into()).await {
        Ok(committed) => {
            state.metrics.assembled();
            tracing::debug!(ingested = ?committed.ingested, "conversation assembled");
            AssemblyOutcome::Done
        }
        Err(e) => {
            tracing::warn!(error = %e, "assembled conversation not committed; will try again");
            retry(e.to_string(), Duration::from_secs(5))
        }
    }
}

/// The conversation's events and its contact's, parsed (unreadable ones are skipped: the
/// route stored only bodies that parse).
async fn load_events(
    state: &ReceiverState,
    assembly: &Assembly,
) -> Result<Vec<Value>, crate::store::StoreError> {
    let parse = |rows: Vec<crate::store::events::StoredEvent>| -> Vec<Value> {
        rows.iter()
            .filter_map(|r| serde_json::from_slice(&r.raw).ok())
            .collect()
    };
    let events = parse(state.store.events(assembly.key.clone(), None).await?);
    let contact = events
        .iter()
        .find_map(|e| Envelope::of(e).ok().and_then(|e| e.contact_id));
    match contact {
        Some(id) => Ok(parse(
            state
                .store
                .events(
                    assembly.key.clone(),
                    Some(format!("{}-{id}", assembly.account_id)),
                )
                .await?,
        )),
        None => Ok(events),
    }
}
