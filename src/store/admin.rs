//! What operators read and change: delivery lists and details, replays, conversations,
//! erasure and retention. The same types for every backend.

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
    /// The start of the last attempt's response body, when it had one.
    pub last_response: Option<String>,
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

/// Which conversations a listing shows: newest first, one row per key (its latest version).
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    /// Matches the key exactly, or part of the visitor's email or name (case-insensitive).
    pub search: Option<String>,
    /// Only `chat`, `missed` or `offline`.
    pub kind: Option<String>,
    /// Only conversations with a delivery in this state.
    pub state: Option<String>,
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
    /// The newest delivery whose last attempt failed: its error…
    pub last_error: Option<String>,
    /// …and when (epoch ms).
    pub last_error_at: Option<i64>,
}

/// The SQL dialect of a backend, where their queries differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1` placeholders; LIKE ignores ASCII case; rows carry whole bodies, so a search first
    /// reads the narrow visitor index (`CROSS JOIN` keeps that order).
    Sqlite,
    /// `$1::type` placeholders; ILIKE; bodies are stored out of line (TOAST), so scanning the
    /// newest rows and filtering is cheap; deliveries carry their conversation's key.
    Postgres,
}

/// A query parameter, bound by each backend in its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
}

/// The SQL of [`ConversationQuery`] and its parameters in order. Only the filters given
/// appear, so each can use its index, and the page's ids are chosen before the delivery
/// counts are computed for them alone. The newest rows are read until the page is full; on
/// SQLite a search instead finds its matches first (the key by its index, email and name in
/// one pass over the narrow visitor index) and checks only those.
pub fn conversations_sql(dialect: Dialect, q: &ConversationQuery) -> (String, Vec<Param>) {
    let mut params = Vec::new();
    let mut bind = |param: Param| {
        let cast = match (&param, dialect) {
            (_, Dialect::Sqlite) => "",
            (Param::Text(_), Dialect::Postgres) => "::text",
            (Param::Int(_), Dialect::Postgres) => "::int8",
        };
        params.push(param);
        match dialect {
            Dialect::Sqlite => format!("?{}", params.len()),
            Dialect::Postgres => format!("${}{cast}", params.len()),
        }
    };
    // The deliveries of every version of conversation `c`.
    let deliveries_of_c = match dialect {
        Dialect::Sqlite => {
            "conversations v JOIN deliveries d ON d.conversation_id = v.id WHERE v.key = c.key"
        }
        Dialect::Postgres => "deliveries d WHERE d.key = c.key",
    };
    let mut from = "conversations c".to_string();
    let mut conditions = vec![
        "NOT EXISTS (SELECT 1 FROM conversations n WHERE n.key = c.key AND n.version > c.version)"
            .to_string(),
    ];
    if let Some(search) = &q.search {
        let s = bind(Param::Text(search.clone()));
        let pat = bind(Param::Text(like_pattern(search)));
        match dialect {
            Dialect::Sqlite => {
                from = format!(
                    "(SELECT id FROM conversations WHERE key = {s}
                      UNION SELECT id FROM conversations
                            WHERE visitor_email LIKE {pat} ESCAPE '\\' OR visitor_name LIKE {pat} ESCAPE '\\') h
                     CROSS JOIN conversations c ON c.id = h.id"
                )
            }
            Dialect::Postgres => conditions.push(format!(
                "(c.key = {s} OR c.visitor_email ILIKE {pat} ESCAPE '\\'
                  OR c.visitor_name ILIKE {pat} ESCAPE '\\')"
            )),
        }
    }
    if let Some(kind) = &q.kind {
        conditions.push(format!("c.kind = {}", bind(Param::Text(kind.clone()))));
    }
    if let Some(state) = &q.state {
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM {deliveries_of_c} AND d.state = {})",
            bind(Param::Text(state.clone()))
        ));
    }
    if let Some(before) = q.before {
        conditions.push(format!("c.id < {}", bind(Param::Int(before))));
    }
    let limit = bind(Param::Int(q.limit));
    let count =
        |state: &str| format!("(SELECT COUNT(*) FROM {deliveries_of_c} AND d.state = '{state}')");
    let sql = format!(
        "SELECT c.id, c.key, c.version, c.received_at, c.kind, c.visitor_name, c.visitor_email,
                {pending}, {done}, {dead}
         FROM conversations c
         WHERE c.id IN (SELECT c.id FROM {from} WHERE {conditions}
                        ORDER BY c.id DESC LIMIT {limit})
         ORDER BY c.id DESC",
        pending = count("pending"),
        done = count("done"),
        dead = count("dead"),
        conditions = conditions.join(" AND "),
    );
    (sql, params)
}

/// A search text as a `LIKE … ESCAPE '\\'` pattern matching it anywhere (the backends compare
/// case-insensitively).
pub fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Per-destination counts for the overview; parameter 1 is the start of the last day.
pub fn destination_stats_sql(p1: &str) -> String {
    format!(
        "SELECT destination,
                SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END),
                MIN(CASE WHEN state = 'pending' THEN created_at END),
                SUM(CASE WHEN state = 'done' AND updated_at >= {p1} THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'dead' AND updated_at >= {p1} THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END)
         FROM deliveries GROUP BY destination ORDER BY destination"
    )
}

/// The newest failure of one destination; parameter 1 is the destination.
pub fn last_error_sql(p1: &str) -> String {
    format!(
        "SELECT last_error, updated_at FROM deliveries
         WHERE destination = {p1} AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1"
    )
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
        Self {
            received_before: older_than.unwrap_or(settings.retention).before(now),
            dead_before: settings.dead_retention.before(now),
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
     d.next_attempt_at, d.last_error, d.result, d.created_at, d.updated_at, \
     (SELECT a.excerpt FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1)";
