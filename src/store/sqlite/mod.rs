//! SQLite backend: one writer thread owns the connection and commits everything queued in one
//! transaction (group commit), answering each request only after COMMIT; a second thread runs
//! small passive WAL checkpoints so the writer never stalls on a large one; operator reads (the
//! CLI's listings, the admin dashboard) use a read-only connection of their own.

mod admin;
mod events;
mod oauth;

use super::admin::{
    AttemptInfo, ConversationQuery, ConversationRow, ConversationVersion, DeadLetter,
    DeliveryDetail, DeliveryFilter, DeliveryInfo, Erased, Overview, Purged, Replay, ReplayInfo,
    Replayer, Retention,
};
use super::{
    now_ms, AttemptRecord, ClaimBatch, Claimed, DeliveryState, Ingested, NewConversation, Next,
    Stats, StoreError,
};
use crate::smartsupp::Stored;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Migrations in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_admin.sql"),
    include_str!("../migrations/sqlite/0003_meta.sql"),
    include_str!("../migrations/sqlite/0004_oauth.sql"),
    include_str!("../migrations/sqlite/0005_dashboard.sql"),
    include_str!("../migrations/sqlite/0006_events.sql"),
];
/// Most commands committed in one transaction.
const MAX_BATCH: usize = 512;
/// Commands waiting for the writer before senders wait too.
const QUEUE: usize = 8192;
/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Sends the command's result once its transaction has committed (or failed).
type Reply = Box<dyn FnOnce(Option<StoreError>) + Send>;
/// A command for the writer; given no connection when no transaction could be begun.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Reply + Send>;

/// Handle to the writer thread, and a connection of its own for operator reads (WAL lets them
/// run beside the writer without delaying a commit).
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
}

/// A driver or operating system error as an unavailable store, the error kept as the source.
fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::caused("", e)
}

fn connect(path: &str) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::caused(path, e))?;
    // WAL lets the checkpointer and readers work beside the writer; synchronous=FULL fsyncs
    // the WAL at every commit, so a 200 means the conversation survives a power cut.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -16384;
         PRAGMA journal_size_limit = 67108864;",
    )
    .map_err(unavailable)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(unavailable)? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(unavailable)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::caused(&format!("migration {}", i + 1), e))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens or creates the database file (and its folder) and starts the writer.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::caused(&format!("cannot create {}", parent.display()), e)
            })?;
        }
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        // Room for every statement the writer runs, so none is prepared again after another
        // pushed it out.
        conn.set_prepared_statement_cache_capacity(128);
        // The checkpointer does this work off the writer's path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(unavailable)?;
        let checkpointer = connect(path)?;
        let reader = connect(path)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(unavailable)?;
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                writer(conn, rx);
                drop(stop_tx);
            })
            .map_err(unavailable)?;
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(unavailable)?;
        Ok(Self {
            jobs: tx,
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// Runs a read-only `op` on the reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
            op(&conn).map_err(unavailable)
        })
        .await
        .map_err(unavailable)?
    }

    /// Runs `op` in the writer's next transaction and waits for the commit.
    async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => op(conn),
                None => Err(StoreError::unavailable(
                    "the store cannot begin a transaction",
                )),
            };
            Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(e) => Err(e),
                    None => result,
                });
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::unavailable("the store writer has stopped"))?;
        rx.await
            .map_err(|_| StoreError::unavailable("the store writer stopped before answering"))?
    }

    pub async fn ingest(&self, c: NewConversation) -> Result<Ingested, StoreError> {
        self.run(move |conn| ingest(conn, &c)).await
    }

    pub async fn claim(
        &self,
        destination: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<ClaimBatch, StoreError> {
        let destination = destination.to_string();
        self.run(move |conn| claim(conn, &destination, limit, lease_until).map_err(unavailable))
            .await
    }

    pub async fn record(
        &self,
        delivery: i64,
        claim: i64,
        attempt: AttemptRecord,
        next: Next,
        result: Option<String>,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            record(conn, delivery, claim, &attempt, next, result).map_err(unavailable)
        })
        .await
    }

    pub async fn checkpoint(
        &self,
        delivery: i64,
        claim: i64,
        result: String,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            conn.prepare_cached(
                "UPDATE deliveries SET result = ?2, updated_at = ?4
                 WHERE id = ?1 AND claims = ?3 AND state = 'pending'",
            )
            .and_then(|mut s| s.execute(params![delivery, result, claim, now_ms()]))
            .map(|n| n == 1)
            .map_err(unavailable)
        })
        .await
    }

    pub async fn release(&self, ids: Vec<i64>) -> Result<usize, StoreError> {
        self.run(move |conn| release(conn, &ids).map_err(unavailable))
            .await
    }

    /// Makes every leased delivery due now: after a crash, when this is the only instance.
    pub async fn release_all(&self) -> Result<usize, StoreError> {
        self.run(|conn| {
            conn.prepare_cached(
                "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL
                 WHERE state = 'pending' AND lease_until IS NOT NULL",
            )
            .and_then(|mut s| s.execute(params![now_ms()]))
            .map_err(unavailable)
        })
        .await
    }

    pub async fn stats(&self) -> Result<Stats, StoreError> {
        self.run(|conn| {
            conn.prepare_cached(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE state = 'pending'",
            )
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok(Stats {
                        pending: r.get(0)?,
                        oldest_pending: r.get(1)?,
                    })
                })
            })
            .map_err(unavailable)
        })
        .await
    }

    pub async fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        self.read(move |conn| admin::deliveries(conn, &filter))
            .await
    }

    pub async fn detail(&self, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
        self.read(move |conn| admin::detail(conn, id)).await
    }

    pub async fn replay(&self, what: Replay, by: Replayer) -> Result<usize, StoreError> {
        self.run(move |conn| admin::replay(conn, &what, by).map_err(unavailable))
            .await
    }

    pub async fn replays(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<ReplayInfo>>, StoreError> {
        self.read(move |conn| admin::replays(conn, &deliveries))
            .await
    }

    pub async fn count_conversations(
        &self,
        query: ConversationQuery,
        cap: i64,
    ) -> Result<i64, StoreError> {
        self.read(move |conn| admin::count_conversations(conn, &query, cap))
            .await
    }

    pub async fn dead_letters(
        &self,
        destination: Option<String>,
        limit: i64,
    ) -> Result<(Vec<DeadLetter>, i64), StoreError> {
        self.read(move |conn| admin::dead_letters(conn, destination.as_deref(), limit))
            .await
    }

    pub async fn conversation(&self, key: String) -> Result<Vec<ConversationVersion>, StoreError> {
        self.read(move |conn| admin::conversation(conn, &key)).await
    }

    pub async fn attempts(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<AttemptInfo>>, StoreError> {
        self.read(move |conn| admin::attempts(conn, &deliveries))
            .await
    }

    pub async fn conversations(
        &self,
        query: ConversationQuery,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.read(move |conn| admin::conversations(conn, &query))
            .await
    }

    pub async fn overview(&self, now: i64) -> Result<Overview, StoreError> {
        self.read(move |conn| admin::overview(conn, now)).await
    }

    pub async fn erase(&self, key: String) -> Result<Erased, StoreError> {
        self.run(move |conn| admin::erase(conn, &key).map_err(unavailable))
            .await
    }

    pub async fn purge(&self, rule: Retention, dry_run: bool) -> Result<Purged, StoreError> {
        self.run(move |conn| admin::purge(conn, rule, dry_run).map_err(unavailable))
            .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(unavailable)
        })
        .await
    }

    /// Rewrites the `write_probe` row (with `pad` bytes) and commits.
    pub async fn probe_write(&self, at: i64, pad: usize) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO meta (name, value, pad) VALUES ('write_probe', ?1, zeroblob(?2))
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, pad = excluded.pad",
            )
            .and_then(|mut s| s.execute(params![at, pad as i64]))
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }

    /// The value named `name`, if set.
    pub async fn meta(&self, name: &'static str) -> Result<Option<i64>, StoreError> {
        self.read(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    /// Raises the value named `name` to `value` (it never goes down).
    pub async fn raise_meta(&self, name: &'static str, value: i64) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
                params![name, value],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }
}

/// The writer loop: take everything queued, run it in one transaction, commit, answer.
fn writer(conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let error = match run_cached(&conn, "BEGIN IMMEDIATE") {
            Ok(()) => {
                for job in batch.drain(..) {
                    replies.push(job(Some(&conn)));
                }
                run_cached(&conn, "COMMIT").err().map(|e| {
                    tracing::error!(error = %e, "store commit failed");
                    let _ = conn.execute_batch("ROLLBACK");
                    StoreError::caused("commit failed", e)
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "store cannot begin a transaction");
                for job in batch.drain(..) {
                    replies.push(job(None));
                }
                Some(StoreError::caused("cannot begin a transaction", e))
            }
        };
        for reply in replies.drain(..) {
            reply(error.clone());
        }
    }
}

/// Runs `sql`, a statement without parameters, prepared once per connection: the writer runs
/// these for every transaction and every conversation.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `op` inside savepoint `name` ("SAVEPOINT name" and "RELEASE name" given whole, so
/// they are prepared once): a failing `op` is rolled back alone, and the other commands of
/// the writer's transaction stand.
pub(super) fn in_savepoint<T>(
    conn: &Connection,
    [begin, release, rollback]: [&str; 3],
    op: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    run_cached(conn, begin).map_err(unavailable)?;
    let result = op(conn);
    if result.is_err() {
        run_cached(conn, rollback).map_err(unavailable)?;
    }
    run_cached(conn, release).map_err(unavailable)?;
    result.map_err(unavailable)
}

fn ingest(conn: &Connection, c: &NewConversation) -> Result<Ingested, StoreError> {
    // A savepoint keeps one failing conversation from spoiling the others of the batch.
    in_savepoint(
        conn,
        ["SAVEPOINT ingest", "RELEASE ingest", "ROLLBACK TO ingest"],
        |conn| ingest_rows(conn, c),
    )
}

fn ingest_rows(conn: &Connection, c: &NewConversation) -> rusqlite::Result<Ingested> {
    let (latest, seen): (Option<i64>, Option<i64>) = conn
        .prepare_cached("SELECT MAX(version), MAX(digest = ?2) FROM conversations WHERE key = ?1")?
        .query_row(params![c.key, &c.digest[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    if seen == Some(1) {
        return Ok(Ingested::Duplicate);
    }
    let version = latest.unwrap_or(0) + 1;
    conn.prepare_cached(
        "INSERT INTO conversations (key, version, digest, raw, received_at, client_ip, kind,
                                    visitor_name, visitor_email, began_at, ended_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        c.key,
        version,
        &c.digest[..],
        &c.raw[..],
        c.received_at,
        c.client_ip,
        c.kind,
        c.visitor_name,
        c.visitor_email,
        c.began_at,
        c.ended_at
    ])?;
    let conversation = conn.last_insert_rowid();
    // A first version's delivery may be committed claimed (claim number 1, due again when the
    // lease runs out) for the lane that attempts it at once; later versions wait in the queue
    // for the earlier ones and read what those recorded.
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (conversation_id, destination, state, next_attempt_at, last_error,
                                 created_at, updated_at, claims, lease_until)
         VALUES (?1, ?2, ?3, COALESCE(?6, ?4), ?5, ?4, ?4, ?6 IS NOT NULL, ?6)",
    )?;
    let mut leased = Vec::new();
    for (i, routed) in c.destinations.iter().enumerate() {
        let state = if routed.error.is_some() {
            DeliveryState::Dead
        } else {
            DeliveryState::Pending
        };
        let lease = routed
            .lease_until
            .filter(|_| version == 1 && state == DeliveryState::Pending);
        insert.execute(params![
            conversation,
            routed.destination,
            state.as_str(),
            c.received_at,
            routed.error,
            lease
        ])?;
        if lease.is_some() {
            leased.push((i, conn.last_insert_rowid()));
        }
    }
    Ok(Ingested::Accepted {
        version,
        deliveries: c.destinations.len(),
        leased,
    })
}

fn claim(
    conn: &Connection,
    destination: &str,
    limit: usize,
    lease_until: i64,
) -> rusqlite::Result<ClaimBatch> {
    let now = now_ms();
    let mut select = conn.prepare_cached(
        "SELECT d.id, d.attempts, d.claims, d.result, c.key, c.version, c.received_at, c.raw,
             (SELECT p.result FROM deliveries p JOIN conversations pc ON pc.id = p.conversation_id
              WHERE pc.key = c.key AND pc.version < c.version AND p.destination = d.destination
                AND p.state = 'done'
              ORDER BY pc.version DESC LIMIT 1)
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.destination = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
           -- versions of one conversation reach a destination in order
           AND NOT EXISTS (SELECT 1 FROM deliveries e JOIN conversations ec ON ec.id = e.conversation_id
                           WHERE ec.key = c.key AND ec.version < c.version
                             AND e.destination = d.destination AND e.state = 'pending')
         -- `?3 + 0`, not `?3`: SQLite plans with a bare bound LIMIT's value and prepares the
         -- statement again whenever it changes, and the claim's limit changes all the time
         ORDER BY d.next_attempt_at LIMIT ?3 + 0",
    )?;
    let deliveries = select
        .query_map(params![destination, now, limit as i64], |r| {
            Ok(Claimed {
                id: r.get(0)?,
                attempts: r.get(1)?,
                claims: r.get(2)?,
                result: r.get(3)?,
                destination: destination.to_string(),
                conversation: Stored {
                    key: r.get(4)?,
                    version: r.get(5)?,
                    received_at: r.get(6)?,
                },
                raw: bytes::Bytes::from(r.get::<_, Vec<u8>>(7)?),
                previous: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = ?2, lease_until = ?2, claims = claims + 1 WHERE id = ?1",
    )?;
    for d in &deliveries {
        lease.execute(params![d.id, lease_until])?;
    }
    // A full batch means more is due at once: the lane comes straight back.
    if deliveries.len() == limit {
        return Ok(ClaimBatch {
            next_due: Some(now),
            deliveries,
        });
    }
    let next_due = conn
        .prepare_cached(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE destination = ?1 AND state = 'pending'",
        )?
        .query_row(params![destination], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(ClaimBatch {
        deliveries,
        next_due,
    })
}

/// Records an attempt made under claim number `claim`; nothing when the delivery was claimed
/// again since.
fn record(
    conn: &Connection,
    delivery: i64,
    claim: i64,
    a: &AttemptRecord,
    next: Next,
    result: Option<String>,
) -> rusqlite::Result<bool> {
    let logged = conn
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status, excerpt, error)
             SELECT id, attempts + 1, ?2, ?3, ?4, ?5, ?6 FROM deliveries WHERE id = ?1 AND claims = ?7",
        )?
        .execute(params![
            delivery,
            a.started_at,
            a.duration_ms,
            a.status,
            a.excerpt,
            a.error,
            claim
        ])?;
    if logged == 0 {
        return Ok(false);
    }
    let (state, due, counted) = next.columns();
    let state = state.as_str();
    conn.prepare_cached(
        "UPDATE deliveries SET attempts = attempts + ?7, state = ?2,
             next_attempt_at = COALESCE(?3, next_attempt_at), lease_until = NULL,
             last_error = ?4, result = COALESCE(?5, result), updated_at = ?6,
             last_request = CASE WHEN ?2 = 'done' THEN NULL ELSE COALESCE(?8, last_request) END
         WHERE id = ?1",
    )?
    .execute(params![
        delivery,
        state,
        due,
        a.error,
        result,
        now_ms(),
        counted,
        a.request
    ])?;
    Ok(true)
}

fn release(conn: &Connection, ids: &[i64]) -> rusqlite::Result<usize> {
    let now = now_ms();
    let mut stmt = conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = ?2, lease_until = NULL
         WHERE id = ?1 AND state = 'pending' AND lease_until IS NOT NULL",
    )?;
    let mut n = 0;
    for id in ids {
        n += stmt.execute(params![id, now])?;
    }
    Ok(n)
}
