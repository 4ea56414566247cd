//! Smartsupp Webhooks API events in the store: each event as received, the conversations
//! waiting for assembly (driven from here, so a restart loses none), and the import cursor.

use super::{Backend, Store, StoreError};
use bytes::Bytes;

/// Events that close a conversation: its assembly is scheduled `settle` after one.
pub const CLOSING: &[&str] = &["conversation.closed", "conversation.closed_by_contact"];
/// Events that open or close a conversation: the latest of them says whether it is closed.
pub const STATE_EVENTS: &[&str] = &[
    "conversation.opened",
    "conversation.closed",
    "conversation.closed_by_contact",
];
/// Events that change nothing a ticket shows: they never schedule an assembly.
pub const QUIET: &[&str] = &[
    "conversation.message_delivered",
    "conversation.message_delivery_failed",
];

/// An event to commit.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// SHA-256 of the raw body: the same digest again is a duplicate.
    pub digest: [u8; 32],
    /// The body exactly as received.
    pub raw: Bytes,
    /// The envelope's `event`.
    pub event: String,
    /// The envelope's `account_id` (`0` when missing).
    pub account_id: String,
    /// The conversation's id, when the event names one.
    pub conversation_id: Option<String>,
    /// The contact's id, for `contact.*` events (and conversations that name one).
    pub contact_id: Option<String>,
    /// The envelope's `timestamp` (epoch ms), when readable.
    pub occurred_at: Option<i64>,
    /// Epoch ms.
    pub received_at: i64,
    /// Client address (after trusted-proxy handling).
    pub client_ip: Option<String>,
    /// When an assembly this event schedules is due (epoch ms).
    pub due_at: i64,
}

impl NewEvent {
    /// The conversation key, `<account_id>-<conversation id>`, when the event names one.
    pub fn conversation_key(&self) -> Option<String> {
        self.conversation_id
            .as_ref()
            .map(|id| format!("{}-{id}", self.account_id))
    }

    /// The contact key, `<account_id>-<contact id>`.
    pub fn contact_key(&self) -> Option<String> {
        self.contact_id
            .as_ref()
            .map(|id| format!("{}-{id}", self.account_id))
    }

    /// Whether this event may schedule an assembly of its conversation (it does when it
    /// closes it, or when the conversation's latest open/close event is a close).
    pub fn may_schedule(&self) -> bool {
        self.conversation_id.is_some() && !QUIET.contains(&self.event.as_str())
    }
}

/// What committing an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventIngested {
    /// Stored; `scheduled` when it (re)scheduled its conversation's assembly.
    Stored {
        /// Row id.
        id: i64,
        /// Whether the conversation now waits for assembly because of it.
        scheduled: bool,
    },
    /// The identical body was stored before; nothing was written.
    Duplicate,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Row id (arrival order).
    pub id: i64,
    /// The envelope's `event`.
    pub event: String,
    /// The body as received.
    pub raw: Bytes,
    /// Epoch ms.
    pub received_at: i64,
    /// The envelope's `timestamp` (epoch ms).
    pub occurred_at: Option<i64>,
}

/// A conversation reserved for assembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembly {
    /// `<account_id>-<conversation id>`.
    pub key: String,
    /// Smartsupp's account id.
    pub account_id: String,
    /// Smartsupp's conversation id.
    pub conversation_id: String,
    /// Counted up by every event that scheduled it: finishing a generation that has moved on
    /// leaves the conversation due again.
    pub generation: i64,
    /// Assembly attempts that failed before this one (REST API outages).
    pub attempts: i64,
}

/// How an assembly attempt ended.
#[derive(Debug, Clone)]
pub enum AssemblyOutcome {
    /// Assembled and ingested (or nothing to assemble).
    Done,
    /// Try again at this epoch ms.
    Retry {
        /// When.
        at: i64,
        /// Why not now.
        error: String,
    },
}

impl Store {
    /// Commits an event and, where it closes its conversation (or arrives after the close),
    /// schedules the conversation's assembly; resolves after the commit is on disk.
    pub async fn ingest_event(&self, event: NewEvent) -> Result<EventIngested, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.ingest_event(event).await,
            Backend::Postgres(p) => p.ingest_event(event).await,
        }
    }

    /// Reserves up to `limit` conversations whose assembly is due, until `lease_until`.
    pub async fn claim_assemblies(
        &self,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Assembly>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.claim_assemblies(limit, lease_until).await,
            Backend::Postgres(p) => p.claim_assemblies(limit, lease_until).await,
        }
    }

    /// Ends an assembly: done (forgotten unless an event came meanwhile) or due again later.
    pub async fn finish_assembly(
        &self,
        assembly: &Assembly,
        outcome: AssemblyOutcome,
    ) -> Result<(), StoreError> {
        let (key, generation) = (assembly.key.clone(), assembly.generation);
        match &*self.backend {
            Backend::Sqlite(s) => s.finish_assembly(key, generation, outcome).await,
            Backend::Postgres(p) => p.finish_assembly(key, generation, outcome).await,
        }
    }

    /// The events of a conversation, and of `contact` (a contact key) when given, in order of
    /// arrival.
    pub async fn events(
        &self,
        conversation: String,
        contact: Option<String>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.events(conversation, contact).await,
            Backend::Postgres(p) => p.events(conversation, contact).await,
        }
    }

    /// How many conversations wait for assembly.
    pub async fn assemblies_pending(&self) -> Result<i64, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.assemblies_pending().await,
            Backend::Postgres(p) => p.assemblies_pending().await,
        }
    }

    /// Whether a conversation with this key was received by hook or as events.
    pub async fn conversation_known(&self, key: String) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.conversation_known(key).await,
            Backend::Postgres(p) => p.conversation_known(key).await,
        }
    }

    /// The saved cursor of the import named `name`.
    pub async fn import_cursor(&self, name: String) -> Result<Option<String>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.import_cursor(name).await,
            Backend::Postgres(p) => p.import_cursor(name).await,
        }
    }

    /// Saves (or with `None` forgets) the cursor of the import named `name`.
    pub async fn save_import_cursor(
        &self,
        name: String,
        cursor: Option<String>,
    ) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.save_import_cursor(name, cursor).await,
            Backend::Postgres(p) => p.save_import_cursor(name, cursor).await,
        }
    }
}
