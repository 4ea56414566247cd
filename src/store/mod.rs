//! The store: conversations, deliveries and the attempt log behind one backend-neutral façade.
//!
//! Every write is durable before its future resolves. Backends: SQLite (one writer thread with
//! group commit; one instance) and PostgreSQL (several instances share the queue). A claim
//! reserves deliveries with a lease and returns at once; no transaction is ever open while a
//! delivery is attempted.

pub mod admin;
pub mod events;
pub mod oauth;
mod postgres;
mod sqlite;
mod state;

pub use state::{DeliveryState, UnknownState};

use admin::{
    AttemptInfo, ConversationQuery, ConversationRow, ConversationVersion, DeadLetter,
    DeliveryDetail, DeliveryFilter, DeliveryInfo, Erased, Overview, Purged, Replay, ReplayInfo,
    Replayer, Retention,
};

use crate::smartsupp::Stored;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened or cannot commit; nothing was written. `message` says
    /// what failed in words (with the driver's own words); `source` is the driver's error,
    /// where there was one.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, in words.
        message: String,
        /// The driver's or the operating system's error.
        #[source]
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// The store URL is not one deskbridge understands.
    #[error("unsupported store url {0:?} (use sqlite://path/to/file.sqlite or postgres://user:password@host/database)")]
    BadUrl(String),
    /// A PostgreSQL URL whose parameters cannot be used (e.g. its TLS settings).
    #[error("store.url: {0}")]
    Settings(String),
}

impl StoreError {
    /// The store is unavailable for a reason deskbridge states itself.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// The store is unavailable because of `error` (its text, after `context` when given);
    /// the error is kept as the source.
    pub fn caused<E: std::error::Error + Send + Sync + 'static>(context: &str, error: E) -> Self {
        let text = crate::destinations::http::error_chain(&error);
        Self::Unavailable {
            message: if context.is_empty() {
                text
            } else {
                format!("{context}: {text}")
            },
            source: Some(Arc::new(error)),
        }
    }
}

/// A conversation to commit, with the destinations it was routed to.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// Conversation key (`<accountId>-<channel.id>`).
    pub key: String,
    /// SHA-256 of the raw body: the same digest again is a duplicate.
    pub digest: [u8; 32],
    /// The body exactly as received.
    pub raw: Bytes,
    /// Epoch milliseconds.
    pub received_at: i64,
    /// Client address (after trusted-proxy handling).
    pub client_ip: Option<String>,
    /// `chat`, `missed` or `offline` (for listing and filtering).
    pub kind: &'static str,
    /// The visitor's name (for search).
    pub visitor_name: Option<String>,
    /// The visitor's email, lowercased (for search).
    pub visitor_email: Option<String>,
    /// When the chat began (epoch ms), for listing.
    pub began_at: Option<i64>,
    /// When it ended (epoch ms), for listing.
    pub ended_at: Option<i64>,
    /// Destinations that get a delivery.
    pub destinations: Vec<Routed>,
}

/// A delivery to create: due at once, or dead from the start when routing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Destination name.
    pub destination: String,
    /// Why routing failed (the `when` expression's error); the delivery is then dead and
    /// can be replayed once the expression is fixed.
    pub error: Option<String>,
    /// Claimed for this instance's lane until this epoch ms, in the same commit, when the
    /// lane has room to attempt it at once ([`Ingested::Accepted::leased`]); honoured for a
    /// conversation's first version by a store that hands deliveries over (SQLite).
    pub lease_until: Option<i64>,
}

/// What committing a conversation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// A new conversation or a new version of one, with its deliveries.
    Accepted {
        /// Version of the key, from 1.
        version: i64,
        /// Deliveries created.
        deliveries: usize,
        /// The deliveries committed already claimed (see [`Routed::lease_until`]): the index
        /// of each in the conversation's destinations, and its id. Claimed once; the caller
        /// hands each to its lane.
        leased: Vec<(usize, i64)>,
    },
    /// The identical body was stored before; nothing was written.
    Duplicate,
}

/// A delivery reserved for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Delivery id.
    pub id: i64,
    /// Destination name.
    pub destination: String,
    /// Attempts recorded before this one.
    pub attempts: i64,
    /// Claims before this one (an attempt may have been cut short without a record).
    pub claims: i64,
    /// The conversation version it carries.
    pub conversation: Stored,
    /// The raw hook body.
    pub raw: Bytes,
    /// What earlier attempts recorded (JSON), e.g. ids of objects already created.
    pub result: Option<String>,
    /// What the done delivery of the latest earlier version of the same conversation to the
    /// same destination recorded, if any. Earlier versions are delivered (or dead) first.
    pub previous: Option<String>,
}

impl Claimed {
    /// The number of the claim this is (the delivery's claim counter after it): what an
    /// attempt under it gives [`Store::record`].
    pub fn held(&self) -> i64 {
        self.claims + 1
    }
}

/// Deliveries reserved by one claim, and when the next one of that destination is due.
#[derive(Debug, Clone, Default)]
pub struct ClaimBatch {
    /// The reserved deliveries.
    pub deliveries: Vec<Claimed>,
    /// Epoch ms of the earliest pending delivery left for that destination.
    pub next_due: Option<i64>,
}

/// One attempt for the attempt log.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    /// Epoch ms when the attempt started.
    pub started_at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    /// Start of the response body.
    pub excerpt: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// The request(s) the attempt sent, secrets masked; kept with the delivery while it is
    /// not done (`None`: nothing was sent, and what an earlier attempt sent stays).
    pub request: Option<String>,
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered.
    Done,
    /// Try again at this epoch ms.
    Retry(i64),
    /// Given up; kept for replay.
    Dead,
    /// Not attempted (the destination is parked): due again at this epoch ms, and the
    /// attempt does not count against the retry schedule.
    Defer(i64),
}

impl Next {
    /// The delivery's new `state`, its new due time (`None`: unchanged) and how many attempts
    /// this one counts for, as every backend stores them.
    pub fn columns(self) -> (DeliveryState, Option<i64>, i32) {
        match self {
            Self::Done => (DeliveryState::Done, None, 1),
            Self::Dead => (DeliveryState::Dead, None, 1),
            Self::Retry(at) => (DeliveryState::Pending, Some(at), 1),
            Self::Defer(at) => (DeliveryState::Pending, Some(at), 0),
        }
    }
}

/// Counts for metrics and readiness.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Deliveries not yet done or dead.
    pub pending: i64,
    /// Epoch ms of the oldest pending delivery's creation.
    pub oldest_pending: Option<i64>,
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The store façade: cheap to clone, one backend behind it.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Why the last commit of a conversation failed, and the size of its body, while no later
    /// one has succeeded.
    commit_failure: Arc<Mutex<Option<(String, usize)>>>,
    /// Whether `commit_failure` holds a failure.
    commit_failed: Arc<AtomicBool>,
}

/// What a readiness write probe adds to twice the size of the conversation that failed.
const MIN_PROBE_BYTES: usize = 16 * 1024;

/// Named values in the store's `meta` table.
pub mod meta {
    /// Epoch ms before which every admin session is over (raised by signing out).
    pub const SESSIONS_VALID_AFTER: &str = "sessions_valid_after";
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Why the parameters of a PostgreSQL `url` cannot be used (TLS settings, CA file, options the
/// driver does not know), checked without connecting; `None` when they can.
pub fn postgres_url_problem(url: &str) -> Option<String> {
    postgres::tls::settings(url).err().map(|e| e.to_string())
}

impl Store {
    /// Opens the store at `url` (creating and migrating it if needed); `pool_size` is the
    /// most connections a PostgreSQL store opens.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let backend = if let Some(path) = url.strip_prefix("sqlite://") {
            Backend::Sqlite(sqlite::SqliteStore::open(path)?)
        } else if is_postgres(url) {
            Backend::Postgres(postgres::PgStore::open(url, pool_size).await?)
        } else {
            return Err(StoreError::BadUrl(crate::redact::url(url)));
        };
        Ok(Self {
            backend: Arc::new(backend),
            commit_failure: Arc::default(),
            commit_failed: Arc::default(),
        })
    }

    /// Whether a new conversation's deliveries may be committed claimed for this instance's
    /// lanes ([`Routed::lease_until`]): with SQLite, the one instance; with PostgreSQL every
    /// delivery goes through the queue every instance claims from.
    pub fn hands_over(&self) -> bool {
        matches!(&*self.backend, Backend::Sqlite(_))
    }

    /// After a start: with SQLite (one instance), leases left by a crash are released so their
    /// deliveries are due at once. With PostgreSQL other instances may hold leases; expired
    /// ones become due by themselves.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => {
                s.release_assemblies().await?;
                s.release_all().await
            }
            Backend::Postgres(_) => Ok(0),
        }
    }

    /// Commits a conversation and its deliveries; resolves after the commit is on disk. The
    /// outcome is remembered for [`Store::ready`].
    pub async fn ingest(&self, conversation: NewConversation) -> Result<Ingested, StoreError> {
        let size = conversation.raw.len();
        let result = match &*self.backend {
            Backend::Sqlite(s) => s.ingest(conversation).await,
            Backend::Postgres(p) => p.ingest(conversation).await,
        };
        let failure = result.as_ref().err().map(|e| (e.to_string(), size));
        // The hot path (a commit after commits) takes no lock.
        if failure.is_some() || self.commit_failed.load(Ordering::Relaxed) {
            let mut last = self
                .commit_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.commit_failed
                .store(failure.is_some(), Ordering::Relaxed);
            *last = failure;
        }
        result
    }

    /// Succeeds when a conversation can be committed now: the store answers, and when the last
    /// commit of a conversation failed (a full disk, a read-only database), a write larger than
    /// that conversation commits. Recovers by itself once commits succeed.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let failed = self
            .commit_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((failure, size)) = failed else {
            return self.ping().await;
        };
        // Twice the body and then some: the conversation's commit also wrote its indexes and
        // deliveries, so a probe no larger could pass where the conversation cannot.
        let pad = size.saturating_mul(2).saturating_add(MIN_PROBE_BYTES);
        let probe = match &*self.backend {
            Backend::Sqlite(s) => s.probe_write(now_ms(), pad).await,
            Backend::Postgres(p) => p.probe_write(now_ms(), pad).await,
        };
        match probe {
            Ok(()) => {
                let mut last = self
                    .commit_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                self.commit_failed.store(false, Ordering::Relaxed);
                *last = None;
                Ok(())
            }
            Err(e) => Err(StoreError::unavailable(format!(
                "conversations cannot be committed ({failure}); a write probe failed too: {e}"
            ))),
        }
    }

    /// The stored OAuth row of `name`, seeded with `refresh_token` (whose digest is `seed`)
    /// when there is none, or when the configuration gives a refresh token never seen before
    /// (the admin authorised again): then the new one replaces the stored one. A configured
    /// token seen before (an instance not yet reloaded) changes nothing.
    pub async fn oauth_seed(
        &self,
        name: &str,
        seed: &str,
        refresh_token: &str,
    ) -> Result<oauth::OAuthRow, StoreError> {
        let (name, seed, token) = (
            name.to_string(),
            seed.to_string(),
            refresh_token.to_string(),
        );
        match &*self.backend {
            Backend::Sqlite(s) => s.oauth_seed(name, seed, token).await,
            Backend::Postgres(p) => p.oauth_seed(name, seed, token).await,
        }
    }

    /// The stored OAuth row of `name`.
    pub async fn oauth_row(&self, name: &str) -> Result<Option<oauth::OAuthRow>, StoreError> {
        let name = name.to_string();
        match &*self.backend {
            Backend::Sqlite(s) => s.oauth_row(name).await,
            Backend::Postgres(p) => p.oauth_row(name).await,
        }
    }

    /// Takes the renewal of `name` at `generation` until `until` (epoch ms); `false` when
    /// another instance holds it or has renewed already.
    pub async fn oauth_begin(
        &self,
        name: &str,
        generation: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let name = name.to_string();
        match &*self.backend {
            Backend::Sqlite(s) => s.oauth_begin(name, generation, until).await,
            Backend::Postgres(p) => p.oauth_begin(name, generation, until).await,
        }
    }

    /// Stores a renewal made at `generation` (counting it up) and gives the renewal back;
    /// `false` when the row moved on meanwhile (nothing written).
    pub async fn oauth_renewed(
        &self,
        name: &str,
        generation: i64,
        renewed: oauth::Renewed,
    ) -> Result<bool, StoreError> {
        let name = name.to_string();
        match &*self.backend {
            Backend::Sqlite(s) => s.oauth_renewed(name, generation, renewed).await,
            Backend::Postgres(p) => p.oauth_renewed(name, generation, renewed).await,
        }
    }

    /// Gives back a renewal of `name` at `generation` that did not happen.
    pub async fn oauth_abandon(&self, name: &str, generation: i64) -> Result<(), StoreError> {
        let name = name.to_string();
        match &*self.backend {
            Backend::Sqlite(s) => s.oauth_abandon(name, generation).await,
            Backend::Postgres(p) => p.oauth_abandon(name, generation).await,
        }
    }

    /// The value named `name` in the shared `meta` table ([`meta`]), if set.
    pub async fn meta(&self, name: &'static str) -> Result<Option<i64>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.meta(name).await,
            Backend::Postgres(p) => p.meta(name).await,
        }
    }

    /// Raises the value named `name` to at least `value`.
    pub async fn raise_meta(&self, name: &'static str, value: i64) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.raise_meta(name, value).await,
            Backend::Postgres(p) => p.raise_meta(name, value).await,
        }
    }

    /// Reserves up to `limit` due deliveries of `destination` until `lease_until` (epoch ms).
    pub async fn claim(
        &self,
        destination: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<ClaimBatch, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.claim(destination, limit, lease_until).await,
            Backend::Postgres(p) => p.claim(destination, limit, lease_until).await,
        }
    }

    /// Logs an attempt and moves the delivery to `next`; `result` replaces the stored result.
    /// Only the holder of the latest claim may record: `claim` is [`Claimed::held`] of the claim
    /// the attempt ran under. `Ok(false)` means the delivery was claimed again since (its lease
    /// ran out and another attempt, perhaps on another instance, owns it now) and nothing was
    /// written.
    pub async fn record(
        &self,
        delivery: i64,
        claim: i64,
        attempt: AttemptRecord,
        next: Next,
        result: Option<String>,
    ) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.record(delivery, claim, attempt, next, result).await,
            Backend::Postgres(p) => p.record(delivery, claim, attempt, next, result).await,
        }
    }

    /// Keeps `result` (a multi-step delivery's progress) with delivery `delivery` while its
    /// attempt runs, under claim number `claim` as for [`Store::record`]; `Ok(false)` when
    /// that claim is no longer held and nothing was written.
    pub async fn checkpoint(
        &self,
        delivery: i64,
        claim: i64,
        result: String,
    ) -> Result<bool, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.checkpoint(delivery, claim, result).await,
            Backend::Postgres(p) => p.checkpoint(delivery, claim, result).await,
        }
    }

    /// Makes the leased deliveries `ids` due now (on shutdown, for unfinished work).
    pub async fn release(&self, ids: Vec<i64>) -> Result<usize, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.release(ids).await,
            Backend::Postgres(p) => p.release(ids).await,
        }
    }

    /// Pending count and oldest pending creation time.
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.stats().await,
            Backend::Postgres(p) => p.stats().await,
        }
    }

    /// Deliveries matching `filter`, newest first.
    pub async fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.deliveries(filter).await,
            Backend::Postgres(p) => p.deliveries(filter).await,
        }
    }

    /// One delivery with its attempts and conversation body.
    pub async fn detail(&self, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.detail(id).await,
            Backend::Postgres(p) => p.detail(id).await,
        }
    }

    /// Makes done or dead deliveries due now with a fresh schedule, recording each replay as
    /// made `by` the admin or the command line; returns how many.
    pub async fn replay(&self, what: Replay, by: Replayer) -> Result<usize, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.replay(what, by).await,
            Backend::Postgres(p) => p.replay(what, by).await,
        }
    }

    /// The replays of each of `deliveries`, oldest first.
    pub async fn replays(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<ReplayInfo>>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.replays(deliveries).await,
            Backend::Postgres(p) => p.replays(deliveries).await,
        }
    }

    /// How many conversations the filters of `query` select (its paging aside), counting at
    /// most `cap` of them.
    pub async fn count_conversations(
        &self,
        query: ConversationQuery,
        cap: i64,
    ) -> Result<i64, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.count_conversations(query, cap).await,
            Backend::Postgres(p) => p.count_conversations(query, cap).await,
        }
    }

    /// The newest `limit` dead deliveries (of one destination), with what the dead letters
    /// page shows of their conversations, and how many are dead in all.
    pub async fn dead_letters(
        &self,
        destination: Option<String>,
        limit: i64,
    ) -> Result<(Vec<DeadLetter>, i64), StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.dead_letters(destination, limit).await,
            Backend::Postgres(p) => p.dead_letters(destination, limit).await,
        }
    }

    /// Every stored version of a conversation, with its deliveries.
    pub async fn conversation(&self, key: String) -> Result<Vec<ConversationVersion>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.conversation(key).await,
            Backend::Postgres(p) => p.conversation(key).await,
        }
    }

    /// The attempts of each of `deliveries`, oldest first.
    pub async fn attempts(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<AttemptInfo>>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.attempts(deliveries).await,
            Backend::Postgres(p) => p.attempts(deliveries).await,
        }
    }

    /// Conversations matching `query`, newest first, one row per key.
    pub async fn conversations(
        &self,
        query: ConversationQuery,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.conversations(query).await,
            Backend::Postgres(p) => p.conversations(query).await,
        }
    }

    /// Hooks received recently and deliveries by state and destination.
    pub async fn overview(&self) -> Result<Overview, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.overview(now_ms()).await,
            Backend::Postgres(p) => p.overview(now_ms()).await,
        }
    }

    /// Deletes a conversation (every version, delivery and attempt) unless a delivery is pending.
    pub async fn erase(&self, key: String) -> Result<Erased, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.erase(key).await,
            Backend::Postgres(p) => p.erase(key).await,
        }
    }

    /// Deletes (or counts, on a dry run) what the retention rule allows.
    pub async fn purge(&self, rule: Retention, dry_run: bool) -> Result<Purged, StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.purge(rule, dry_run).await,
            Backend::Postgres(p) => p.purge(rule, dry_run).await,
        }
    }

    /// Succeeds when the store can answer a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &*self.backend {
            Backend::Sqlite(s) => s.ping().await,
            Backend::Postgres(p) => p.ping().await,
        }
    }
}

#[cfg(test)]
mod error_tests {
    use super::StoreError;
    use std::error::Error as _;

    #[test]
    fn a_driver_error_is_kept_as_the_source_and_quoted_in_the_message() {
        let e = StoreError::caused("commit failed", std::io::Error::other("disk full"));
        assert_eq!(e.to_string(), "store unavailable: commit failed: disk full");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("disk full")
        );
        let own = StoreError::unavailable("the store writer has stopped");
        assert!(own.source().is_none());
    }
}
