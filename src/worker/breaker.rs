//! The circuit breaker of one destination: a run of outages pauses it, a probe after a
//! cool-down tests it, and a success resumes it. A small state machine that every attempt
//! outcome moves ([`Health`]); answers that say nothing about the destination (a refusal of
//! one conversation, a deferral) never pause it. Pure state, driven by the lane.

pub use super::decide::Health;
use crate::config::BreakerSettings;
use std::time::Duration;
use tokio::time::Instant;

/// Where a destination stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Delivering.
    Closed,
    /// Paused: nothing is claimed until the cool-down ends.
    Open,
    /// One delivery is probing the destination.
    HalfOpen,
}

impl State {
    /// The word used in logs, alerts and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "delivering",
            Self::Open => "paused",
            Self::HalfOpen => "probing",
        }
    }
    /// The metric value: 0 delivering, 1 paused, 2 probing.
    pub fn gauge(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
    /// The state of a metric value ([`State::gauge`]); anything else reads as delivering.
    pub fn from_gauge(gauge: u64) -> Self {
        match gauge {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// What the lane may claim now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// As much as it has room for.
    Any,
    /// Exactly one delivery, the probe.
    Probe,
    /// Nothing before this time.
    WaitUntil(Instant),
}

/// A run of outages, a cool-down and a probe.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    state: State,
    opened_at: Instant,
    /// Whether the probe of the half-open state is in flight.
    probing: bool,
    /// Why it opened: the error of the attempt that paused it.
    reason: Option<String>,
}

/// Short wait while a probe is in flight.
const PROBE_POLL: Duration = Duration::from_millis(50);

impl Breaker {
    /// A closed breaker; `failures: 0` never opens on a run of outages (refused credentials
    /// still pause at once).
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            threshold: settings.failures,
            cool_down: settings.cool_down.0,
            failures: 0,
            state: State::Closed,
            opened_at: Instant::now(),
            probing: false,
            reason: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What may be claimed at `now`; the new state when the cool-down just ended.
    pub fn admit(&mut self, now: Instant) -> (Admit, Option<State>) {
        match self.state {
            State::Closed => (Admit::Any, None),
            State::Open => match self.opened_at.checked_add(self.cool_down) {
                Some(until) if now < until => (Admit::WaitUntil(until), None),
                _ => {
                    self.state = State::HalfOpen;
                    self.probing = false;
                    (Admit::Probe, Some(State::HalfOpen))
                }
            },
            State::HalfOpen if self.probing => (Admit::WaitUntil(now + PROBE_POLL), None),
            State::HalfOpen => (Admit::Probe, None),
        }
    }

    /// The probe was claimed and started: nothing more is claimed until its outcome.
    pub fn probe_started(&mut self) {
        if self.state == State::HalfOpen {
            self.probing = true;
        }
    }

    /// Moves on the outcome of an attempt (`probe`: whether it was the half-open state's
    /// probe; `why`: its error); the new state when it changed. Every outcome of a probe ends
    /// the probe: an answer that says nothing about the destination (a deferral, a refusal of
    /// one conversation, a panic) lets the next delivery probe instead. Refused credentials
    /// pause at once.
    pub fn record(
        &mut self,
        health: Health,
        probe: bool,
        now: Instant,
        why: Option<&str>,
    ) -> Option<State> {
        if probe {
            self.probing = false;
        }
        if matches!(health, Health::Down | Health::Refused) && self.state != State::Open {
            self.reason = why.map(str::to_string);
        }
        match (health, self.state) {
            (Health::Refused, State::Closed | State::HalfOpen) => {
                self.failures = self.failures.saturating_add(1);
                Some(self.open(now))
            }
            (Health::Refused, State::Open) => None,
            (Health::Up, State::Closed) => {
                self.failures = 0;
                None
            }
            (Health::Up, State::Open | State::HalfOpen) => {
                self.failures = 0;
                self.reason = None;
                self.state = State::Closed;
                Some(State::Closed)
            }
            (Health::Down, State::Closed) => {
                self.failures = self.failures.saturating_add(1);
                (self.threshold > 0 && self.failures >= self.threshold).then(|| self.open(now))
            }
            // Only the probe's outage re-opens; a late outcome of an attempt that started
            // before the pause says nothing new.
            (Health::Down, State::HalfOpen) if probe => {
                self.failures = self.failures.saturating_add(1);
                Some(self.open(now))
            }
            (Health::Down, _) | (Health::Unknown, _) => None,
        }
    }

    fn open(&mut self, now: Instant) -> State {
        self.state = State::Open;
        self.opened_at = now;
        self.probing = false;
        State::Open
    }

    /// Outages in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When a paused destination's cool-down ends and its probe may be sent; `None` unless
    /// paused.
    pub fn probe_at(&self) -> Option<Instant> {
        match self.state {
            State::Open => self.opened_at.checked_add(self.cool_down),
            State::Closed | State::HalfOpen => None,
        }
    }

    /// Why the destination is paused or probing (the error that paused it).
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings {
            failures: 3,
            cool_down: HumanDuration(Duration::from_secs(30)),
        })
    }

    fn opened(t: Instant) -> Breaker {
        let mut b = breaker();
        for _ in 0..3 {
            b.record(Health::Down, false, t, None);
        }
        assert_eq!(b.state(), State::Open);
        b
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_a_run_probes_after_the_cool_down_and_closes_on_success() {
        let mut b = breaker();
        let t = Instant::now();
        assert_eq!(b.record(Health::Down, false, t, None), None);
        assert_eq!(
            b.record(Health::Up, false, t, None),
            None,
            "a success resets the run"
        );
        assert_eq!(b.record(Health::Down, false, t, None), None);
        assert_eq!(b.record(Health::Down, false, t, None), None);
        assert_eq!(b.record(Health::Down, false, t, None), Some(State::Open));
        assert_eq!(
            b.admit(t + Duration::from_secs(10)).0,
            Admit::WaitUntil(t + Duration::from_secs(30))
        );
        assert_eq!(
            b.admit(t + Duration::from_secs(30)),
            (Admit::Probe, Some(State::HalfOpen))
        );
        b.probe_started();
        assert!(matches!(
            b.admit(t + Duration::from_secs(31)).0,
            Admit::WaitUntil(_)
        ));
        assert_eq!(
            b.record(Health::Up, true, t + Duration::from_secs(32), None),
            Some(State::Closed)
        );
        assert_eq!(b.admit(t + Duration::from_secs(33)).0, Admit::Any);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_pauses_again() {
        let t = Instant::now();
        let mut b = opened(t);
        let later = t + Duration::from_secs(30);
        b.admit(later);
        b.probe_started();
        assert_eq!(b.record(Health::Down, true, later, None), Some(State::Open));
        assert_eq!(
            b.admit(later + Duration::from_secs(1)).0,
            Admit::WaitUntil(later + Duration::from_secs(30))
        );
    }

    /// Each row: the state reached, one outcome, and what the breaker does with it.
    #[tokio::test(start_paused = true)]
    async fn every_outcome_moves_the_breaker() {
        let t = Instant::now();
        let probe_at = t + Duration::from_secs(30);
        let closed = |_: Instant| breaker();
        let open = |t: Instant| opened(t);
        let probing = |t: Instant| {
            let mut b = opened(t);
            b.admit(t + Duration::from_secs(30));
            b.probe_started();
            b
        };
        type Make = dyn Fn(Instant) -> Breaker;
        /// What was, what came (health, whether it was the probe), what follows.
        type Row<'a> = (&'a str, &'a Make, Health, bool, Option<State>, State, Admit);
        let cases: [Row; 9] = [
            (
                "closed, refusal of one conversation",
                &closed,
                Health::Unknown,
                false,
                None,
                State::Closed,
                Admit::Any,
            ),
            (
                "closed, outage",
                &closed,
                Health::Down,
                false,
                None,
                State::Closed,
                Admit::Any,
            ),
            (
                "open, late success",
                &open,
                Health::Up,
                false,
                Some(State::Closed),
                State::Closed,
                Admit::Any,
            ),
            (
                "open, late outage",
                &open,
                Health::Down,
                false,
                None,
                State::Open,
                Admit::Probe,
            ),
            (
                "probing, probe deferred",
                &probing,
                Health::Unknown,
                true,
                None,
                State::HalfOpen,
                Admit::Probe,
            ),
            (
                "probing, probe refused one conversation",
                &probing,
                Health::Unknown,
                true,
                None,
                State::HalfOpen,
                Admit::Probe,
            ),
            (
                "probing, probe down",
                &probing,
                Health::Down,
                true,
                Some(State::Open),
                State::Open,
                Admit::WaitUntil(probe_at + Duration::from_secs(30)),
            ),
            (
                "probing, probe up",
                &probing,
                Health::Up,
                true,
                Some(State::Closed),
                State::Closed,
                Admit::Any,
            ),
            (
                "probing, late outage of an earlier attempt",
                &probing,
                Health::Down,
                false,
                None,
                State::HalfOpen,
                Admit::WaitUntil(probe_at + PROBE_POLL),
            ),
        ];
        for (what, make, health, probe, changed, state, admit) in cases {
            let mut b = make(t);
            assert_eq!(b.record(health, probe, probe_at, None), changed, "{what}");
            assert_eq!(b.state(), state, "{what}");
            assert_eq!(b.admit(probe_at).0, admit, "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refused_credentials_pause_at_once_with_their_reason() {
        let t = Instant::now();
        let mut b = Breaker::new(BreakerSettings {
            failures: 0,
            cool_down: HumanDuration(Duration::from_secs(30)),
        });
        assert_eq!(
            b.record(Health::Refused, false, t, Some("invalid_client")),
            Some(State::Open),
            "whatever the threshold"
        );
        assert_eq!(b.reason(), Some("invalid_client"));
        assert_eq!(b.record(Health::Refused, false, t, Some("again")), None);
        assert_eq!(
            b.reason(),
            Some("invalid_client"),
            "the reason of the pause stays"
        );
        b.admit(t + Duration::from_secs(30));
        b.probe_started();
        assert_eq!(
            b.record(Health::Up, true, t + Duration::from_secs(31), None),
            Some(State::Closed)
        );
        assert_eq!(b.reason(), None);
    }

    #[test]
    fn refusals_of_single_conversations_never_pause() {
        let mut b = breaker();
        for _ in 0..100 {
            assert_eq!(b.record(Health::Unknown, false, Instant::now(), None), None);
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn zero_failures_never_opens() {
        let mut b = Breaker::new(BreakerSettings {
            failures: 0,
            cool_down: HumanDuration(Duration::from_secs(1)),
        });
        for _ in 0..100 {
            assert_eq!(b.record(Health::Down, false, Instant::now(), None), None);
        }
    }
}
