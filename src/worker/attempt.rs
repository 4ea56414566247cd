//! One attempt: build the context, let the destination deliver, decide what comes next; and
//! recording the outcome under the claim the attempt ran with.

use super::decide::{decide, Decision, Health};
use crate::destinations::{
    context_for, idempotency_key, recording_sent, sent_text, Delivered, DeliveryError, Destination,
    Job, Progress, SentLog,
};
use crate::store::{now_ms, AttemptRecord, Claimed, Next, Store};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// An attempt that has run: what was decided and what to record.
#[derive(Debug)]
pub struct Finished {
    /// Next state, health and metric.
    pub decision: Decision,
    /// The attempt log entry.
    pub record: AttemptRecord,
    /// What the destination recorded of its progress (JSON).
    pub result: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Attempts `claimed` once at `destination` and decides the outcome; records nothing but the
/// progress a multi-step destination keeps in `progress` as it goes. A panic
/// inside the destination is caught and becomes a failed attempt (retried on the schedule,
/// saying nothing about the destination's health), so the delivery never stays leased.
#[tracing::instrument(skip_all, fields(
    conversation = %claimed.conversation.key.escape_debug(),
    version = claimed.conversation.version,
    destination = destination.name(),
    attempt = claimed.attempts + 1,
    trace_id = tracing::field::Empty,
))]
pub async fn attempt(
    destination: &dyn Destination,
    claimed: &Claimed,
    schedule: &[Duration],
    progress: Progress,
) -> Finished {
    if let Some(trace_id) = crate::telemetry::trace::current_trace_id() {
        tracing::Span::current().record("trace_id", trace_id);
    }
    let started_at = now_ms();
    let clock = Instant::now();
    let sent = SentLog::default();
    let outcome = AssertUnwindSafe(recording_sent(
        sent.clone(),
        deliver(destination, claimed, &progress),
    ))
    .catch_unwind()
    .await;
    let elapsed = clock.elapsed();
    let (outcome, panicked) = match outcome {
        Ok(outcome) => (outcome, false),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(panic = %what, "the attempt panicked; this is a bug in deskbridge");
            let error = DeliveryError::Retryable {
                reason: format!(
                    "the attempt stopped on an internal error ({what}); it will be retried"
                ),
                status: None,
                retry_after: None,
                excerpt: None,
            };
            (Err(error), true)
        }
    };
    let mut decision = decide(
        &outcome,
        claimed.attempts,
        schedule,
        now_ms(),
        fastrand::f64(),
    );
    if panicked {
        decision.health = Health::Unknown;
    }
    let mut record = AttemptRecord {
        started_at,
        duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        // What this attempt sent, exactly, for the admin while the delivery is not done (a
        // delivered one keeps none).
        request: (decision.next != Next::Done)
            .then(|| sent_text(&sent))
            .flatten(),
        ..AttemptRecord::default()
    };
    let result = match outcome {
        Ok(Delivered {
            status,
            excerpt,
            result,
        }) => {
            record.status = status;
            record.excerpt = excerpt;
            tracing::info!(status, "delivered");
            result
        }
        Err(error) => {
            record.status = error.status();
            record.excerpt = error.excerpt().map(str::to_string);
            // Destinations leave URLs out of their errors; a URL quoted by anything else is
            // masked before it reaches the attempt log and the logs.
            let reason = crate::redact::urls_in(&error.to_string());
            log_failure(&reason, &decision);
            record.error = Some(reason);
            progress.take()
        }
    };
    Finished {
        decision,
        record,
        result,
        elapsed,
    }
}

fn log_failure(error: &str, decision: &Decision) {
    let in_ms = |at: i64| (at - now_ms()).max(0);
    match decision.next {
        Next::Defer(at) => {
            tracing::warn!(error = %error, wait_ms = in_ms(at), "not attempted; deferred")
        }
        Next::Retry(at) => {
            tracing::warn!(error = %error, retry_in_ms = in_ms(at), "attempt failed; will retry")
        }
        Next::Dead | Next::Done => {
            tracing::error!(error = %error, "delivery is dead; fix the cause and replay it")
        }
    }
}

/// Records `finished` for delivery `id` under claim number `claim`. A claim that is no longer
/// held (the lease ran out and the delivery was claimed again) writes nothing: the newer claim
/// owns the delivery and records its own attempt.
pub async fn record(store: &Store, id: i64, claim: i64, finished: Finished) {
    match store
        .record(
            id,
            claim,
            finished.record,
            finished.decision.next,
            finished.result,
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            delivery = id,
            "the attempt outlived its lease and the delivery was claimed again; its outcome is not recorded"
        ),
        // The lease runs out and the delivery is attempted again: at least once, never lost.
        Err(e) => tracing::error!(error = %e, "cannot record the attempt; the delivery will be retried when its lease ends"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::{BoxFuture, Request};
    use crate::render::RenderError;
    use crate::smartsupp::Stored;

    struct Panicking;

    impl Destination for Panicking {
        fn name(&self) -> &str {
            "panicking"
        }
        fn requests(&self, _: &Job<'_>) -> Result<Vec<Request>, RenderError> {
            Ok(Vec::new())
        }
        fn deliver<'a>(
            &'a self,
            _: &'a Job<'a>,
        ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
            Box::pin(async { panic!("a bug") })
        }
    }

    /// Sends one request with a secret header, which the destination refuses.
    struct Refusing;

    impl Destination for Refusing {
        fn name(&self) -> &str {
            "refusing"
        }
        fn requests(&self, _: &Job<'_>) -> Result<Vec<Request>, RenderError> {
            Ok(vec![Request {
                method: "POST".into(),
                url: "https://example.com/in".into(),
                headers: vec![("x-api-key".into(), "s3cret".into(), true)],
                body: "{\"as\":\"sent\"}".into(),
                secret_path: false,
            }])
        }
        fn deliver<'a>(
            &'a self,
            job: &'a Job<'a>,
        ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
            Box::pin(async move {
                for request in self.requests(job)? {
                    crate::destinations::note_sent(&request);
                }
                Err(DeliveryError::Permanent {
                    reason: "HTTP 422".into(),
                    status: Some(422),
                    excerpt: None,
                })
            })
        }
    }

    fn claimed() -> Claimed {
        Claimed {
            id: 1,
            destination: "panicking".into(),
            attempts: 0,
            claims: 0,
            conversation: Stored {
                key: "1-1".into(),
                version: 1,
                received_at: 0,
            },
            raw: bytes::Bytes::from_static(br#"{"accountId":1,"channel":{"id":1}}"#),
            result: None,
            previous: None,
        }
    }

    #[tokio::test]
    async fn an_attempt_keeps_what_it_sent_masked() {
        let finished = attempt(&Refusing, &claimed(), &[], Progress::default()).await;
        let sent = finished.record.request.unwrap_or_default();
        assert!(sent.starts_with("POST https://example.com/in\n"), "{sent}");
        assert!(
            sent.contains("x-api-key: ***") && sent.contains("{\"as\":\"sent\"}"),
            "{sent}"
        );
        assert!(!sent.contains("s3cret"), "{sent}");
        let nothing = attempt(
            &Panicking,
            &claimed(),
            &[Duration::from_secs(1)],
            Progress::default(),
        )
        .await;
        assert_eq!(nothing.record.request, None, "nothing was sent");
    }

    #[tokio::test]
    async fn a_panicking_attempt_becomes_a_retry_that_says_nothing_about_health() {
        let claimed = claimed();
        let finished = attempt(
            &Panicking,
            &claimed,
            &[Duration::from_secs(10)],
            Progress::default(),
        )
        .await;
        assert!(matches!(finished.decision.next, Next::Retry(_)));
        assert_eq!(finished.decision.health, Health::Unknown);
        let error = finished.record.error.unwrap_or_default();
        assert!(error.contains("a bug"), "{error}");
    }
}
