//! Background delivery: one lane per destination claims due deliveries with a lease and runs
//! up to its concurrency (`delivery.workers`, or the destination's `concurrency`) at once,
//! paced by its `rate_limit` and paused by its breaker, so a slow or failing destination never
//! holds up another.

mod alerts;
mod attempt;
pub mod backoff;
pub mod breaker;
pub mod decide;
mod lane;

use crate::config::DeliverySettings;
use crate::destinations::Destination;
use crate::metrics::Metrics;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// Wakes a destination's lane when new deliveries are committed for it.
#[derive(Clone, Default)]
pub struct Wakers(Arc<HashMap<String, Arc<Notify>>>);

impl Wakers {
    /// One waker per destination name.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a String>) -> Self {
        Self(Arc::new(
            names
                .into_iter()
                .map(|n| (n.clone(), Arc::new(Notify::new())))
                .collect(),
        ))
    }

    /// Wakes the lane of `destination`, if it has one.
    pub fn wake(&self, destination: &str) {
        if let Some(n) = self.0.get(destination) {
            n.notify_one();
        }
    }

    fn get(&self, destination: &str) -> Arc<Notify> {
        self.0.get(destination).cloned().unwrap_or_default()
    }
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
                let lane = lane::Lane {
                    generation,
                    wake: wakers.get(destination.name()),
                    destination,
                    store: store.clone(),
                    settings,
                    metrics: metrics.clone(),
                    pacer: rate.map(crate::destinations::pacing::Pacer::new),
                    breaker: std::sync::Mutex::new(breaker::Breaker::new(breaker)),
                    alerts: alerts.clone(),
                    tracer: tracer.clone(),
                };
                tokio::spawn(lane.run(stopped.clone()))
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
