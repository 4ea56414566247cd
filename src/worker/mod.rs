//! Background delivery: one lane per destination claims due deliveries with a lease (or is
//! handed a new conversation's deliveries committed claimed, through its [`Door`]) and runs up
//! to its concurrency (`delivery.workers`, or the destination's `concurrency`) at once, paced
//! by its `rate_limit` and paused by its breaker, so a slow or failing destination never holds
//! up another.

mod alerts;
mod attempt;
pub mod backoff;
pub mod breaker;
pub mod decide;
mod lane;

use crate::config::DeliverySettings;
use crate::destinations::Destination;
use crate::metrics::Metrics;
use crate::smartsupp::Stored;
use crate::store::{Claimed, Routed, Store};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// Each destination's lane as the receivers see it ([`Door`]).
#[derive(Clone, Default)]
pub struct Wakers(Arc<HashMap<String, Arc<Door>>>);

/// How receivers reach a destination's lane: a wake-up when deliveries are committed for it,
/// and, while the lane has room and is not paused, a hand-over of deliveries committed already
/// claimed, so that they need no claim from the store.
#[derive(Default)]
pub struct Door {
    wake: Notify,
    hand_over: std::sync::Mutex<Option<HandOver>>,
    /// The lane is delivering (its breaker closed).
    open: AtomicBool,
}

/// The lane's end of a hand-over: where claimed deliveries go, and how long a claim holds.
struct HandOver {
    to: mpsc::Sender<Claimed>,
    lease: Duration,
}

impl Door {
    /// Starts taking deliveries committed claimed for `lease`, up to `room` waiting at once.
    fn take_hand_overs(&self, lease: Duration, room: usize) -> mpsc::Receiver<Claimed> {
        let (to, from) = mpsc::channel(room.max(1));
        *lock(&self.hand_over) = Some(HandOver { to, lease });
        self.open.store(true, Ordering::Relaxed);
        from
    }

    /// Takes no more hand-overs (deliveries reserved already still arrive).
    fn stop_hand_overs(&self) {
        lock(&self.hand_over).take();
    }

    /// Whether receivers may hand deliveries over (the breaker is closed).
    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Room for one delivery, and the end of its lease; `None` when the lane is full, paused,
    /// or takes no hand-overs.
    fn reserve(&self, now: i64) -> Option<(mpsc::OwnedPermit<Claimed>, i64)> {
        if !self.open.load(Ordering::Relaxed) {
            return None;
        }
        let (to, lease) = {
            let hand_over = lock(&self.hand_over);
            let h = hand_over.as_ref()?;
            (h.to.clone(), h.lease)
        };
        let permit = to.try_reserve_owned().ok()?;
        Some((
            permit,
            now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2),
        ))
    }
}

/// Lanes' room reserved for one conversation's deliveries before its commit, in the order of
/// its routed deliveries: the lane of each (none for a delivery dead from the start), and the
/// room reserved in it with the destination's name, if any.
pub struct Reserved(Vec<(Option<Arc<Door>>, Option<Room>)>);

/// Room for one delivery in a lane: the destination's name and the reserved place.
type Room = (String, mpsc::OwnedPermit<Claimed>);

impl Wakers {
    /// One door per destination name.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        Self(Arc::new(
            names
                .into_iter()
                .map(|n| (n.clone(), Arc::default()))
                .collect(),
        ))
    }

    /// Wakes the lane of `destination`, if it has one.
    pub fn wake(&self, destination: &str) {
        if let Some(door) = self.0.get(destination) {
            door.wake.notify_one();
        }
    }

    /// Reserves room in the lanes of `routed` (all but those dead from the start) and marks
    /// each delivery that got room to be committed claimed until its lease ends.
    pub fn reserve(&self, routed: &mut [Routed], now: i64) -> Reserved {
        let mut reserved = Vec::with_capacity(routed.len());
        for r in routed.iter_mut() {
            let door = self.0.get(&r.destination).filter(|_| r.error.is_none());
            let room = door
                .and_then(|d| d.reserve(now))
                .map(|(permit, lease_until)| {
                    r.lease_until = Some(lease_until);
                    (r.destination.clone(), permit)
                });
            reserved.push((door.cloned(), room));
        }
        Reserved(reserved)
    }

    fn get(&self, destination: &str) -> Arc<Door> {
        self.0.get(destination).cloned().unwrap_or_default()
    }
}

impl Reserved {
    /// After the commit: hands each delivery committed claimed (`leased`, as
    /// [`crate::store::Ingested::Accepted`] lists them) to its lane, and wakes the lanes of
    /// the others, which claim them from the store.
    pub fn hand_over(self, leased: &[(usize, i64)], conversation: &Stored, raw: &Bytes) {
        for (i, (door, room)) in self.0.into_iter().enumerate() {
            let id = leased.iter().find(|(at, _)| *at == i).map(|(_, id)| *id);
            match (room, id) {
                (Some((destination, room)), Some(id)) => {
                    room.send(Claimed {
                        id,
                        destination,
                        attempts: 0,
                        claims: 0,
                        conversation: conversation.clone(),
                        raw: raw.clone(),
                        result: None,
                        previous: None,
                    });
                }
                _ => {
                    if let Some(door) = door {
                        door.wake.notify_one();
                    }
                }
            }
        }
    }
}

/// The value behind `m`, also after a panic elsewhere poisoned it.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every lane needs to know.
#[derive(Clone)]
pub struct LaneSettings {
    /// Concurrent attempts per destination.
    pub workers: usize,
    /// How long a claim reserves a delivery.
    pub lease: Duration,
    /// Waits between attempts.
    pub schedule: Vec<Duration>,
    /// How long in-flight attempts may run on after shutdown starts.
    pub shutdown_grace: Duration,
}

impl From<&DeliverySettings> for LaneSettings {
    fn from(s: &DeliverySettings) -> Self {
        Self {
            workers: s.workers.max(1),
            lease: s.lease(),
            schedule: s.retry_schedule.iter().map(|d| d.0).collect(),
            shutdown_grace: s.shutdown_grace.0,
        }
    }
}

/// The running lanes.
pub struct Worker {
    stop: watch::Sender<bool>,
    lanes: Vec<JoinHandle<()>>,
}

impl Worker {
    /// Starts one lane per destination, with the destination's own concurrency, pacing and
    /// breaker from `config`.
    pub fn start(
        store: Store,
        destinations: Vec<Arc<dyn Destination>>,
        config: &crate::config::Settings,
        metrics: Arc<Metrics>,
        wakers: &Wakers,
        tracer: Option<crate::telemetry::otlp::Tracer>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let alerts = alerts::Alerts::new(config.alerts.webhook_url.as_deref());
        let lanes = destinations
            .into_iter()
            .map(|destination| {
                let mut settings = LaneSettings::from(&config.delivery);
                let (rate, concurrency, breaker) = config
                    .destinations
                    .get(destination.name())
                    .map(|d| d.health())
                    .unwrap_or_default();
                if let Some(n) = concurrency {
                    settings.workers = n.max(1);
                }
                // A new lane starts with a closed breaker (after a reload, say); the lane it
                // replaces may still finish attempts, but no longer changes the health shown.
                let generation = metrics.lane_started(destination.name());
                let door = wakers.get(destination.name());
                // A paced lane starts its attempts when the pace allows, maybe long after a
                // commit: it claims from the store when it is ready instead, as every lane
                // does on a store that hands nothing over.
                let handed = (rate.is_none() && store.hands_over())
                    .then(|| door.take_hand_overs(settings.lease, settings.workers));
                let lane = lane::Lane {
                    generation,
                    door,
                    destination,
                    store: store.clone(),
                    settings,
                    metrics: metrics.clone(),
                    pacer: rate.map(crate::destinations::pacing::Pacer::new),
                    breaker: std::sync::Mutex::new(breaker::Breaker::new(breaker)),
                    alerts: alerts.clone(),
                    tracer: tracer.clone(),
                };
                tokio::spawn(lane.run(handed, stopped.clone()))
            })
            .collect();
        Self { stop, lanes }
    }

    /// Stops claiming, lets in-flight attempts finish within the grace period, releases the
    /// rest, and returns when every lane has ended.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for lane in self.lanes {
            if let Err(e) = lane.await {
                tracing::error!(error = %e, "a delivery lane ended abnormally");
            }
        }
    }
}
