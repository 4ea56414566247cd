//! What an attempt's outcome means: where the delivery goes next, and what the answer says
//! about the destination's health. One pure function, so every case is a row in a table test.

use super::backoff;
use crate::destinations::{Delivered, DeliveryError};
use crate::metrics::AttemptOutcome;
use crate::store::Next;
use std::time::Duration;

/// How long a delivery refused for the destination's credentials waits before it may be
/// claimed again (the paused breaker holds it longer; a reload with fixed credentials starts
/// a fresh one).
pub const CREDENTIALS_WAIT: Duration = Duration::from_secs(2);

/// What an attempt's outcome says about the destination as a whole (the breaker's input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It accepted a delivery.
    Up,
    /// An outage that no request would get through: network errors, timeouts, 408, 425, 429,
    /// 5xx, and 401/403 (the credentials or permissions are wrong for every request).
    Down,
    /// The destination refused our credentials: pause it at once, whatever the run so far.
    Refused,
    /// Nothing about the destination: a refusal of this one conversation (400, 404, 422 …), a
    /// template that does not render, a deferral, an attempt that never ran to an answer.
    Unknown,
}

/// The outcome of one attempt, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Where the delivery stands now.
    pub next: Next,
    /// What the breaker hears.
    pub health: Health,
    /// How the metrics count it.
    pub outcome: AttemptOutcome,
}

/// Decides the next state of a delivery after an attempt: `attempts` counts the attempts
/// before this one, `now_ms` is the present, `jitter` a draw in `[0, 1)`. Every wait is
/// clamped ([`backoff::due_at`]), so no answer can schedule a delivery out of reach.
pub fn decide(
    outcome: &Result<Delivered, DeliveryError>,
    attempts: i64,
    schedule: &[Duration],
    now_ms: i64,
    jitter: f64,
) -> Decision {
    let error = match outcome {
        Ok(_) => {
            return Decision {
                next: Next::Done,
                health: Health::Up,
                outcome: AttemptOutcome::Done,
            }
        }
        Err(error) => error,
    };
    match error {
        DeliveryError::Deferred { wait, .. } => Decision {
            next: Next::Defer(backoff::due_at(now_ms, *wait)),
            health: Health::Unknown,
            outcome: AttemptOutcome::Deferred,
        },
        // Every retryable failure (network, timeout, 408, 425, 429, 5xx, a file that cannot
        // be written) would hit the next delivery too.
        DeliveryError::Retryable { retry_after, .. } => {
            match backoff::next_delay(attempts + 1, schedule, *retry_after, jitter) {
                Some(wait) => Decision {
                    next: Next::Retry(backoff::due_at(now_ms, wait)),
                    health: Health::Down,
                    outcome: AttemptOutcome::Retry,
                },
                None => Decision {
                    next: Next::Dead,
                    health: Health::Down,
                    outcome: AttemptOutcome::Dead,
                },
            }
        }
        // Credentials nobody has fixed yet: the delivery waits (no attempt counted) while the
        // breaker keeps the destination paused.
        DeliveryError::Unauthorized { .. } => Decision {
            next: Next::Defer(backoff::due_at(now_ms, CREDENTIALS_WAIT)),
            health: Health::Refused,
            outcome: AttemptOutcome::Deferred,
        },
        DeliveryError::Permanent { status, .. } => Decision {
            next: Next::Dead,
            health: match status {
                Some(401 | 403) => Health::Down,
                _ => Health::Unknown,
            },
            outcome: AttemptOutcome::Dead,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn retryable(status: Option<u16>, retry_after: Option<Duration>) -> DeliveryError {
        DeliveryError::Retryable {
            reason: "r".into(),
            status,
            retry_after,
            excerpt: None,
        }
    }

    fn permanent(status: Option<u16>) -> DeliveryError {
        DeliveryError::Permanent {
            reason: "p".into(),
            status,
            excerpt: None,
        }
    }

    #[test]
    fn every_outcome_has_one_next_state_and_one_health() {
        let schedule = [Duration::from_secs(10), Duration::from_secs(60)];
        let day = Duration::from_secs(86_400);
        /// What happened, its outcome, attempts before it, what follows.
        type Row = (
            &'static str,
            Result<Delivered, DeliveryError>,
            i64,
            Next,
            Health,
        );
        let cases: Vec<Row> = vec![
            (
                "delivered",
                Ok(Delivered::default()),
                0,
                Next::Done,
                Health::Up,
            ),
            (
                "network error, first attempt",
                Err(retryable(None, None)),
                0,
                Next::Retry(NOW + 10_000),
                Health::Down,
            ),
            (
                "503, second attempt",
                Err(retryable(Some(503), None)),
                1,
                Next::Retry(NOW + 60_000),
                Health::Down,
            ),
            (
                "429 with Retry-After longer than the step",
                Err(retryable(Some(429), Some(Duration::from_secs(120)))),
                0,
                Next::Retry(NOW + 120_000),
                Health::Down,
            ),
            (
                "retryable, schedule used up",
                Err(retryable(Some(500), None)),
                2,
                Next::Dead,
                Health::Down,
            ),
            (
                "Retry-After beyond any reason is clamped",
                Err(retryable(Some(503), Some(Duration::from_secs(u64::MAX)))),
                0,
                Next::Retry(NOW + backoff::MAX_WAIT.as_millis() as i64),
                Health::Down,
            ),
            (
                "422: this conversation only",
                Err(permanent(Some(422))),
                0,
                Next::Dead,
                Health::Unknown,
            ),
            (
                "400: this conversation only",
                Err(permanent(Some(400))),
                0,
                Next::Dead,
                Health::Unknown,
            ),
            (
                "401: every request fails",
                Err(permanent(Some(401))),
                0,
                Next::Dead,
                Health::Down,
            ),
            (
                "403: every request fails",
                Err(permanent(Some(403))),
                0,
                Next::Dead,
                Health::Down,
            ),
            (
                "template error",
                Err(permanent(None)),
                0,
                Next::Dead,
                Health::Unknown,
            ),
            (
                "credentials refused",
                Err(DeliveryError::Unauthorized {
                    reason: "invalid_client".into(),
                    status: Some(401),
                }),
                3,
                Next::Defer(NOW + CREDENTIALS_WAIT.as_millis() as i64),
                Health::Refused,
            ),
            (
                "deferred a day",
                Err(DeliveryError::Deferred {
                    reason: "quota".into(),
                    wait: day,
                }),
                5,
                Next::Defer(NOW + 86_400_000),
                Health::Unknown,
            ),
            (
                "deferred beyond reason",
                Err(DeliveryError::Deferred {
                    reason: "quota".into(),
                    wait: Duration::MAX,
                }),
                0,
                Next::Defer(NOW + backoff::MAX_WAIT.as_millis() as i64),
                Health::Unknown,
            ),
        ];
        for (what, outcome, attempts, next, health) in cases {
            let d = decide(&outcome, attempts, &schedule, NOW, 0.0);
            assert_eq!((d.next, d.health), (next, health), "{what}");
        }
    }

    #[test]
    fn outcomes_are_counted_by_kind() {
        let d = decide(&Err(permanent(Some(422))), 0, &[], NOW, 0.0);
        assert_eq!(d.outcome, AttemptOutcome::Dead);
        let d = decide(
            &Err(retryable(None, None)),
            0,
            &[Duration::from_secs(1)],
            NOW,
            0.0,
        );
        assert_eq!(d.outcome, AttemptOutcome::Retry);
    }
}
