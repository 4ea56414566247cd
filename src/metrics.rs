//! Prometheus metrics kept in atomics and written as text at `/metrics`.

use crate::store::Stats;
use crate::worker::breaker::State;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// How a hook request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// Stored, deliveries created.
    Accepted,
    /// Identical to a stored version.
    Duplicate,
    /// Bad token.
    Unauthorized,
    /// Refused: too many bad tokens from the client lately.
    Limited,
    /// Not JSON or not an object.
    BadRequest,
    /// JSON object that is not a conversation.
    Unprocessable,
    /// Over `max_body_bytes`.
    TooLarge,
    /// The store could not commit.
    Unavailable,
}

const HOOK_OUTCOMES: [(HookOutcome, &str); 8] = [
    (HookOutcome::Accepted, "accepted"),
    (HookOutcome::Duplicate, "duplicate"),
    (HookOutcome::Unauthorized, "unauthorized"),
    (HookOutcome::Limited, "limited"),
    (HookOutcome::BadRequest, "bad_request"),
    (HookOutcome::Unprocessable, "unprocessable"),
    (HookOutcome::TooLarge, "too_large"),
    (HookOutcome::Unavailable, "unavailable"),
];

impl HookOutcome {
    /// The `outcome` label of `deskbridge_hooks_received_total`.
    pub fn label(self) -> &'static str {
        HOOK_OUTCOMES
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("unknown", |(_, label)| label)
    }
}

/// How a Webhooks API event request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Stored.
    Accepted,
    /// Identical to a stored event.
    Duplicate,
    /// Answered 200 and counted, not stored (`smartsupp.store_events`).
    Ignored,
    /// Refused, as a hook would be (a bad signature counts as unauthorized).
    Refused(HookOutcome),
}

/// Labels of [`EventOutcome`], in exposition order.
const EVENT_OUTCOMES: [&str; 10] = [
    "accepted",
    "duplicate",
    "ignored",
    "unauthorized",
    "limited",
    "bad_request",
    "unprocessable",
    "too_large",
    "unavailable",
    "other",
];

impl EventOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::Refused(o) => HOOK_OUTCOMES
                .iter()
                .find(|(h, _)| *h == o)
                .map(|(_, l)| *l)
                .filter(|l| EVENT_OUTCOMES.contains(l))
                .unwrap_or("other"),
        }
    }
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered.
    Done,
    /// Failed; will be retried.
    Retry,
    /// Failed for good.
    Dead,
    /// Not attempted: the destination is parked.
    Deferred,
}

impl AttemptOutcome {
    /// The `outcome` label of `deskbridge_delivery_attempts_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry => "retry",
            Self::Dead => "dead",
            Self::Deferred => "deferred",
        }
    }
}

/// Upper bounds (seconds) of the attempt duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Upper bounds (seconds) of the hook-to-commit histogram.
const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A destination's health as the lane that delivers it now last announced it, for the
/// dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneHealth {
    /// Delivering, paused or probing.
    pub state: State,
    /// Why it is paused or probing (the error that paused it).
    pub reason: Option<String>,
    /// Since when it is in this state (epoch ms).
    pub since_ms: i64,
    /// When a paused destination sends its probe (epoch ms).
    pub probe_at_ms: Option<i64>,
}

/// The health of a destination and the generation of the lane allowed to change it.
#[derive(Debug)]
struct Health {
    /// Counted up by each new lane of the destination (a reload starts new lanes).
    generation: u64,
    health: LaneHealth,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            generation: 0,
            health: LaneHealth {
                state: State::Closed,
                reason: None,
                since_ms: crate::store::now_ms(),
                probe_at_ms: None,
            },
        }
    }
}

#[derive(Default)]
struct DestinationMetrics {
    done: AtomicU64,
    retry: AtomicU64,
    dead: AtomicU64,
    deferred: AtomicU64,
    state: AtomicU64,
    /// State, reason and times for the dashboard (only the state is exported).
    health: std::sync::Mutex<Health>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// All counters of one process.
pub struct Metrics {
    hooks: [AtomicU64; HOOK_OUTCOMES.len()],
    /// Hook arrival to committed answer, accepted hooks only.
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    commit_count: AtomicU64,
    commit_sum_micros: AtomicU64,
    events: [AtomicU64; EVENT_OUTCOMES.len()],
    /// Conversations waiting for assembly, as last read from the store.
    events_pending: std::sync::atomic::AtomicI64,
    /// Conversations assembled from events (new versions and duplicates).
    assembled: AtomicU64,
    destinations: RwLock<HashMap<String, Arc<DestinationMetrics>>>,
}

impl Metrics {
    /// Counters for the named destinations.
    pub fn new<'a>(destinations: impl IntoIterator<Item = &'a String>) -> Self {
        Self {
            hooks: Default::default(),
            commit_buckets: Default::default(),
            commit_count: AtomicU64::new(0),
            commit_sum_micros: AtomicU64::new(0),
            events: Default::default(),
            events_pending: std::sync::atomic::AtomicI64::new(-1),
            assembled: AtomicU64::new(0),
            destinations: RwLock::new(
                destinations
                    .into_iter()
                    .map(|d| (d.clone(), Arc::default()))
                    .collect(),
            ),
        }
    }

    /// Adds counters for destinations that have none (after a reload); existing counters go
    /// on counting.
    pub fn ensure<'a>(&self, names: impl IntoIterator<Item = &'a String>) {
        let mut map = self.destinations.write().unwrap_or_else(|p| p.into_inner());
        for name in names {
            map.entry(name.clone()).or_default();
        }
    }

    fn destination(&self, name: &str) -> Option<Arc<DestinationMetrics>> {
        self.destinations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Counts one hook request.
    pub fn hook(&self, outcome: HookOutcome) {
        if let Some(i) = HOOK_OUTCOMES.iter().position(|(o, _)| *o == outcome) {
            self.hooks[i].fetch_add(1, Relaxed);
        }
    }

    /// Observes the time from a hook's arrival to its committed answer (accepted hooks).
    pub fn hook_committed(&self, seconds: f64) {
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.commit_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_sum_micros
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// Counts one Webhooks API event request.
    pub fn event(&self, outcome: EventOutcome) {
        let label = outcome.label();
        if let Some(i) = EVENT_OUTCOMES.iter().position(|l| *l == label) {
            self.events[i].fetch_add(1, Relaxed);
        }
    }

    /// Sets the number of conversations waiting for assembly.
    pub fn set_events_pending(&self, n: i64) {
        self.events_pending.store(n, Relaxed);
    }

    /// Counts one conversation assembled from events.
    pub fn assembled(&self) {
        self.assembled.fetch_add(1, Relaxed);
    }

    /// Counts one attempt and its duration.
    pub fn attempt(&self, destination: &str, outcome: AttemptOutcome, seconds: f64) {
        let Some(m) = self.destination(destination) else {
            return;
        };
        match outcome {
            AttemptOutcome::Done => &m.done,
            AttemptOutcome::Retry => &m.retry,
            AttemptOutcome::Dead => &m.dead,
            AttemptOutcome::Deferred => &m.deferred,
        }
        .fetch_add(1, Relaxed);
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                m.buckets[i].fetch_add(1, Relaxed);
            }
        }
        m.count.fetch_add(1, Relaxed);
        m.sum_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    /// A new lane of `destination` starts delivering: its health is `delivering` from now,
    /// and only this lane may change it (the lanes of before a reload, finishing what they
    /// have in flight, can no longer). Returns the lane's generation.
    pub fn lane_started(&self, destination: &str) -> u64 {
        let Some(m) = self.destination(destination) else {
            return 0;
        };
        let mut health = m.health.lock().unwrap_or_else(|p| p.into_inner());
        health.generation += 1;
        health.health = LaneHealth {
            state: State::Closed,
            reason: None,
            since_ms: crate::store::now_ms(),
            probe_at_ms: None,
        };
        m.state.store(State::Closed.gauge(), Relaxed);
        health.generation
    }

    /// Sets a destination's health as the lane of `generation` sees it now (the state is
    /// exported as its [`State::gauge`]); ignored when a newer lane has started since.
    /// Returns whether it was taken.
    pub fn lane_health(
        &self,
        destination: &str,
        generation: u64,
        state: State,
        reason: Option<String>,
        probe_at_ms: Option<i64>,
    ) -> bool {
        let Some(m) = self.destination(destination) else {
            return false;
        };
        let mut health = m.health.lock().unwrap_or_else(|p| p.into_inner());
        if health.generation != generation {
            return false;
        }
        health.health = LaneHealth {
            state,
            reason,
            since_ms: crate::store::now_ms(),
            probe_at_ms,
        };
        m.state.store(state.gauge(), Relaxed);
        true
    }

    /// A destination's health as its current lane last announced it; `None` for a
    /// destination this process does not know.
    pub fn destination_health_of(&self, destination: &str) -> Option<LaneHealth> {
        self.destination(destination).map(|m| {
            m.health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .health
                .clone()
        })
    }

    /// Why a destination is paused, as its lane last said.
    pub fn destination_reason_of(&self, destination: &str) -> Option<String> {
        self.destination_health_of(destination)
            .and_then(|h| h.reason)
    }

    /// A destination's health as its lane last set it; `None` for a destination this process
    /// does not know.
    pub fn destination_state_of(&self, destination: &str) -> Option<State> {
        self.destination(destination)
            .map(|m| State::from_gauge(m.state.load(Relaxed)))
    }

    /// The Prometheus text exposition, with store figures as of `now_ms`.
    pub fn render(&self, stats: Option<Stats>, now_ms: i64) -> String {
        let mut out = String::with_capacity(4096);
        let _ = self.write(&mut out, stats, now_ms);
        out
    }

    fn write(&self, out: &mut String, stats: Option<Stats>, now_ms: i64) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP deskbridge_hooks_received_total Hook requests by outcome."
        )?;
        writeln!(out, "# TYPE deskbridge_hooks_received_total counter")?;
        for (i, (_, label)) in HOOK_OUTCOMES.iter().enumerate() {
            let n = self.hooks[i].load(Relaxed);
            writeln!(
                out,
                "deskbridge_hooks_received_total{{outcome=\"{label}\"}} {n}"
            )?;
        }
        writeln!(out, "# HELP deskbridge_hook_commit_duration_seconds Time from a hook's arrival to its committed answer (accepted hooks).")?;
        writeln!(
            out,
            "# TYPE deskbridge_hook_commit_duration_seconds histogram"
        )?;
        for (i, bound) in COMMIT_BUCKETS.iter().enumerate() {
            let n = self.commit_buckets[i].load(Relaxed);
            writeln!(
                out,
                "deskbridge_hook_commit_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
            )?;
        }
        let count = self.commit_count.load(Relaxed);
        let sum = self.commit_sum_micros.load(Relaxed) as f64 / 1e6;
        writeln!(
            out,
            "deskbridge_hook_commit_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        )?;
        writeln!(out, "deskbridge_hook_commit_duration_seconds_sum {sum}")?;
        writeln!(out, "deskbridge_hook_commit_duration_seconds_count {count}")?;
        writeln!(
            out,
            "# HELP deskbridge_events_received_total Smartsupp Webhooks API event requests by outcome."
        )?;
        writeln!(out, "# TYPE deskbridge_events_received_total counter")?;
        for (i, label) in EVENT_OUTCOMES.iter().enumerate() {
            let n = self.events[i].load(Relaxed);
            writeln!(
                out,
                "deskbridge_events_received_total{{outcome=\"{label}\"}} {n}"
            )?;
        }
        writeln!(
            out,
            "# HELP deskbridge_events_assembled_total Conversations assembled from Smartsupp events."
        )?;
        writeln!(out, "# TYPE deskbridge_events_assembled_total counter")?;
        writeln!(
            out,
            "deskbridge_events_assembled_total {}",
            self.assembled.load(Relaxed)
        )?;
        let waiting = self.events_pending.load(Relaxed);
        if waiting >= 0 {
            writeln!(
                out,
                "# HELP deskbridge_events_pending Conversations closed by Smartsupp events and waiting for assembly."
            )?;
            writeln!(out, "# TYPE deskbridge_events_pending gauge")?;
            writeln!(out, "deskbridge_events_pending {waiting}")?;
        }
        let destinations = self
            .destinations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut names: Vec<&String> = destinations.keys().collect();
        names.sort();
        writeln!(out, "# HELP deskbridge_delivery_attempts_total Delivery attempts by destination and outcome.")?;
        writeln!(out, "# TYPE deskbridge_delivery_attempts_total counter")?;
        for name in &names {
            let m = &destinations[*name];
            for (label, n) in [
                ("done", &m.done),
                ("retry", &m.retry),
                ("dead", &m.dead),
                ("deferred", &m.deferred),
            ] {
                let n = n.load(Relaxed);
                writeln!(out, "deskbridge_delivery_attempts_total{{destination=\"{name}\",outcome=\"{label}\"}} {n}")?;
            }
        }
        writeln!(
            out,
            "# HELP deskbridge_delivery_attempt_duration_seconds Time per delivery attempt."
        )?;
        writeln!(
            out,
            "# TYPE deskbridge_delivery_attempt_duration_seconds histogram"
        )?;
        for name in &names {
            let m = &destinations[*name];
            for (i, bound) in BUCKETS.iter().enumerate() {
                let n = m.buckets[i].load(Relaxed);
                writeln!(out, "deskbridge_delivery_attempt_duration_seconds_bucket{{destination=\"{name}\",le=\"{bound}\"}} {n}")?;
            }
            let count = m.count.load(Relaxed);
            let sum = m.sum_micros.load(Relaxed) as f64 / 1e6;
            writeln!(out, "deskbridge_delivery_attempt_duration_seconds_bucket{{destination=\"{name}\",le=\"+Inf\"}} {count}")?;
            writeln!(
                out,
                "deskbridge_delivery_attempt_duration_seconds_sum{{destination=\"{name}\"}} {sum}"
            )?;
            writeln!(out, "deskbridge_delivery_attempt_duration_seconds_count{{destination=\"{name}\"}} {count}")?;
        }
        writeln!(out, "# HELP deskbridge_destination_state Destination health: 0 delivering, 1 paused by the breaker, 2 probing.")?;
        writeln!(out, "# TYPE deskbridge_destination_state gauge")?;
        for name in &names {
            let n = destinations[*name].state.load(Relaxed);
            writeln!(
                out,
                "deskbridge_destination_state{{destination=\"{name}\"}} {n}"
            )?;
        }
        if let Some(stats) = stats {
            let age = stats
                .oldest_pending
                .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            writeln!(
                out,
                "# HELP deskbridge_deliveries_pending Deliveries not yet done or dead."
            )?;
            writeln!(out, "# TYPE deskbridge_deliveries_pending gauge")?;
            writeln!(out, "deskbridge_deliveries_pending {}", stats.pending)?;
            writeln!(out, "# HELP deskbridge_oldest_pending_delivery_age_seconds Age of the oldest pending delivery.")?;
            writeln!(
                out,
                "# TYPE deskbridge_oldest_pending_delivery_age_seconds gauge"
            )?;
            writeln!(out, "deskbridge_oldest_pending_delivery_age_seconds {age}")?;
        }
        writeln!(
            out,
            "# HELP deskbridge_store_up Whether the store answered this scrape."
        )?;
        writeln!(out, "# TYPE deskbridge_store_up gauge")?;
        writeln!(out, "deskbridge_store_up {}", u8::from(stats.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histogram_and_gauges() {
        let names = vec!["a".to_string()];
        let m = Metrics::new(&names);
        m.hook(HookOutcome::Accepted);
        m.hook_committed(0.003);
        m.attempt("a", AttemptOutcome::Done, 0.02);
        let text = m.render(
            Some(Stats {
                pending: 3,
                oldest_pending: Some(1_000),
            }),
            4_000,
        );
        assert!(text.contains("deskbridge_hooks_received_total{outcome=\"accepted\"} 1"));
        assert!(text
            .contains("deskbridge_delivery_attempts_total{destination=\"a\",outcome=\"done\"} 1"));
        assert!(text.contains("le=\"0.025\"} 1"));
        assert!(text.contains("le=\"0.01\"} 0"));
        assert!(text.contains("deskbridge_deliveries_pending 3"));
        assert!(text.contains("deskbridge_hook_commit_duration_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("deskbridge_hook_commit_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("deskbridge_hook_commit_duration_seconds_count 1"));
        assert_eq!(HookOutcome::TooLarge.label(), "too_large");
        assert!(text.contains("deskbridge_oldest_pending_delivery_age_seconds 3"));
        assert!(!text.contains("deskbridge_events_pending"));
        m.event(EventOutcome::Ignored);
        m.event(EventOutcome::Refused(HookOutcome::Unauthorized));
        m.set_events_pending(2);
        let text = m.render(None, 4_000);
        assert!(text.contains("deskbridge_events_received_total{outcome=\"ignored\"} 1"));
        assert!(text.contains("deskbridge_events_received_total{outcome=\"unauthorized\"} 1"));
        assert!(text.contains("deskbridge_events_pending 2"));
    }

    #[test]
    fn a_lane_from_before_a_reload_no_longer_changes_the_health() {
        let names = vec!["a".to_string()];
        let m = Metrics::new(&names);
        let old = m.lane_started("a");
        assert!(m.lane_health("a", old, State::Open, Some("HTTP 503".into()), Some(5)));
        let new = m.lane_started("a");
        let fresh = m.destination_health_of("a").unwrap();
        assert_eq!((fresh.state, fresh.reason), (State::Closed, None));
        // The old lane's last attempt ends after the reload: it says nothing any more.
        assert!(!m.lane_health("a", old, State::Open, Some("late".into()), None));
        assert_eq!(m.destination_state_of("a"), Some(State::Closed));
        assert!(m.lane_health("a", new, State::HalfOpen, Some("x".into()), None));
        assert_eq!(m.destination_state_of("a"), Some(State::HalfOpen));
        assert_eq!(m.destination_reason_of("a").as_deref(), Some("x"));
    }
}
