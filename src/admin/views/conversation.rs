//! One conversation as the dashboard shows it: first where it went (one line per
//! destination: state, when, links, and for a failure what happened and what comes next),
//! then the visitor, the transcript, and every version's deliveries with their attempts,
//! replays and requests.

use super::outcome::{self, Failure, Next};
use super::{display_name, AdminError};
use crate::destinations::{preview_stored, Destination, Link};
use crate::metrics::{LaneHealth, Metrics};
use crate::render::transcript::{self, Line};
use crate::smartsupp::{self, non_empty, Stored};
use crate::store::admin::{AttemptInfo, DeliveryInfo, ReplayInfo};
use crate::store::{now_ms, Store};
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
    pub state: String,
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

/// The visitor of a conversation.
#[derive(Debug, Default, Serialize)]
pub struct VisitorView {
    /// Name, email, or "Anonymous visitor": the same name on every page.
    pub display_name: String,
    /// Smartsupp's id of the visitor.
    pub smartsupp_id: Option<String>,
    /// Email, when it looks like one.
    pub email: Option<String>,
    /// The agents' note.
    pub note: Option<String>,
    /// City and country.
    pub location: Option<String>,
    /// IP address.
    pub ip_address: Option<String>,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// Pages visited.
    pub pages: Vec<Page>,
    /// Custom variables.
    pub variables: Vec<Variable>,
}

/// A page the visitor saw.
#[derive(Debug, Serialize)]
pub struct Page {
    /// Its address.
    pub url: String,
    /// Its title.
    pub title: Option<String>,
}

/// A custom variable.
#[derive(Debug, Serialize)]
pub struct Variable {
    /// Its label.
    pub label: String,
    /// Its value as text.
    pub value: String,
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

fn visitor(context: &Value) -> VisitorView {
    let v = &context["visitor"];
    let location = [non_empty(&v["city"]), non_empty(&v["country"])]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    let pages = context["paths"]
        .as_array()
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| {
                    Some(Page {
                        url: non_empty(&p["url"])?,
                        title: non_empty(&p["title"]),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let variables = v["variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .map(|(name, var)| Variable {
                    label: non_empty(&var["label"]).unwrap_or_else(|| name.clone()),
                    value: non_empty(&var["value"]).unwrap_or_else(|| var["value"].to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let email = non_empty(&context["meta"]["email"]);
    VisitorView {
        display_name: display_name(non_empty(&v["name"]).as_deref(), email.as_deref()),
        smartsupp_id: non_empty(&v["id"]),
        email,
        note: non_empty(&v["note"]),
        location: Some(location).filter(|l| !l.is_empty()),
        ip_address: non_empty(&v["ipAddress"]),
        user_agent: non_empty(&v["userAgent"]),
        pages,
        variables,
    }
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

fn lane_health(health: Option<&Metrics>, destination: &str) -> Option<LaneHealth> {
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
fn delivery_view(
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
        .filter(|_| delivery.state != "done");
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

fn outcome_line(d: &DeliveryView, earlier: bool) -> OutcomeLine {
    OutcomeLine {
        delivery_id: d.delivery.id,
        destination: d.delivery.destination.clone(),
        version: d.delivery.version,
        earlier,
        state: d.delivery.state.clone(),
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
        .map(|d| outcome_line(d, false))
        .collect();
    for v in earlier.iter().rev() {
        for d in v.deliveries.iter().filter(|d| d.delivery.state != "done") {
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
    Ok(ConversationView {
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
                was: "dead".into(),
            },
            ReplayInfo {
                at: 40,
                by: "cli".into(),
                was: "done".into(),
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
