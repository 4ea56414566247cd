//! A destination's lane: claim what is due (nothing while its breaker has it paused, one probe
//! after the cool-down) and take what receivers hand over already claimed, start attempts
//! within the concurrency limit and the pacing, sleep until the next due time or a wake-up,
//! and drain on shutdown: claimed or handed deliveries not yet started are released at once,
//! attempts in flight get the grace period.

use super::alerts::Alerts;
use super::attempt::{attempt, record};
use super::breaker::{Admit, Breaker, State};
use super::{lock, Door, LaneSettings};
use crate::destinations::pacing::Pacer;
use crate::destinations::{Destination, Progress};
use crate::metrics::Metrics;
use crate::store::{now_ms, Claimed, Next, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

/// Longest sleep without a look at the store (another instance may have added work).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Shortest sleep, so a store that keeps answering "due now, nothing claimable" cannot spin.
const MIN_SLEEP: Duration = Duration::from_millis(5);
/// Wait after the store failed to answer a claim.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// Attempts (sending or recording) per concurrent delivery slot: recording an outcome does
/// not hold a slot, so a few more attempts than slots may be finishing at once.
const TASKS_PER_SLOT: usize = 4;

pub struct Lane {
    pub destination: Arc<dyn Destination>,
    pub store: Store,
    pub settings: LaneSettings,
    pub metrics: Arc<Metrics>,
    /// Where receivers wake this lane and hand it deliveries.
    pub door: Arc<Door>,
    pub pacer: Option<Pacer>,
    pub breaker: Mutex<Breaker>,
    pub alerts: Option<Alerts>,
    /// This lane's generation ([`Metrics::lane_started`]): what it may announce.
    pub generation: u64,
    /// Where the attempts' spans go, when traces are on.
    pub tracer: Option<crate::telemetry::otlp::Tracer>,
}

/// Deliveries this lane is attempting, with the number of the latest claim on each: an
/// attempt records under that claim, even when the lane claimed the delivery again (its lease
/// ran out) while the attempt was still running.
type InFlight = Mutex<HashMap<i64, i64>>;

impl Lane {
    /// Runs the lane until `stop`; deliveries handed over by receivers arrive on `handed`.
    pub async fn run(
        self,
        handed: Option<mpsc::Receiver<Claimed>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let lane = Arc::new(self);
        let workers = lane.settings.workers;
        let slots = Arc::new(Semaphore::new(workers));
        let tasks = Arc::new(Semaphore::new(workers * TASKS_PER_SLOT));
        let in_flight: Arc<InFlight> = Arc::default();
        let name = lane.destination.name().to_string();
        let taking = handed.map(|handed| {
            tokio::spawn(lane.clone().take_handed(
                handed,
                slots.clone(),
                tasks.clone(),
                in_flight.clone(),
                stop.clone(),
            ))
        });
        while !*stop.borrow() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    permit = slots.acquire() => drop(permit),
                    _ = stop.changed() => {}
                }
                continue;
            }
            // A paused destination claims nothing until its cool-down ends, then one probe.
            let (admit, changed) = lock(&lane.breaker).admit(tokio::time::Instant::now());
            if let Some(state) = changed {
                lane.announce(state);
            }
            // Claim ahead: the deliveries beyond the free slots wait, leased, for a slot, so
            // the next claim's round trip to the store overlaps with deliveries in flight.
            let limit = match admit {
                Admit::Any => free + workers,
                Admit::Probe => 1,
                Admit::WaitUntil(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
            };
            let lease_until = now_ms() + lane.settings.lease.as_millis() as i64;
            let batch = match lane.store.claim(&name, limit, lease_until).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e, "cannot claim deliveries");
                    sleep_or_stop(STORE_RETRY, &lane.door.wake, &mut stop).await;
                    continue;
                }
            };
            if batch.deliveries.is_empty() {
                let wait = batch
                    .next_due
                    .map(|due| Duration::from_millis((due - now_ms()).max(0) as u64))
                    .unwrap_or(IDLE_POLL)
                    .clamp(MIN_SLEEP, IDLE_POLL);
                sleep_or_stop(wait, &lane.door.wake, &mut stop).await;
                continue;
            }
            let probe = admit == Admit::Probe;
            if probe {
                lock(&lane.breaker).probe_started();
            }
            let mut claimed_ahead = batch.deliveries.into_iter();
            while let Some(claimed) = claimed_ahead.next() {
                // A lease that ran out while its attempt still runs must not start a second
                // one; the running attempt records under the new claim.
                if let Some(held) = lock(&in_flight).get_mut(&claimed.id) {
                    *held = claimed.held();
                    continue;
                }
                let permits = tokio::select! {
                    biased;
                    _ = stop.changed() => None,
                    permits = lane.permits(&tasks, &slots) => permits,
                };
                let paused = lock(&lane.breaker).state() == State::Open;
                let (Some((task, slot)), false, false) = (permits, paused, *stop.borrow()) else {
                    // Stopping, or paused while this one waited for a slot: give it and the
                    // rest back at once rather than start them.
                    let ids: Vec<i64> = std::iter::once(claimed.id)
                        .chain(claimed_ahead.map(|c| c.id))
                        .collect();
                    lane.release(ids).await;
                    break;
                };
                lane.start(claimed, task, slot, probe, &in_flight);
            }
        }
        if let Some(taking) = taking {
            if let Err(e) = taking.await {
                tracing::error!(error = %e, "a lane's hand-over task ended abnormally");
            }
        }
        lane.drain(&tasks, workers * TASKS_PER_SLOT, &in_flight)
            .await;
    }

    /// Starts deliveries as receivers hand them over, committed claimed, within the same
    /// slots as the claimed ones; gives back those it cannot start (paused, stopping).
    async fn take_handed(
        self: Arc<Self>,
        mut handed: mpsc::Receiver<Claimed>,
        slots: Arc<Semaphore>,
        tasks: Arc<Semaphore>,
        in_flight: Arc<InFlight>,
        mut stop: watch::Receiver<bool>,
    ) {
        while !*stop.borrow() {
            let claimed = tokio::select! {
                claimed = handed.recv() => claimed,
                _ = stop.changed() => None,
            };
            let Some(claimed) = claimed else { break };
            let permits = tokio::select! {
                biased;
                _ = stop.changed() => None,
                permits = self.permits(&tasks, &slots) => permits,
            };
            // Its lease ran out while it waited, and the claim loop claimed it again and
            // started it: that attempt is the one to run.
            if lock(&in_flight).contains_key(&claimed.id) {
                continue;
            }
            let paused = lock(&self.breaker).state() == State::Open;
            match (permits, paused || *stop.borrow()) {
                (Some((task, slot)), false) => self.start(claimed, task, slot, false, &in_flight),
                _ => self.release(vec![claimed.id]).await,
            }
        }
        // Receivers that reserved room already still hand over: those give back too.
        self.door.stop_hand_overs();
        handed.close();
        let mut left = Vec::new();
        while let Some(claimed) = handed.recv().await {
            left.push(claimed.id);
        }
        if !left.is_empty() {
            self.release(left).await;
        }
    }

    /// Attempts `claimed` in a task of its own holding `task` and `slot`, and records the
    /// outcome under the latest claim on it.
    fn start(
        self: &Arc<Self>,
        claimed: Claimed,
        task: OwnedSemaphorePermit,
        slot: OwnedSemaphorePermit,
        probe: bool,
        in_flight: &Arc<InFlight>,
    ) {
        lock(in_flight).insert(claimed.id, claimed.held());
        let lane = self.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let id = claimed.id;
            let mut span = crate::telemetry::spans::attempt_span(
                lane.tracer.as_ref(),
                &claimed,
                lane.destination.name(),
            );
            let progress = Progress::kept(lane.store.clone(), id, claimed.held());
            let finished = span
                .within(attempt(
                    lane.destination.as_ref(),
                    &claimed,
                    &lane.settings.schedule,
                    progress,
                ))
                .await;
            span.set("deskbridge.outcome", finished.decision.outcome.label());
            if let Some(status) = finished.record.status {
                span.set("http.response.status_code", status);
            }
            if let Some(error) = &finished.record.error {
                span.fail(crate::telemetry::spans::reason(error));
            }
            // The breaker hears the outcome before the slot is free again, so a
            // delivery claimed ahead sees a pause at once.
            let changed = lock(&lane.breaker).record(
                finished.decision.health,
                probe,
                tokio::time::Instant::now(),
                finished.record.error.as_deref(),
            );
            if let Some(state) = changed {
                lane.announce(state);
            }
            drop(slot);
            let delivered = finished.decision.next == Next::Done;
            lane.metrics.attempt(
                lane.destination.name(),
                finished.decision.outcome,
                finished.elapsed.as_secs_f64(),
            );
            let held = lock(&in_flight).get(&id).copied().unwrap_or(claimed.held());
            let recording = span.child("store.record", crate::telemetry::trace::Kind::Internal);
            record(&lane.store, id, held, finished).await;
            drop(recording);
            drop(span);
            lock(&in_flight).remove(&id);
            drop(task);
            // A retry may be due before the claim loop's next look at the store; a delivered
            // one leaves nothing new there (a later version it held back is due already, and
            // the loop looks again within MIN_SLEEP).
            if !delivered {
                lane.door.wake.notify_one();
            }
        });
    }

    /// A task and a delivery slot, or `None` when the semaphores are closed.
    async fn permits(
        &self,
        tasks: &Arc<Semaphore>,
        slots: &Arc<Semaphore>,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        if let Some(pacer) = &self.pacer {
            pacer.acquire().await;
        }
        let task = tasks.clone().acquire_owned().await.ok()?;
        let slot = slots.clone().acquire_owned().await.ok()?;
        Some((task, slot))
    }

    /// Makes claimed deliveries that were not started due again now.
    async fn release(&self, ids: Vec<i64>) {
        if let Err(e) = self.store.release(ids).await {
            tracing::warn!(error = %e, "cannot release claimed deliveries; their leases will expire");
        }
    }

    /// Logs a breaker transition, exports it and posts it to the alert webhook.
    fn announce(&self, state: State) {
        let name = self.destination.name();
        // A paused destination takes no hand-overs: its deliveries wait in the store.
        self.door.set_open(state == State::Closed);
        let (failures, reason, probe_at) = {
            let breaker = lock(&self.breaker);
            (
                breaker.failures(),
                breaker.reason().map(str::to_string),
                breaker.probe_at(),
            )
        };
        // The probe's time as a wall-clock time, for the dashboard.
        let probe_at_ms = probe_at.map(|at| {
            let wait = at.saturating_duration_since(tokio::time::Instant::now());
            now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
        });
        match state {
            State::Open => tracing::warn!(
                destination = name,
                failures,
                reason = reason.as_deref().unwrap_or(""),
                "destination paused; its deliveries wait"
            ),
            State::HalfOpen => tracing::info!(
                destination = name,
                "probing a paused destination with one delivery"
            ),
            State::Closed => tracing::info!(destination = name, "destination delivers again"),
        }
        if !self
            .metrics
            .lane_health(name, self.generation, state, reason.clone(), probe_at_ms)
        {
            // A newer lane (after a reload) owns the destination's health and its alerts.
            return;
        }
        if let Some(alerts) = &self.alerts {
            alerts.announce(name, state, failures, reason.as_deref());
        }
    }

    /// Waits for in-flight attempts; releases the leases of those that outlive the grace
    /// (and of claimed deliveries that never started).
    async fn drain(&self, tasks: &Semaphore, all: usize, in_flight: &InFlight) {
        let finished =
            tokio::time::timeout(self.settings.shutdown_grace, tasks.acquire_many(all as u32))
                .await;
        if finished.is_ok() {
            return;
        }
        let unfinished: Vec<i64> = lock(in_flight).keys().copied().collect();
        if unfinished.is_empty() {
            return;
        }
        match self.store.release(unfinished.clone()).await {
            Ok(n) => tracing::warn!(
                destination = self.destination.name(),
                released = n,
                "released unfinished deliveries at shutdown"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot release unfinished deliveries; their leases will expire")
            }
        }
    }
}

async fn sleep_or_stop(wait: Duration, wake: &Notify, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = wake.notified() => {}
        _ = stop.changed() => {}
    }
}
