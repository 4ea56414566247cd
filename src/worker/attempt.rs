//! One attempt: build the context, let the destination deliver, decide what comes next, and
//! record it.

use super::backoff;
use crate::destinations::{
    context_for, idempotency_key, Delivered, DeliveryError, Destination, Job, Progress,
};
use crate::metrics::{AttemptOutcome, Metrics};
use crate::store::{now_ms, AttemptRecord, Claimed, Next, Store};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Attempts `claimed` once at `destination` and records the outcome. As soon as the
/// destination has answered, `answered` hears how the attempt ended and `slot` (one of the
/// destination's concurrent deliveries) is given back, before the outcome is committed.
#[tracing::instrument(skip_all, fields(
    conversation = %claimed.conversation.key,
    version = claimed.conversation.version,
    destination = destination.name(),
    attempt = claimed.attempts + 1,
))]
pub async fn attempt(
    store: &Store,
    destination: &dyn Destination,
    claimed: Claimed,
    schedule: &[Duration],
    metrics: &Metrics,
    slot: OwnedSemaphorePermit,
    answered: impl FnOnce(AttemptOutcome),
) {
    let started_at = now_ms();
    let clock = Instant::now();
    let progress = Progress::default();
    let outcome = deliver(destination, &claimed, &progress).await;
    let elapsed = clock.elapsed();
    let attempts = claimed.attempts + 1;
    let mut record = AttemptRecord {
        started_at,
        duration_ms: elapsed.as_millis() as i64,
        ..AttemptRecord::default()
    };
    let (next, result, metric) = match outcome {
        Ok(Delivered {
            status,
            excerpt,
            result,
        }) => {
            record.status = status;
            record.excerpt = excerpt;
            tracing::info!(status, "delivered");
            (Next::Done, result, AttemptOutcome::Done)
        }
        Err(error) => {
            record.status = error.status();
            record.excerpt = error.excerpt().map(str::to_string);
            // Destinations leave URLs out of their errors; a URL quoted by anything else is
            // masked before it reaches the attempt log and the logs.
            let reason = crate::redact::urls_in(&error.to_string());
            record.error = Some(reason.clone());
            let delay = match &error {
                DeliveryError::Retryable { retry_after, .. } => {
                    backoff::next_delay(attempts, schedule, *retry_after, fastrand::f64())
                }
                DeliveryError::Deferred { wait, .. } => {
                    tracing::warn!(error = %reason, wait_ms = wait.as_millis() as u64, "not attempted; deferred");
                    let at = now_ms() + wait.as_millis() as i64;
                    answered(AttemptOutcome::Deferred);
                    drop(slot);
                    metrics.attempt(
                        destination.name(),
                        AttemptOutcome::Deferred,
                        elapsed.as_secs_f64(),
                    );
                    record_or_warn(store, claimed.id, record, Next::Defer(at), progress.take())
                        .await;
                    return;
                }
                DeliveryError::Permanent { .. } => None,
            };
            match delay {
                Some(wait) => {
                    tracing::warn!(error = %reason, retry_in_ms = wait.as_millis() as u64, "attempt failed; will retry");
                    let at = now_ms() + wait.as_millis() as i64;
                    (Next::Retry(at), progress.take(), AttemptOutcome::Retry)
                }
                None => {
                    tracing::error!(error = %reason, "delivery is dead; fix the cause and replay it");
                    (Next::Dead, progress.take(), AttemptOutcome::Dead)
                }
            }
        }
    };
    answered(metric);
    drop(slot);
    metrics.attempt(destination.name(), metric, elapsed.as_secs_f64());
    record_or_warn(store, claimed.id, record, next, result).await;
}

async fn record_or_warn(
    store: &Store,
    id: i64,
    record: AttemptRecord,
    next: Next,
    result: Option<String>,
) {
    if let Err(e) = store.record(id, record, next, result).await {
        // The lease runs out and the delivery is attempted again: at least once, never lost.
        tracing::error!(error = %e, "cannot record the attempt; the delivery will be retried when its lease ends");
    }
}

async fn deliver(
    destination: &dyn Destination,
    claimed: &Claimed,
    progress: &Progress,
) -> Result<Delivered, DeliveryError> {
    let context = context_for(destination, &claimed.raw, &claimed.conversation).map_err(|e| {
        DeliveryError::Permanent {
            reason: format!("the stored body is not a conversation: {e}"),
            status: None,
            excerpt: None,
        }
    })?;
    let key = idempotency_key(&claimed.conversation, destination.name());
    let job = Job {
        context: &context,
        conversation: &claimed.conversation,
        idempotency_key: &key,
        result: claimed.result.as_deref(),
        previous: claimed.previous.as_deref(),
        attempts: claimed.attempts,
        retried: claimed.attempts > 0 || claimed.claims > 0,
        progress,
    };
    destination.deliver(&job).await
}
