//! What the dashboard shows, built once from the store and the running destinations: the JSON
//! API serialises these views and the pages render them, so both always agree.

use super::error::AdminError;
use crate::destinations::{preview_stored, Destination, Link};
use crate::metrics::Metrics;
use crate::render::transcript::{self, Line};
use crate::smartsupp::{self, non_empty, Stored};
use crate::store::admin::{
    AttemptInfo, ConversationQuery, ConversationRow, DeliveryFilter, DeliveryInfo, StateCounts,
};
use crate::store::{now_ms, Store};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// The overview page.
#[derive(Debug, Serialize)]
pub struct OverviewView {
    /// Conversation versions received in the last hour.
    pub hooks_last_hour: i64,
    /// … and in the last 24 hours.
    pub hooks_last_day: i64,
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
    /// Share of deliveries finished in the last 24 hours that were delivered, in percent.
    pub success_rate: Option<f64>,
    /// The newest delivery whose last attempt failed: its error…
    pub last_error: Option<String>,
    /// …and when (epoch ms).
    pub last_error_at: Option<i64>,
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
            DestinationView {
                state: match (configured, health) {
                    (false, _) => "not configured",
                    (true, None) => "elsewhere",
                    (true, Some(m)) => m
                        .destination_state_of(&name)
                        .map_or("delivering", |s| s.name()),
                },
                paused_because: health
                    .filter(|_| configured)
                    .and_then(|m| m.destination_reason_of(&name))
                    .map(|r| crate::redact::urls_in(&r)),
                pending: stats.map_or(0, |s| s.pending),
                oldest_pending_at: stats.and_then(|s| s.oldest_pending_at),
                oldest_pending_seconds: stats
                    .and_then(|s| s.oldest_pending_at)
                    .map(|at| ((now - at) / 1000).max(0)),
                done_last_day: stats.map_or(0, |s| s.done_last_day),
                dead_last_day: stats.map_or(0, |s| s.dead_last_day),
                success_rate: (finished > 0).then(|| {
                    let done = stats.map_or(0, |s| s.done_last_day) as f64;
                    (done * 1000.0 / finished as f64).round() / 10.0
                }),
                last_error: stats.and_then(|s| s.last_error.clone()),
                last_error_at: stats.and_then(|s| s.last_error_at),
                name,
            }
        })
        .collect();
    Ok(OverviewView {
        hooks_last_hour: o.hooks_last_hour,
        hooks_last_day: o.hooks_last_day,
        deliveries: o.deliveries,
        destinations,
    })
}

/// Rows per page of the conversation list.
pub const PAGE_SIZE: i64 = 50;

/// A page of the conversation list.
#[derive(Debug, Serialize)]
pub struct ConversationsView {
    /// Newest first, one row per conversation key.
    pub conversations: Vec<ConversationRow>,
    /// The `before` of the next page, when there is one.
    pub next_before: Option<i64>,
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
/// States of a delivery.
pub const STATES: &[&str] = &["pending", "done", "dead"];

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
            state: one_of("state", self.state.clone(), STATES)?,
            before: self.before,
            limit: self.limit.unwrap_or(PAGE_SIZE),
        })
    }
}
/// Builds one page of the conversation list.
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
    let mut rows = store.conversations(query).await?;
    let more = rows.len() as i64 > page;
    rows.truncate(page as usize);
    Ok(ConversationsView {
        next_before: more.then(|| rows.last().map(|r| r.id)).flatten(),
        conversations: rows,
    })
}

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
    /// The latest version's messages as support sees them, times in the admin's time zone.
    pub transcript: Vec<Line>,
    /// Every version, oldest first, with its deliveries.
    pub versions: Vec<VersionView>,
}

/// The visitor of a conversation.
#[derive(Debug, Default, Serialize)]
pub struct VisitorView {
    /// Name, email, or "Visitor #id".
    pub display_name: String,
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
    /// Every attempt logged, oldest first, numbered 1, 2, … across replays.
    pub attempts: Vec<AttemptInfo>,
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
    VisitorView {
        display_name: non_empty(&context["meta"]["visitorName"]).unwrap_or_default(),
        email: non_empty(&context["meta"]["email"]),
        note: non_empty(&v["note"]),
        location: Some(location).filter(|l| !l.is_empty()),
        ip_address: non_empty(&v["ipAddress"]),
        user_agent: non_empty(&v["userAgent"]),
        pages,
        variables,
    }
}

/// A delivery with its attempts, the request it sends now (masked) and its links; `None`
/// when no delivery has that id. The CLI's `deliveries show --json` prints the same.
pub async fn delivery(
    store: &Store,
    destinations: &[Arc<dyn Destination>],
    id: i64,
) -> Result<Option<DeliveryView>, crate::store::StoreError> {
    Ok(store.detail(id).await?.map(|detail| {
        delivery_view(
            destinations,
            detail.delivery,
            detail.attempts,
            &detail.raw,
            detail.received_at,
        )
    }))
}

/// The view of one delivery of the conversation version `raw`, received at `received_at`.
fn delivery_view(
    destinations: &[Arc<dyn Destination>],
    delivery: DeliveryInfo,
    mut attempts: Vec<AttemptInfo>,
    raw: &[u8],
    received_at: i64,
) -> DeliveryView {
    // Numbered in the order of the log: a replay starts a fresh retry schedule, but its
    // attempts continue the count here.
    for (i, a) in attempts.iter_mut().enumerate() {
        a.attempt = i as i64 + 1;
    }
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
    DeliveryView {
        delivery,
        attempts,
        request,
        request_error,
        links,
    }
}

/// Builds a conversation's page from its stored versions and one query for the attempts of
/// all their deliveries.
pub async fn conversation(
    store: &Store,
    destinations: &[Arc<dyn Destination>],
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
    let ids = stored
        .iter()
        .flat_map(|v| v.deliveries.iter().map(|d| d.id))
        .collect();
    let mut attempts = store.attempts(ids).await?;
    let versions = stored
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
                    delivery_view(destinations, d.clone(), logged, &v.raw, v.received_at)
                })
                .collect(),
        })
        .collect();
    Ok(ConversationView {
        key: key.to_string(),
        kind: non_empty(&context["meta"]["kind"]).unwrap_or_else(|| "chat".into()),
        rating: context["channel"]["rating"]
            .as_i64()
            .filter(|r| (1..=5).contains(r)),
        visitor: visitor_view,
        transcript,
        versions,
    })
}

/// The dead letters page.
#[derive(Debug, Serialize)]
pub struct DeadView {
    /// Dead deliveries, newest first.
    pub deliveries: Vec<DeliveryInfo>,
    /// Their ids, comma-separated (what "retry all shown" replays).
    pub ids: String,
}

/// Most dead letters listed at once.
pub const DEAD_LIMIT: i64 = 200;

/// Builds the dead letters page, optionally of one destination.
pub async fn dead(store: &Store, destination: Option<String>) -> Result<DeadView, AdminError> {
    let deliveries = store
        .deliveries(DeliveryFilter {
            state: Some("dead".into()),
            destination: destination.filter(|d| !d.is_empty()),
            since: None,
            limit: DEAD_LIMIT,
        })
        .await?;
    let ids = deliveries
        .iter()
        .map(|d| d.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(DeadView { deliveries, ids })
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
