//! What operators read and change: delivery lists and details, replays, conversations,
//! erasure and retention. The same types for every backend.

mod sql;

pub use sql::*;

use crate::store::DeliveryState;
use bytes::Bytes;
use serde::Serialize;

/// A recorded error as shown: URLs in it masked ([`crate::redact::urls_in`]), for errors
/// recorded before attempts masked their own.
pub fn shown_error(error: Option<String>) -> Option<String> {
    error.map(|e| crate::redact::urls_in(&e))
}

/// One delivery as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    /// Delivery id.
    pub id: i64,
    /// Conversation key.
    pub key: String,
    /// Conversation version.
    pub version: i64,
    /// Destination name.
    pub destination: String,
    /// `pending`, `done` or `dead`.
    pub state: DeliveryState,
    /// Attempts logged, across replays: the count every page and command shows.
    pub attempts: i64,
    /// Attempts counted by the current retry schedule (since the last replay).
    pub schedule_attempts: i64,
    /// When it is due (epoch ms; pending only).
    pub next_attempt_at: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// What the destination created (JSON).
    pub result: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms of the last change.
    pub updated_at: i64,
    /// The start of the last attempt's response body, when it had one.
    pub last_response: Option<String>,
    /// The HTTP status of the last attempt, when a response came.
    pub last_status: Option<i64>,
    /// When it was last replayed (epoch ms)…
    pub replayed_at: Option<i64>,
    /// …and by whom: `admin` (the dashboard or its API) or `cli`.
    pub replayed_by: Option<String>,
    /// The request(s) the last attempt sent (secrets masked) while the delivery is not done;
    /// read only with one delivery's details, shown there as `last_request`.
    #[serde(skip)]
    pub last_request: Option<String>,
}

/// One replay of a delivery.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayInfo {
    /// When (epoch ms).
    pub at: i64,
    /// By whom: `admin` (the dashboard or its API) or `cli`.
    pub by: String,
    /// The state it left: `done` (sent again) or `dead` (retried).
    pub was: DeliveryState,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptInfo {
    /// 1, 2, …
    pub attempt: i64,
    /// Epoch ms.
    pub started_at: i64,
    /// Milliseconds.
    pub duration_ms: i64,
    /// HTTP status, when a response came.
    pub status: Option<i64>,
    /// Start of the response body.
    pub excerpt: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// The error in words (filled in by the admin views).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The replay this attempt followed, when it is the first attempt after one (filled in by
    /// the admin views).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayInfo>,
}

/// A delivery with its attempts and the conversation body it carries.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery.
    pub delivery: DeliveryInfo,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptInfo>,
    /// Its replays, oldest first.
    pub replays: Vec<ReplayInfo>,
    /// The raw hook body.
    pub raw: Bytes,
    /// When the conversation version was received (epoch ms).
    pub received_at: i64,
}

/// One stored version of a conversation.
#[derive(Debug, Clone)]
pub struct ConversationVersion {
    /// Conversation key.
    pub key: String,
    /// Version, from 1.
    pub version: i64,
    /// Epoch ms.
    pub received_at: i64,
    /// Client address the hook came from.
    pub client_ip: Option<String>,
    /// The raw body.
    pub raw: Bytes,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryInfo>,
}

/// Which deliveries a listing shows.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only this destination.
    pub destination: Option<String>,
    /// Only those changed at or after this epoch ms.
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// Which conversations a listing shows: newest first, one row per key (its latest version).
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    /// Matches the key exactly, or part of the visitor's email or name (case-insensitive).
    pub search: Option<String>,
    /// Only `chat`, `missed` or `offline`.
    pub kind: Option<String>,
    /// Only conversations with a delivery in this state.
    pub state: Option<DeliveryState>,
    /// Only rows older than this row id (the next page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// One conversation as listed: its latest version and the states of all its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationRow {
    /// Row id of the latest version (the paging cursor).
    pub id: i64,
    /// Conversation key.
    pub key: String,
    /// Latest version.
    pub version: i64,
    /// When the latest version was received (epoch ms).
    pub received_at: i64,
    /// `chat`, `missed` or `offline`.
    pub kind: String,
    /// The visitor's name.
    pub visitor_name: Option<String>,
    /// The visitor's email.
    pub visitor_email: Option<String>,
    /// Deliveries of every version, by state.
    pub deliveries: StateCounts,
    /// When the chat began (epoch ms), when the body says.
    pub began_at: Option<i64>,
    /// When it ended (epoch ms), when the body says.
    pub ended_at: Option<i64>,
    /// Destinations with a dead delivery of it, by name.
    pub dead_destinations: Vec<String>,
    /// Destinations with a pending delivery of it whose last attempt failed (being retried).
    pub retrying_destinations: Vec<String>,
}

impl ConversationRow {
    /// Destination names from a comma-separated aggregate, sorted.
    pub fn names(list: Option<String>) -> Vec<String> {
        let mut names: Vec<String> = list
            .unwrap_or_default()
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A dead delivery with what the dead letters page shows of its conversation.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryInfo,
    /// `chat`, `missed` or `offline`.
    pub kind: String,
    /// The visitor's name.
    pub visitor_name: Option<String>,
    /// The visitor's email.
    pub visitor_email: Option<String>,
    /// When the conversation version was received (epoch ms).
    pub received_at: i64,
}

/// Deliveries by state.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StateCounts {
    /// Not yet done or dead.
    pub pending: i64,
    /// Accepted by the destination.
    pub done: i64,
    /// Given up; replayable.
    pub dead: i64,
}

/// What the dashboard's overview shows, from the store.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overview {
    /// Conversation versions received in the last hour.
    pub hooks_last_hour: i64,
    /// Conversation versions received in the last 24 hours.
    pub hooks_last_day: i64,
    /// Every delivery, by state.
    pub deliveries: StateCounts,
    /// Per destination that has deliveries.
    pub destinations: Vec<DestinationStats>,
    /// When the newest conversation version was received (epoch ms): is Smartsupp sending?
    pub last_received_at: Option<i64>,
}

/// One destination's deliveries.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DestinationStats {
    /// Destination name.
    pub destination: String,
    /// Pending now.
    pub pending: i64,
    /// Creation time of the oldest pending delivery (epoch ms).
    pub oldest_pending_at: Option<i64>,
    /// Delivered in the last 24 hours.
    pub done_last_day: i64,
    /// Given up in the last 24 hours.
    pub dead_last_day: i64,
    /// Dead now (whenever they died): what the dead letters page lists of it.
    pub dead: i64,
    /// The newest delivery whose last attempt failed: its error…
    pub last_error: Option<String>,
    /// …when (epoch ms)…
    pub last_error_at: Option<i64>,
    /// …the HTTP status of its last attempt…
    pub last_error_status: Option<i64>,
    /// …and the start of that attempt's response.
    pub last_error_response: Option<String>,
}

/// Deliveries to replay.
#[derive(Debug, Clone)]
pub enum Replay {
    /// These ids (done or dead; pending ones are left alone).
    Ids(Vec<i64>),
    /// Every dead delivery, optionally of one destination and changed since an epoch ms.
    Dead {
        /// Only this destination.
        destination: Option<String>,
        /// Only those that died at or after this epoch ms.
        since: Option<i64>,
    },
}

/// Who replays deliveries, as their replays record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayer {
    /// The admin, from the dashboard or with the admin API.
    Admin,
    /// An operator with `deskbridge deliveries retry`.
    Cli,
}

impl Replayer {
    /// The name stored with the replay.
    pub fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Cli => "cli",
        }
    }
}

/// What erasing one visitor's conversation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erased {
    /// These many versions were deleted, with their deliveries and attempts.
    Deleted(usize),
    /// No conversation has that key.
    NotFound,
    /// Deliveries are still pending; nothing was deleted.
    Pending(usize),
}

/// What retention removes (or, on a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// Conversation versions.
    pub conversations: usize,
    /// Their deliveries.
    pub deliveries: usize,
    /// Smartsupp Webhooks API events received before the cut-off whose conversation is not
    /// waiting for assembly.
    pub events: usize,
}

/// The retention rule: a conversation version goes when none of its deliveries is pending, it
/// was received before `received_before`, and each of its dead deliveries died before
/// `dead_before`.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Epoch ms.
    pub received_before: i64,
    /// Epoch ms.
    pub dead_before: i64,
}

impl Retention {
    /// The rule of `store.retention` (or `older_than` instead) and `store.dead_retention`, now.
    pub fn of(
        settings: &crate::config::StoreSettings,
        older_than: Option<crate::config::HumanDuration>,
    ) -> Self {
        let now = super::now_ms();
        Self {
            received_before: older_than.unwrap_or(settings.retention).before(now),
            dead_before: settings.dead_retention.before(now),
        }
    }
}
