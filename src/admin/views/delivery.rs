//! One delivery as the dashboard and `deliveries show` show it: its state in words, what
//! comes next, every attempt numbered across replays (the admin's marked), the request it
//! last sent and the one it would send now (both masked), and what it created.

use super::outcome::{self, Failure, Next};
use crate::destinations::{preview_stored, Destination, Link};
use crate::metrics::{LaneHealth, Metrics};
use crate::smartsupp::Stored;
use crate::store::admin::{AttemptInfo, DeliveryInfo, ReplayInfo};
use crate::store::{now_ms, DeliveryState, Store};
use serde::Serialize;
use std::sync::Arc;

/// A delivery with its attempts and what it sends.
#[derive(Debug, Serialize)]
pub struct DeliveryView {
    /// The delivery.
    pub delivery: DeliveryInfo,
    /// Its state in words ([`outcome::label`]).
    pub label: &'static str,
    /// Its last failure, in words.
    pub failure: Option<Failure>,
    /// What comes next, when it is not done.
    pub next: Option<Next>,
    /// Every attempt logged, oldest first, numbered 1, 2, … across replays; the first
    /// attempt after a replay carries it.
    pub attempts: Vec<AttemptInfo>,
    /// Every replay, oldest first.
    pub replays: Vec<ReplayInfo>,
    /// The request(s) exactly as the last attempt sent them (secrets masked), while the
    /// delivery is not done; `None` when it is done or nothing was sent yet.
    pub last_request: Option<String>,
    /// The request(s) as rendered now, secrets masked; `None` when they cannot be rendered.
    pub request: Option<String>,
    /// Why the request cannot be rendered now.
    pub request_error: Option<String>,
    /// What the delivery created at the destination.
    pub links: Vec<Link>,
}

/// A delivery with its attempts, the request it last sent and the one it sends now (both
/// masked), its links and what comes next; `None` when no delivery has that id. The CLI's
/// `deliveries show --json` prints the same.
pub async fn delivery(
    store: &Store,
    destinations: &[Arc<dyn Destination>],
    health: Option<&Metrics>,
    id: i64,
) -> Result<Option<DeliveryView>, crate::store::StoreError> {
    Ok(store.detail(id).await?.map(|detail| {
        let lane = lane_health(health, &detail.delivery.destination);
        delivery_view(
            destinations,
            lane.as_ref(),
            detail.delivery,
            (detail.attempts, detail.replays),
            &detail.raw,
            detail.received_at,
        )
    }))
}

/// A destination's health as this instance's lane sees it, when it runs lanes.
pub(super) fn lane_health(health: Option<&Metrics>, destination: &str) -> Option<LaneHealth> {
    health.and_then(|m| m.destination_health_of(destination))
}

/// Numbers attempts in the order of the log (a replay starts a fresh retry schedule, but its
/// attempts continue the count) and gives the first attempt after each replay that replay.
fn numbered(mut attempts: Vec<AttemptInfo>, replays: &[ReplayInfo]) -> Vec<AttemptInfo> {
    for (i, a) in attempts.iter_mut().enumerate() {
        a.attempt = i as i64 + 1;
        a.summary =
            a.error.as_deref().map(
                |e| match outcome::summary(e, a.status, a.excerpt.as_deref()) {
                    (headline, Some(message)) => format!("{headline}: {message}"),
                    (headline, None) => headline,
                },
            );
    }
    for replay in replays {
        if let Some(a) = attempts
            .iter_mut()
            .find(|a| a.started_at >= replay.at && a.replay.is_none())
        {
            a.replay = Some(replay.clone());
        }
    }
    attempts
}

/// The view of one delivery of the conversation version `raw`, received at `received_at`.
pub(super) fn delivery_view(
    destinations: &[Arc<dyn Destination>],
    health: Option<&LaneHealth>,
    mut delivery: DeliveryInfo,
    (attempts, replays): (Vec<AttemptInfo>, Vec<ReplayInfo>),
    raw: &[u8],
    received_at: i64,
) -> DeliveryView {
    let stored = Stored {
        key: delivery.key.clone(),
        version: delivery.version,
        received_at,
    };
    let destination = destinations
        .iter()
        .find(|d| d.name() == delivery.destination);
    let (request, request_error) = match destination {
        Some(d) => match preview_stored(d.as_ref(), raw, &stored, None) {
            Ok(list) => (
                Some(list.iter().map(|r| r.display_masked()).collect::<String>()),
                None,
            ),
            Err(e) => (None, Some(format!("{e:#}"))),
        },
        None => (
            None,
            Some("the destination is no longer configured".to_string()),
        ),
    };
    let links = match (destination, &delivery.result) {
        (Some(d), Some(result)) => serde_json::from_str(result)
            .map(|r| d.links(&r))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let last_request = delivery
        .last_request
        .take()
        .filter(|_| delivery.state != DeliveryState::Done);
    DeliveryView {
        label: outcome::label(&delivery, health),
        failure: outcome::failure(&delivery),
        next: outcome::next(&delivery, health, now_ms()),
        attempts: numbered(attempts, &replays),
        replays,
        delivery,
        last_request,
        request,
        request_error,
        links,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(started_at: i64) -> AttemptInfo {
        AttemptInfo {
            attempt: 1,
            started_at,
            duration_ms: 1,
            status: None,
            excerpt: None,
            error: None,
            summary: None,
            replay: None,
        }
    }

    #[test]
    fn attempts_are_numbered_across_replays_and_carry_the_replay_before_them() {
        // Two attempts, a replay by the admin, one more attempt, a replay not yet attempted.
        let replays = vec![
            ReplayInfo {
                at: 25,
                by: "admin".into(),
                was: DeliveryState::Dead,
            },
            ReplayInfo {
                at: 40,
                by: "cli".into(),
                was: DeliveryState::Done,
            },
        ];
        let list = numbered(vec![attempt(10), attempt(20), attempt(30)], &replays);
        let numbers: Vec<i64> = list.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(
            list[2].replay.as_ref().map(|r| r.by.as_str()),
            Some("admin")
        );
        assert!(list[0].replay.is_none() && list[1].replay.is_none());
    }
}
