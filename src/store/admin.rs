//! What operators read and change: delivery lists and details, replays, conversations,
//! erasure and retention. The same types for every backend.

use bytes::Bytes;
use serde::Serialize;

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
    pub state: String,
    /// Attempts recorded.
    pub attempts: i64,
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
}

/// A delivery with its attempts and the conversation body it carries.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery.
    pub delivery: DeliveryInfo,
    /// Its attempts, oldest first.
    pub attempts: Vec<AttemptInfo>,
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
    pub state: Option<String>,
    /// Only this destination.
    pub destination: Option<String>,
    /// Only those changed at or after this epoch ms.
    pub since: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
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
        let age = |d: crate::config::HumanDuration| now - d.0.as_millis() as i64;
        Self {
            received_before: age(older_than.unwrap_or(settings.retention)),
            dead_before: age(settings.dead_retention),
        }
    }
}

/// The SQL condition (on conversation alias `c`) of [`Retention`]; parameters 1 and 2 are
/// `received_before` and `dead_before`, written in each backend's placeholder style.
pub fn retention_condition(p1: &str, p2: &str) -> String {
    format!(
        "c.received_at < {p1}
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.conversation_id = c.id AND d.state = 'pending')
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.conversation_id = c.id AND d.state = 'dead'
                         AND d.updated_at >= {p2})"
    )
}

/// Columns of [`DeliveryInfo`], for `d` joined with conversation `c`.
pub const DELIVERY_COLUMNS: &str = "d.id, c.key, c.version, d.destination, d.state, d.attempts, \
     d.next_attempt_at, d.last_error, d.result, d.created_at, d.updated_at";
