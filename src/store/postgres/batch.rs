//! Group commit on PostgreSQL: hooks and attempt records queued by this instance are written in
//! one transaction (the statements pipelined on one connection) and answered after COMMIT, so
//! one WAL flush and one round trip serve many of them.

use super::{failed, unavailable};
use crate::store::{AttemptRecord, NewConversation, Next, StoreError};
use deadpool_postgres::Pool;
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed together.
const MAX_BATCH: usize = 256;

/// Inserts a conversation version and its deliveries; no row when the key's next version
/// number, or the body itself, is already stored (the caller sorts that out).
pub const INGEST: &str = "WITH new AS (
         INSERT INTO conversations (key, version, digest, raw, received_at, client_ip)
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5
         FROM conversations WHERE key = $1
         ON CONFLICT DO NOTHING
         RETURNING id, version
     ), routed AS (
         INSERT INTO deliveries (conversation_id, key, version, destination, state,
                                 next_attempt_at, last_error, created_at, updated_at)
         SELECT new.id, $1, new.version, r.destination,
                CASE WHEN r.error IS NULL THEN 'pending' ELSE 'dead' END,
                $4, r.error, $4, $4
         FROM new, UNNEST($6::text[], $7::text[]) AS r (destination, error)
     )
     SELECT version FROM new";

/// Logs an attempt and moves its delivery on.
const RECORD: &str = "WITH logged AS (
         INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status, excerpt, error)
         SELECT id, attempts + 1, $2, $3, $4, $5, $6 FROM deliveries WHERE id = $1
     )
     UPDATE deliveries SET attempts = attempts + $7, state = $8,
         next_attempt_at = COALESCE($9, next_attempt_at), lease_until = NULL,
         last_error = $6, result = COALESCE($10, result), updated_at = $11
     WHERE id = $1";

/// An attempt outcome to commit.
pub struct Record {
    pub delivery: i64,
    pub attempt: AttemptRecord,
    pub next: Next,
    pub result: Option<String>,
}

/// A write waiting for the next group commit.
pub enum Job {
    /// Answers the new version, or `None` when nothing was inserted.
    Ingest(
        NewConversation,
        oneshot::Sender<Result<Option<i64>, StoreError>>,
    ),
    Record(Record, oneshot::Sender<Result<(), StoreError>>),
}

/// Starts `writers` tasks that commit queued jobs; returns the queue.
pub fn start(pool: Pool, writers: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>(8192);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..writers.max(1) {
        let (pool, rx) = (pool.clone(), rx.clone());
        tokio::spawn(async move {
            loop {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                {
                    let mut rx = rx.lock().await;
                    let Some(first) = rx.recv().await else { return };
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                }
                commit(&pool, batch).await;
            }
        });
    }
    tx
}

enum Outcome {
    Ingested(Option<i64>),
    Recorded,
}

/// The order in which a batch takes row locks: by conversation key, then delivery id. Two
/// instances committing the same conversations at once then wait for each other in one order
/// instead of deadlocking.
fn lock_order(job: &Job) -> (u8, &str, i64) {
    match job {
        Job::Ingest(c, _) => (0, c.key.as_str(), 0),
        Job::Record(r, _) => (1, "", r.delivery),
    }
}

async fn commit(pool: &Pool, mut batch: Vec<Job>) {
    batch.sort_by(|a, b| lock_order(a).cmp(&lock_order(b)));
    let outcome = run(pool, &batch).await;
    for (i, job) in batch.into_iter().enumerate() {
        let result = outcome.as_ref().map(|o| &o[i]);
        match job {
            Job::Ingest(_, reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Ingested(v)) => Ok(*v),
                    Ok(Outcome::Recorded) => Err(unavailable("mismatched answer")),
                    Err(e) => Err(e.clone()),
                });
            }
            Job::Record(_, reply) => {
                let _ = reply.send(result.map(|_| ()).map_err(Clone::clone));
            }
        }
    }
}

async fn run(pool: &Pool, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let mut client = pool.get().await.map_err(failed)?;
    let tx = client.transaction().await.map_err(failed)?;
    let ingest = tx.prepare_cached(INGEST).await.map_err(failed)?;
    let record = tx.prepare_cached(RECORD).await.map_err(failed)?;
    let statements = batch.iter().map(|job| {
        let (tx, ingest, record) = (&tx, &ingest, &record);
        async move {
            match job {
                Job::Ingest(c, _) => {
                    let destinations: Vec<&str> = c
                        .destinations
                        .iter()
                        .map(|r| r.destination.as_str())
                        .collect();
                    let errors: Vec<Option<&str>> =
                        c.destinations.iter().map(|r| r.error.as_deref()).collect();
                    let rows = tx
                        .query(
                            ingest,
                            &[
                                &c.key,
                                &&c.digest[..],
                                &&c.raw[..],
                                &c.received_at,
                                &c.client_ip,
                                &destinations,
                                &errors,
                            ],
                        )
                        .await?;
                    Ok(Outcome::Ingested(
                        rows.first().map(|r| i64::from(r.get::<_, i32>(0))),
                    ))
                }
                Job::Record(r, _) => {
                    let (state, due, counted): (&str, Option<i64>, i32) = match r.next {
                        Next::Done => ("done", None, 1),
                        Next::Dead => ("dead", None, 1),
                        Next::Retry(at) => ("pending", Some(at), 1),
                        Next::Defer(at) => ("pending", Some(at), 0),
                    };
                    let a = &r.attempt;
                    let status = a.status.map(i32::from);
                    tx.execute(
                        record,
                        &[
                            &r.delivery,
                            &a.started_at,
                            &a.duration_ms,
                            &status,
                            &a.excerpt,
                            &a.error,
                            &counted,
                            &state,
                            &due,
                            &r.result,
                            &crate::store::now_ms(),
                        ],
                    )
                    .await?;
                    Ok(Outcome::Recorded)
                }
            }
        }
    });
    let results: Vec<Result<Outcome, tokio_postgres::Error>> = join_all(statements).await;
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        outcomes.push(r.map_err(failed)?);
    }
    tx.commit().await.map_err(failed)?;
    Ok(outcomes)
}
