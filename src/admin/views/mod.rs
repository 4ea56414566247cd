//! What the dashboard shows, built once from the store and the running destinations: the JSON
//! API serialises these views and the pages render them, so both always agree.

mod conversation;
mod dead;
mod delivery;
pub mod outcome;
mod visitor;

pub use conversation::{conversation, ConversationView, Fold, OutcomeLine, VersionView};
pub use dead::{dead, DeadGroup, DeadRow, DeadView, DEAD_LIMIT};
pub use delivery::{delivery, DeliveryView};
pub use visitor::{Page, Variable, VisitorView};

use super::error::AdminError;
use crate::destinations::Destination;
use crate::metrics::Metrics;
use crate::store::admin::{ConversationQuery, ConversationRow, StateCounts};
use crate::store::{now_ms, DeliveryState, Store};
use crate::worker::breaker::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The name of a visitor on every page: their name, else their email, else
/// "Anonymous visitor".
pub fn display_name(name: Option<&str>, email: Option<&str>) -> String {
    let given = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    given(name)
        .or_else(|| given(email))
        .unwrap_or_else(|| "Anonymous visitor".to_string())
}

/// The overview page.
#[derive(Debug, Serialize)]
pub struct OverviewView {
    /// Conversation versions received in the last hour.
    pub hooks_last_hour: i64,
    /// … and in the last 24 hours.
    pub hooks_last_day: i64,
    /// When the newest conversation version was received (epoch ms): is Smartsupp sending?
    pub last_received_at: Option<i64>,
    /// Every delivery, by state.
    pub deliveries: StateCounts,
    /// Each configured destination, then any that only the store still knows.
    pub destinations: Vec<DestinationView>,
}

/// One destination on the overview.
#[derive(Debug, Serialize)]
pub struct DestinationView {
    /// Destination name.
    pub name: String,
    /// `delivering`, `paused` (by the circuit breaker), `probing` (as seen by the instance
    /// that answers), `elsewhere` (this instance does not deliver), or `not configured`.
    pub state: &'static str,
    /// Why it is paused or probing (the error that paused it), as this instance saw it.
    pub paused_because: Option<String>,
    /// That error in words ([`outcome::summary`]).
    pub paused_summary: Option<String>,
    /// Since when it is in its state (epoch ms), as this instance saw it.
    pub since: Option<i64>,
    /// When a paused destination sends its probe (epoch ms).
    pub probe_at: Option<i64>,
    /// What makes a paused or probing destination deliver again.
    pub resumes: Option<String>,
    /// Pending deliveries.
    pub pending: i64,
    /// Creation time of the oldest pending delivery (epoch ms).
    pub oldest_pending_at: Option<i64>,
    /// Its age in seconds.
    pub oldest_pending_seconds: Option<i64>,
    /// Delivered in the last 24 hours.
    pub done_last_day: i64,
    /// Given up in the last 24 hours.
    pub dead_last_day: i64,
    /// Dead now, whenever they died (the dead letters page lists them).
    pub dead: i64,
    /// Share of deliveries finished in the last 24 hours that were delivered, in percent.
    pub success_rate: Option<f64>,
    /// The newest delivery whose last attempt failed: its error…
    pub last_error: Option<String>,
    /// …in words…
    pub last_error_summary: Option<String>,
    /// …and when (epoch ms).
    pub last_error_at: Option<i64>,
}

/// An error's headline and message on one line.
fn in_words(error: &str, status: Option<i64>, response: Option<&str>) -> String {
    match outcome::summary(error, status, response) {
        (headline, Some(message)) => format!("{headline}: {message}"),
        (headline, None) => headline,
    }
}

/// What resumes a destination in `state`.
fn resumes(state: State) -> Option<String> {
    match state {
        State::Closed => None,
        State::Open => Some(
            "At the probe time one delivery is sent; if the destination accepts it, delivering              resumes. After fixing the cause, a reload (SIGHUP) resumes at once."
                .into(),
        ),
        State::HalfOpen => Some(
            "One delivery is testing the destination now: accepted, delivering resumes;              refused, it pauses again."
                .into(),
        ),
    }
}

/// Builds the overview.
pub async fn overview(
    store: &Store,
    health: Option<&Metrics>,
    configured: &[Arc<dyn Destination>],
) -> Result<OverviewView, AdminError> {
    let o = store.overview().await?;
    let now = now_ms();
    let mut names: Vec<String> = configured.iter().map(|d| d.name().to_string()).collect();
    for s in &o.destinations {
        if !names.contains(&s.destination) {
            names.push(s.destination.clone());
        }
    }
    let destinations = names
        .into_iter()
        .map(|name| {
            let stats = o.destinations.iter().find(|s| s.destination == name);
            let finished = stats.map_or(0, |s| s.done_last_day + s.dead_last_day);
            let configured = configured.iter().any(|d| d.name() == name);
            let lane = health
                .filter(|_| configured)
                .and_then(|m| m.destination_health_of(&name));
            let reason = lane
                .as_ref()
                .and_then(|h| h.reason.as_deref())
                .map(crate::redact::urls_in);
            let last_error = stats.and_then(|s| s.last_error.clone());
            DestinationView {
                state: match (configured, health) {
                    (false, _) => "not configured",
                    (true, None) => "elsewhere",
                    (true, Some(_)) => lane.as_ref().map_or("delivering", |h| h.state.name()),
                },
                paused_summary: reason.as_deref().map(|r| in_words(r, None, None)),
                paused_because: reason,
                since: lane.as_ref().map(|h| h.since_ms),
                probe_at: lane.as_ref().and_then(|h| h.probe_at_ms),
                resumes: lane.as_ref().and_then(|h| resumes(h.state)),
                pending: stats.map_or(0, |s| s.pending),
                oldest_pending_at: stats.and_then(|s| s.oldest_pending_at),
                oldest_pending_seconds: stats
                    .and_then(|s| s.oldest_pending_at)
                    .map(|at| ((now - at) / 1000).max(0)),
                done_last_day: stats.map_or(0, |s| s.done_last_day),
                dead_last_day: stats.map_or(0, |s| s.dead_last_day),
                dead: stats.map_or(0, |s| s.dead),
                success_rate: (finished > 0).then(|| {
                    let done = stats.map_or(0, |s| s.done_last_day) as f64;
                    (done * 1000.0 / finished as f64).round() / 10.0
                }),
                last_error_summary: last_error.as_deref().map(|e| {
                    in_words(
                        e,
                        stats.and_then(|s| s.last_error_status),
                        stats.and_then(|s| s.last_error_response.as_deref()),
                    )
                }),
                last_error,
                last_error_at: stats.and_then(|s| s.last_error_at),
                name,
            }
        })
        .collect();
    Ok(OverviewView {
        hooks_last_hour: o.hooks_last_hour,
        hooks_last_day: o.hooks_last_day,
        last_received_at: o.last_received_at,
        deliveries: o.deliveries,
        destinations,
    })
}

/// Rows per page of the conversation list.
pub const PAGE_SIZE: i64 = 50;
/// Most conversations counted for "N conversations" (beyond: "more than N").
pub const COUNT_CAP: i64 = 1000;

/// A page of the conversation list.
#[derive(Debug, Serialize)]
pub struct ConversationsView {
    /// Newest first, one row per conversation key.
    pub conversations: Vec<ListRow>,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<i64>,
    /// How many conversations match the filters (all pages), at most [`COUNT_CAP`]…
    pub count: i64,
    /// …and whether there are more than that.
    pub count_capped: bool,
}

/// One row of the conversation list.
#[derive(Debug, Serialize)]
pub struct ListRow {
    /// The conversation as the store lists it.
    #[serde(flatten)]
    pub row: ConversationRow,
    /// The visitor's name as every page shows it ([`display_name`]).
    pub display_name: String,
    /// How long the chat lasted in seconds, when its begin and end are known.
    pub duration_seconds: Option<i64>,
}

/// Checks a listing filter against the values it may take.
pub fn one_of(
    name: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, AdminError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if !allowed.contains(&v.as_str()) => Err(AdminError::BadRequest(format!(
            "{name} must be one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

/// Kinds of conversation.
pub const KINDS: &[&str] = &["chat", "missed", "offline"];
/// Checks a `state` filter: one of [`DeliveryState::ALL`], or none when empty.
pub fn state_filter(value: Option<String>) -> Result<Option<DeliveryState>, AdminError> {
    let value = one_of("state", value, &DeliveryState::names())?;
    Ok(value.and_then(|v| v.parse().ok()))
}

/// The dead letters' filter, as the page and the API take it.
#[derive(Debug, Default, Deserialize)]
pub struct DeadQuery {
    /// Only this destination's dead letters; empty means all.
    #[serde(default)]
    destination: Option<String>,
}

impl DeadQuery {
    /// The destination asked for, if any (an empty one means all).
    pub fn destination(&self) -> Option<String> {
        self.destination.clone().filter(|d| !d.is_empty())
    }
}

/// Filters of the conversation list, as the page and the API take them.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Email, name or key.
    #[serde(default)]
    pub q: Option<String>,
    /// chat, missed or offline.
    #[serde(default)]
    pub kind: Option<String>,
    /// pending, done or dead.
    #[serde(default)]
    pub state: Option<String>,
    /// Paging cursor.
    #[serde(default)]
    pub before: Option<i64>,
    /// Rows per page.
    #[serde(default)]
    pub limit: Option<i64>,
}

impl ListQuery {
    /// The store query, with the filters checked.
    pub fn to_store(&self) -> Result<ConversationQuery, AdminError> {
        Ok(ConversationQuery {
            search: self.q.clone(),
            kind: one_of("kind", self.kind.clone(), KINDS)?,
            state: state_filter(self.state.clone())?,
            before: self.before,
            limit: self.limit.unwrap_or(PAGE_SIZE),
        })
    }
}
/// Builds one page of the conversation list, with the number of conversations that match
/// (counted by a second query only when there is more than one page).
pub async fn conversations(
    store: &Store,
    mut query: ConversationQuery,
) -> Result<ConversationsView, AdminError> {
    let page = query.limit.clamp(1, 500);
    query.limit = page + 1;
    query.search = query
        .search
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let first_page = query.before.is_none();
    let mut rows = store.conversations(query.clone()).await?;
    let more = rows.len() as i64 > page;
    // A first page with room to spare holds every match: no second query counts them.
    let counted = if first_page && !more {
        rows.len() as i64
    } else {
        store.count_conversations(query, COUNT_CAP + 1).await?
    };
    rows.truncate(page as usize);
    Ok(ConversationsView {
        next_before: more.then(|| rows.last().map(|r| r.id)).flatten(),
        count: counted.min(COUNT_CAP),
        count_capped: counted > COUNT_CAP,
        conversations: rows
            .into_iter()
            .map(|row| ListRow {
                display_name: display_name(
                    row.visitor_name.as_deref(),
                    row.visitor_email.as_deref(),
                ),
                duration_seconds: row
                    .began_at
                    .zip(row.ended_at)
                    .map(|(b, e)| (e - b) / 1000)
                    .filter(|d| *d >= 0),
                row,
            })
            .collect(),
    })
}

/// Parses "retry" ids: comma-separated delivery ids.
pub fn parse_ids(text: &str) -> Result<Vec<i64>, AdminError> {
    let ids: Result<Vec<i64>, _> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect();
    match ids {
        Ok(ids) if !ids.is_empty() => Ok(ids),
        _ => Err(AdminError::BadRequest(
            "ids must be one or more delivery ids separated by commas".into(),
        )),
    }
}
