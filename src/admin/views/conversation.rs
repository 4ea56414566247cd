//! One conversation as the dashboard shows it: first where it went (one line per
//! destination: state, when, links, and for a failure what happened and what comes next),
//! then the visitor, the transcript, and every version's deliveries with their attempts,
//! replays and requests.

use super::delivery::{delivery_view, lane_health, DeliveryView};
use super::outcome::{Failure, Next};
use super::visitor::{visitor, VisitorView};
use super::AdminError;
use crate::destinations::{Destination, Link};
use crate::metrics::Metrics;
use crate::render::transcript::{self, Line};
use crate::smartsupp::{self, non_empty, Stored};
use crate::store::{DeliveryState, Store};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Transcripts longer than this are folded: the first and last [`FOLD_KEEP`] messages show,
/// the rest behind "show all".
pub const FOLD_OVER: usize = 12;
/// Messages shown at each end of a folded transcript.
pub const FOLD_KEEP: usize = 3;

/// One conversation with everything that happened to it.
#[derive(Debug, Serialize)]
pub struct ConversationView {
    /// Conversation key.
    pub key: String,
    /// `chat`, `missed` or `offline` (of the latest version).
    pub kind: String,
    /// The visitor, as the latest version describes them.
    pub visitor: VisitorView,
    /// The rating the visitor gave, 1–5, when they gave one.
    pub rating: Option<i64>,
    /// When the chat began (epoch ms), when the body says.
    pub began_at: Option<i64>,
    /// When it ended (epoch ms), when the body says.
    pub ended_at: Option<i64>,
    /// How long it lasted, in seconds, when both are known.
    pub duration_seconds: Option<i64>,
    /// When the latest version was received (epoch ms).
    pub received_at: i64,
    /// Messages from the visitor.
    pub visitor_messages: usize,
    /// Messages from agents and bots.
    pub agent_messages: usize,
    /// Where it went, one line per destination of the latest version, then the deliveries
    /// of earlier versions that are not done.
    pub outcomes: Vec<OutcomeLine>,
    /// The latest version's messages as support sees them, times in the admin's time zone.
    pub transcript: Vec<Line>,
    /// How a long transcript is folded on the page.
    pub fold: Option<Fold>,
    /// Every version, oldest first, with its deliveries.
    pub versions: Vec<VersionView>,
    /// Where the latest version's data came from, and the Webhooks API events received.
    pub origin: Origin,
}

/// Where a conversation's data came from.
#[derive(Debug, Serialize)]
pub struct Origin {
    /// `hook`, `events` or `import`.
    pub source: String,
    /// What Smartsupp's REST API added (`conversation`, `messages`, `contact`, `agents`).
    pub api: Vec<String>,
    /// What could not be known.
    pub unknown: Vec<String>,
    /// The Webhooks API events stored for the conversation, in order of arrival.
    pub events: Vec<EventLine>,
}

/// One stored event.
#[derive(Debug, Serialize)]
pub struct EventLine {
    /// The event's name.
    pub event: String,
    /// When deskbridge received it (epoch ms).
    pub received_at: i64,
    /// Smartsupp's time of it (epoch ms), when it gave one.
    pub occurred_at: Option<i64>,
}

/// Reads the origin from a stored body and the conversation's events.
async fn origin(store: &Store, key: &str, raw: &[u8]) -> Result<Origin, AdminError> {
    let marker = serde_json::from_slice::<Value>(raw)
        .ok()
        .map(|v| v["deskbridge"].clone())
        .filter(|m| matches!(m["source"].as_str(), Some("events" | "import")));
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let events = store
        .events(key.to_string(), None)
        .await?
        .into_iter()
        .map(|e| EventLine {
            event: e.event,
            received_at: e.received_at,
            occurred_at: e.occurred_at,
        })
        .collect();
    Ok(match marker {
        Some(m) => Origin {
            source: m["source"].as_str().unwrap_or("events").to_string(),
            api: strings(&m["api"]),
            unknown: strings(&m["unknown"]),
            events,
        },
        None => Origin {
            source: "hook".into(),
            api: Vec::new(),
            unknown: Vec::new(),
            events,
        },
    })
}

/// A long transcript, folded: messages `head..tail_from` are behind "show all".
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Fold {
    /// Messages shown before the fold.
    pub head: usize,
    /// The first message shown after it.
    pub tail_from: usize,
    /// Messages behind it.
    pub hidden: usize,
    /// All messages.
    pub total: usize,
}

/// The outcome of one delivery, for the lines under the conversation's title.
#[derive(Debug, Serialize)]
pub struct OutcomeLine {
    /// Delivery id.
    pub delivery_id: i64,
    /// Destination name.
    pub destination: String,
    /// The conversation version it carries.
    pub version: i64,
    /// Whether it carries an earlier version than the latest.
    pub earlier: bool,
    /// `pending`, `done` or `dead`.
    pub state: DeliveryState,
    /// The state in words ([`outcome::label`]).
    pub label: &'static str,
    /// When it got there (epoch ms of its last change).
    pub at: i64,
    /// Attempts logged.
    pub attempts: i64,
    /// What it created.
    pub links: Vec<Link>,
    /// Its last failure, when its last attempt failed.
    pub failure: Option<Failure>,
    /// What comes next, when it is not done.
    pub next: Option<Next>,
    /// The last replay (epoch ms) and who made it.
    pub replayed_at: Option<i64>,
    /// `admin` or `cli`.
    pub replayed_by: Option<String>,
}

/// One version of a conversation.
#[derive(Debug, Serialize)]
pub struct VersionView {
    /// Version, from 1.
    pub version: i64,
    /// When it was received (epoch ms).
    pub received_at: i64,
    /// The address it came from.
    pub client_ip: Option<String>,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryView>,
}

fn outcome_line(d: &DeliveryView, earlier: bool) -> OutcomeLine {
    OutcomeLine {
        delivery_id: d.delivery.id,
        destination: d.delivery.destination.clone(),
        version: d.delivery.version,
        earlier,
        state: d.delivery.state,
        label: d.label,
        at: d.delivery.updated_at,
        attempts: d.attempts.len() as i64,
        links: d.links.clone(),
        failure: d.failure.clone(),
        next: d.next.clone(),
        replayed_at: d.delivery.replayed_at,
        replayed_by: d.delivery.replayed_by.clone(),
    }
}

/// Where the conversation went: each delivery of the latest version, then those of earlier
/// versions that are not done.
fn outcomes(versions: &[VersionView]) -> Vec<OutcomeLine> {
    let Some((latest, earlier)) = versions.split_last() else {
        return Vec::new();
    };
    let mut lines: Vec<OutcomeLine> = latest
        .deliveries
        .iter()
        .map(|d| {
            let mut line = outcome_line(d, false);
            // Versions reach a destination in order: a later one waits for an earlier one.
            let before = earlier.iter().rev().find(|v| {
                v.deliveries.iter().any(|e| {
                    e.delivery.destination == d.delivery.destination
                        && e.delivery.state == DeliveryState::Pending
                })
            });
            if let (Some(v), DeliveryState::Pending) = (before, d.delivery.state) {
                line.next = Some(Next {
                    automatic: true,
                    text: format!(
                        "Waiting until version {} has reached {} (versions go in order)",
                        v.version, d.delivery.destination
                    ),
                    at: None,
                });
            }
            line
        })
        .collect();
    for v in earlier.iter().rev() {
        for d in v
            .deliveries
            .iter()
            .filter(|d| d.delivery.state != DeliveryState::Done)
        {
            lines.push(outcome_line(d, true));
        }
    }
    lines
}

/// Builds a conversation's page from its stored versions and one query each for the attempts
/// and the replays of all their deliveries.
pub async fn conversation(
    store: &Store,
    destinations: &[Arc<dyn Destination>],
    health: Option<&Metrics>,
    key: &str,
    tz: Tz,
) -> Result<ConversationView, AdminError> {
    let stored = store.conversation(key.to_string()).await?;
    let Some(latest) = stored.last() else {
        return Err(AdminError::NotFound(format!("no conversation {key}")));
    };
    let context = smartsupp::context(
        &latest.raw,
        &Stored {
            key: key.to_string(),
            version: latest.version,
            received_at: latest.received_at,
        },
    )
    .unwrap_or(Value::Null);
    let visitor_view = visitor(&context);
    let transcript = transcript::lines(
        &context["messages"],
        tz,
        "%Y-%m-%d %H:%M:%S",
        &visitor_view.display_name,
    );
    let ids: Vec<i64> = stored
        .iter()
        .flat_map(|v| v.deliveries.iter().map(|d| d.id))
        .collect();
    let mut attempts = store.attempts(ids.clone()).await?;
    let mut replays = store.replays(ids).await?;
    let versions: Vec<VersionView> = stored
        .iter()
        .map(|v| VersionView {
            version: v.version,
            received_at: v.received_at,
            client_ip: v.client_ip.clone(),
            deliveries: v
                .deliveries
                .iter()
                .map(|d| {
                    let logged = attempts.remove(&d.id).unwrap_or_default();
                    let replayed = replays.remove(&d.id).unwrap_or_default();
                    let lane = lane_health(health, &d.destination);
                    delivery_view(
                        destinations,
                        lane.as_ref(),
                        d.clone(),
                        (logged, replayed),
                        &v.raw,
                        v.received_at,
                    )
                })
                .collect(),
        })
        .collect();
    let millis = |v: &Value| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64));
    let (began_at, ended_at) = (millis(&context["beginAt"]), millis(&context["endAt"]));
    let count = |from: &[&str]| transcript.iter().filter(|l| from.contains(&l.from)).count();
    let total = transcript.len();
    let origin = origin(store, key, &latest.raw).await?;
    Ok(ConversationView {
        origin,
        key: key.to_string(),
        kind: non_empty(&context["meta"]["kind"]).unwrap_or_else(|| "chat".into()),
        rating: context["channel"]["rating"]
            .as_i64()
            .filter(|r| (1..=5).contains(r)),
        visitor: visitor_view,
        began_at,
        ended_at,
        duration_seconds: began_at
            .zip(ended_at)
            .map(|(b, e)| (e - b) / 1000)
            .filter(|d| *d >= 0),
        received_at: latest.received_at,
        visitor_messages: count(&["visitor"]),
        agent_messages: count(&["agent", "bot"]),
        outcomes: outcomes(&versions),
        fold: (total > FOLD_OVER).then(|| Fold {
            head: FOLD_KEEP,
            tail_from: total - FOLD_KEEP,
            hidden: total - 2 * FOLD_KEEP,
            total,
        }),
        transcript,
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::DeliveryInfo;

    fn version(version: i64, state: DeliveryState) -> VersionView {
        let delivery = DeliveryInfo {
            id: version,
            key: "208-1".into(),
            version,
            destination: "crm".into(),
            state,
            attempts: 0,
            schedule_attempts: 0,
            next_attempt_at: 0,
            last_error: None,
            result: None,
            created_at: 0,
            updated_at: 0,
            last_response: None,
            last_status: None,
            replayed_at: None,
            replayed_by: None,
            last_request: None,
        };
        VersionView {
            version,
            received_at: 0,
            client_ip: None,
            deliveries: vec![DeliveryView {
                label: super::super::outcome::label(&delivery, None),
                failure: None,
                next: super::super::outcome::next(&delivery, None, 0),
                delivery,
                attempts: Vec::new(),
                replays: Vec::new(),
                last_request: None,
                request: None,
                request_error: None,
                links: Vec::new(),
            }],
        }
    }

    #[test]
    fn the_latest_version_comes_first_and_waits_for_an_earlier_one_still_pending() {
        let lines = outcomes(&[
            version(1, DeliveryState::Pending),
            version(2, DeliveryState::Pending),
        ]);
        let order: Vec<(i64, bool)> = lines.iter().map(|l| (l.version, l.earlier)).collect();
        assert_eq!(order, [(2, false), (1, true)]);
        let next = lines[0].next.as_ref().unwrap();
        assert!(
            next.text
                .starts_with("Waiting until version 1 has reached crm"),
            "{}",
            next.text
        );
        let lines = outcomes(&[
            version(1, DeliveryState::Done),
            version(2, DeliveryState::Dead),
        ]);
        assert_eq!(lines.len(), 1, "done earlier versions are not repeated");
        assert!(lines[0]
            .next
            .as_ref()
            .unwrap()
            .text
            .starts_with("Never sent"));
    }
}
