//! The circuit breaker of one destination: a run of failed attempts pauses it, a probe after a
//! cool-down tests it, and a success resumes it. Pure state, driven by the lane.

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

/// A run of failures, a cool-down and a probe.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cool_down: Duration,
    failures: u32,
    state: State,
    opened_at: Instant,
    probing: bool,
}

/// Short wait while a probe is in flight.
const PROBE_POLL: Duration = Duration::from_millis(50);

impl Breaker {
    /// A closed breaker; `failures: 0` never opens.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            threshold: settings.failures,
            cool_down: settings.cool_down.0,
            failures: 0,
            state: State::Closed,
            opened_at: Instant::now(),
            probing: false,
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
            State::Open if now < self.opened_at + self.cool_down => {
                (Admit::WaitUntil(self.opened_at + self.cool_down), None)
            }
            State::Open => {
                self.state = State::HalfOpen;
                self.probing = false;
                (Admit::Probe, Some(State::HalfOpen))
            }
            State::HalfOpen if self.probing => (Admit::WaitUntil(now + PROBE_POLL), None),
            State::HalfOpen => (Admit::Probe, None),
        }
    }

    /// The probe was claimed and started.
    pub fn probe_started(&mut self) {
        if self.state == State::HalfOpen {
            self.probing = true;
        }
    }

    /// Records an attempt's outcome; the new state when it changed.
    pub fn record(&mut self, success: bool, now: Instant) -> Option<State> {
        if success {
            self.failures = 0;
            self.probing = false;
            return (self.state != State::Closed).then(|| {
                self.state = State::Closed;
                State::Closed
            });
        }
        self.failures += 1;
        let trips = match self.state {
            State::Closed => self.threshold > 0 && self.failures >= self.threshold,
            State::HalfOpen => true,
            State::Open => false,
        };
        if !trips {
            return None;
        }
        self.state = State::Open;
        self.opened_at = now;
        self.probing = false;
        Some(State::Open)
    }

    /// Failed attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
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

    #[tokio::test(start_paused = true)]
    async fn opens_after_a_run_probes_after_the_cool_down_and_closes_on_success() {
        let mut b = breaker();
        let t = Instant::now();
        assert_eq!(b.record(false, t), None);
        assert_eq!(b.record(true, t), None, "a success resets the run");
        assert_eq!(b.record(false, t), None);
        assert_eq!(b.record(false, t), None);
        assert_eq!(b.record(false, t), Some(State::Open));
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
            b.record(true, t + Duration::from_secs(32)),
            Some(State::Closed)
        );
        assert_eq!(b.admit(t + Duration::from_secs(33)).0, Admit::Any);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_pauses_again() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, t);
        }
        let later = t + Duration::from_secs(30);
        b.admit(later);
        b.probe_started();
        assert_eq!(b.record(false, later), Some(State::Open));
        assert_eq!(
            b.admit(later + Duration::from_secs(1)).0,
            Admit::WaitUntil(later + Duration::from_secs(30))
        );
    }

    #[test]
    fn zero_failures_never_opens() {
        let mut b = Breaker::new(BreakerSettings {
            failures: 0,
            cool_down: HumanDuration(Duration::from_secs(1)),
        });
        for _ in 0..100 {
            assert_eq!(b.record(false, Instant::now()), None);
        }
    }
}
