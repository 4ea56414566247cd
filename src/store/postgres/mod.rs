//! PostgreSQL backend, for several deskbridge instances on one database. Every operation is a
//! single statement (its own short transaction): duplicates and versions are decided by unique
//! constraints, claims take rows with `FOR UPDATE SKIP LOCKED` and set a lease, and nothing is
//! held open while a delivery is attempted. A commit is durable before its answer (PostgreSQL's
//! own group commit batches the WAL flushes of concurrent hooks).

use super::{
    now_ms, AttemptRecord, ClaimBatch, Claimed, Ingested, NewConversation, Next, Stats, StoreError,
};
use crate::smartsupp::Stored;
mod admin;
mod batch;
mod events;
mod oauth;
pub mod tls;

use super::admin::{
    AttemptInfo, ConversationQuery, ConversationRow, ConversationVersion, DeadLetter,
    DeliveryDetail, DeliveryFilter, DeliveryInfo, Erased, Overview, Purged, Replay, ReplayInfo,
    Replayer, Retention,
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

/// Migrations in order; `deskbridge_migrations` records those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_admin.sql"),
    include_str!("../migrations/postgres/0003_meta.sql"),
    include_str!("../migrations/postgres/0004_oauth.sql"),
    include_str!("../migrations/postgres/0005_dashboard.sql"),
    include_str!("../migrations/postgres/0006_events.sql"),
];
/// Advisory lock key that serialises migrations of instances starting together.
const MIGRATION_LOCK: i64 = 0x6465_736b_6272;
/// How long a hook or a claim waits for a connection or for the server to answer a connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at committing a new version when another instance took the same number first.
const VERSION_RACE_RETRIES: usize = 5;

/// A pool of connections to one database, and the group-commit queue of this instance.
pub struct PgStore {
    pool: Pool,
    writes: mpsc::Sender<batch::Job>,
}

/// Group-commit writers per instance (each uses one connection while it commits).
const WRITERS: usize = 2;

pub(super) fn unavailable(message: impl Into<String>) -> StoreError {
    StoreError::unavailable(message)
}

/// A driver or pool error with its causes (PostgreSQL's own message is a cause), kept as the
/// source.
pub(super) fn failed<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::caused("", e)
}

/// How many migrations the database has applied (0 for a new database).
async fn applied(c: &(impl tokio_postgres::GenericClient + Sync)) -> Result<usize, StoreError> {
    let exists: bool = c
        .query_one(
            "SELECT to_regclass('deskbridge_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM deskbridge_migrations",
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    Ok(usize::try_from(version).unwrap_or(0))
}

/// A failed migration step; when the role may not change the schema, what to do instead.
fn migration_failed(step: &str, e: tokio_postgres::Error) -> StoreError {
    let mut text = format!("{step}: {}", crate::destinations::http::error_chain(&e));
    if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        text.push_str(
            " (the role of store.url may not change the schema: run `deskbridge migrate` with \
             the schema owner's URL, e.g. DESKBRIDGE_STORE__URL=postgres://owner@host/db \
             deskbridge migrate; see docs/OPERATIONS.md)",
        );
    }
    StoreError::Unavailable {
        message: text,
        source: Some(std::sync::Arc::new(e)),
    }
}

impl PgStore {
    /// Connects (lazily, through the pool) and applies missing migrations.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let (mut config, tls) =
            tls::settings(url).map_err(|e| StoreError::Settings(e.to_string()))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        config.application_name("deskbridge");
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, recycling),
            None => Manager::from_config(config, NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(failed)?;
        let writes = batch::start(pool.clone(), WRITERS);
        let store = Self { pool, writes };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(failed)
    }

    /// Applies missing migrations under an advisory lock, so instances starting together do
    /// not race. A store that is up to date is not touched, so deskbridge can run as a role
    /// that may read and write rows but not change the schema (docs/OPERATIONS.md).
    pub async fn migrate(&self) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        if applied(&**client).await? >= MIGRATIONS.len() {
            return Ok(0);
        }
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(failed)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS deskbridge_migrations (
                 version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(|e| migration_failed("creating deskbridge_migrations", e))?;
        let mut count = 0;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied(&*tx).await?) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| migration_failed(&format!("migration {}", i + 1), e))?;
            tx.execute(
                "INSERT INTO deskbridge_migrations (version, applied_at) VALUES ($1, $2)",
                &[&((i + 1) as i32), &now_ms()],
            )
            .await
            .map_err(failed)?;
            count += 1;
        }
        tx.commit().await.map_err(failed)?;
        Ok(count)
    }

    /// Commits a conversation with the next group commit; a body already stored is a
    /// duplicate, and a version number taken at the same moment by another instance is retried
    /// with the next one.
    pub async fn ingest(&self, c: NewConversation) -> Result<Ingested, StoreError> {
        let deliveries = c.destinations.len();
        for _ in 0..VERSION_RACE_RETRIES {
            let (reply, answer) = oneshot::channel();
            self.writes
                .send(batch::Job::Ingest(c.clone(), reply))
                .await
                .map_err(|_| unavailable("the store writer has stopped"))?;
            let version = answer
                .await
                .map_err(|_| unavailable("the store writer stopped before answering"))??;
            if let Some(version) = version {
                // Deliveries are claimed through the queue, where every instance sees them.
                return Ok(Ingested::Accepted {
                    version,
                    deliveries,
                    leased: Vec::new(),
                });
            }
            let client = self.client().await?;
            let seen = client
                .query_opt(
                    "SELECT 1 FROM conversations WHERE key = $1 AND digest = $2",
                    &[&c.key, &&c.digest[..]],
                )
                .await
                .map_err(failed)?;
            if seen.is_some() {
                return Ok(Ingested::Duplicate);
            }
        }
        Err(unavailable("could not number a new version; try again"))
    }

    pub async fn claim(
        &self,
        destination: &str,
        limit: usize,
        lease_until: i64,
    ) -> Result<ClaimBatch, StoreError> {
        let client = self.client().await?;
        let now = now_ms();
        let rows = client
            .query(
                "WITH due AS (
                     SELECT d.id FROM deliveries d
                     WHERE d.destination = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2
                       AND (d.lease_until IS NULL OR d.lease_until <= $2)
                       AND (d.version = 1 OR NOT EXISTS (
                             SELECT 1 FROM deliveries e
                             WHERE e.key = d.key AND e.destination = d.destination
                               AND e.version < d.version AND e.state = 'pending'))
                     ORDER BY d.next_attempt_at
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE deliveries d
                 SET lease_until = $4, claims = d.claims + 1
                 FROM due, conversations c
                 WHERE d.id = due.id AND c.id = d.conversation_id
                 RETURNING d.id, d.attempts, d.claims - 1, d.result, c.key, c.version, c.received_at, c.raw,
                     (SELECT p.result FROM deliveries p
                      WHERE p.key = d.key AND p.destination = d.destination
                        AND p.version < d.version AND p.state = 'done'
                      ORDER BY p.version DESC LIMIT 1)",
                &[&destination, &now, &(limit as i64), &lease_until],
            )
            .await
            .map_err(failed)?;
        let deliveries: Vec<Claimed> = rows
            .iter()
            .map(|r| Claimed {
                id: r.get(0),
                attempts: i64::from(r.get::<_, i32>(1)),
                claims: i64::from(r.get::<_, i32>(2)),
                result: r.get(3),
                destination: destination.to_string(),
                conversation: Stored {
                    key: r.get(4),
                    version: i64::from(r.get::<_, i32>(5)),
                    received_at: r.get(6),
                },
                raw: bytes::Bytes::from(r.get::<_, Vec<u8>>(7)),
                previous: r.get(8),
            })
            .collect();
        if deliveries.len() == limit {
            return Ok(ClaimBatch {
                next_due: Some(now),
                deliveries,
            });
        }
        let next_due: Option<i64> = client
            .query_one(
                "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0)))
                 FROM deliveries WHERE destination = $1 AND state = 'pending'",
                &[&destination],
            )
            .await
            .map_err(failed)?
            .get(0);
        Ok(ClaimBatch {
            deliveries,
            next_due,
        })
    }

    pub async fn record(
        &self,
        delivery: i64,
        claim: i64,
        attempt: AttemptRecord,
        next: Next,
        result: Option<String>,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let record = batch::Record {
            delivery,
            claim,
            attempt,
            next,
            result,
        };
        self.writes
            .send(batch::Job::Record(record, reply))
            .await
            .map_err(|_| unavailable("the store writer has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the store writer stopped before answering"))?
    }

    pub async fn checkpoint(
        &self,
        delivery: i64,
        claim: i64,
        result: String,
    ) -> Result<bool, StoreError> {
        let claim = i32::try_from(claim).unwrap_or(i32::MAX);
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE deliveries SET result = $2, updated_at = $4
                 WHERE id = $1 AND claims = $3 AND state = 'pending'",
                &[&delivery, &result, &claim, &now_ms()],
            )
            .await
            .map_err(failed)?;
        Ok(n == 1)
    }

    pub async fn release(&self, ids: Vec<i64>) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE deliveries SET next_attempt_at = LEAST(next_attempt_at, $1), lease_until = NULL
                 WHERE id = ANY($2) AND state = 'pending' AND lease_until IS NOT NULL",
                &[&now_ms(), &ids],
            )
            .await
            .map_err(failed)?;
        Ok(n as usize)
    }

    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE state = 'pending'",
                &[],
            )
            .await
            .map_err(failed)?;
        Ok(Stats {
            pending: row.get(0),
            oldest_pending: row.get(1),
        })
    }

    pub async fn deliveries(
        &self,
        filter: DeliveryFilter,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        admin::deliveries(&self.client().await?, &filter).await
    }

    pub async fn detail(&self, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
        admin::detail(&self.client().await?, id).await
    }

    pub async fn replay(&self, what: Replay, by: Replayer) -> Result<usize, StoreError> {
        admin::replay(&self.client().await?, &what, by).await
    }

    pub async fn replays(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<ReplayInfo>>, StoreError> {
        admin::replays(&self.client().await?, &deliveries).await
    }

    pub async fn count_conversations(
        &self,
        query: ConversationQuery,
        cap: i64,
    ) -> Result<i64, StoreError> {
        admin::count_conversations(&self.client().await?, &query, cap).await
    }

    pub async fn dead_letters(
        &self,
        destination: Option<String>,
        limit: i64,
    ) -> Result<(Vec<DeadLetter>, i64), StoreError> {
        admin::dead_letters(&self.client().await?, destination.as_deref(), limit).await
    }

    pub async fn conversation(&self, key: String) -> Result<Vec<ConversationVersion>, StoreError> {
        admin::conversation(&self.client().await?, &key).await
    }

    pub async fn attempts(
        &self,
        deliveries: Vec<i64>,
    ) -> Result<HashMap<i64, Vec<AttemptInfo>>, StoreError> {
        admin::attempts(&self.client().await?, &deliveries).await
    }

    pub async fn conversations(
        &self,
        query: ConversationQuery,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        admin::conversations(&self.client().await?, &query).await
    }

    pub async fn overview(&self, now: i64) -> Result<Overview, StoreError> {
        admin::overview(&self.client().await?, now).await
    }

    pub async fn erase(&self, key: String) -> Result<Erased, StoreError> {
        let mut client = self.client().await?;
        admin::erase(&mut client, &key).await
    }

    pub async fn purge(&self, rule: Retention, dry_run: bool) -> Result<Purged, StoreError> {
        admin::purge(&self.client().await?, rule, dry_run).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await.map_err(failed)?;
        Ok(())
    }

    /// Rewrites the `write_probe` row (with `pad` bytes) and commits.
    pub async fn probe_write(&self, at: i64, pad: usize) -> Result<(), StoreError> {
        let client = self.client().await?;
        let pad = vec![0u8; pad];
        client
            .execute(
                "INSERT INTO meta (name, value, pad) VALUES ('write_probe', $1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, pad = excluded.pad",
                &[&at, &pad],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }

    /// The value named `name`, if set.
    pub async fn meta(&self, name: &'static str) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
            .await
            .map_err(failed)?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Raises the value named `name` to `value` (it never goes down).
    pub async fn raise_meta(&self, name: &'static str, value: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = GREATEST(meta.value, excluded.value)",
                &[&name, &value],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }
}
