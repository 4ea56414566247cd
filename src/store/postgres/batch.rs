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

/// Inserts the conversations of a batch and their deliveries in one statement. Inputs are
/// numbered (`n`); the answer lists the numbers inserted with their version. An input whose
/// body is already stored, or whose next version number was taken (by another instance, or by
/// another input of the same key in this batch), is not in the answer: the caller sorts it out.
const INGEST_MANY: &str = "WITH input AS (
         SELECT DISTINCT ON (key, digest) *
         FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::int8[], $5::text[], $9::text[],
                     $10::text[], $11::text[], $12::int8[], $13::int8[])
              WITH ORDINALITY AS i (key, digest, raw, received_at, client_ip, kind, visitor_name,
                                    visitor_email, began_at, ended_at, n)
         ORDER BY key, digest, n
     ), new AS (
         INSERT INTO conversations (key, version, digest, raw, received_at, client_ip, kind,
                                    visitor_name, visitor_email, began_at, ended_at)
         SELECT i.key,
                COALESCE((SELECT MAX(c.version) FROM conversations c WHERE c.key = i.key), 0) + 1,
                i.digest, i.raw, i.received_at, i.client_ip, i.kind, i.visitor_name, i.visitor_email,
                i.began_at, i.ended_at
         FROM input i
         ORDER BY i.key
         ON CONFLICT DO NOTHING
         RETURNING id, key, digest, version
     ), numbered AS (
         SELECT new.id, new.key, new.version, i.n, i.received_at
         FROM new JOIN input i ON i.key = new.key AND i.digest = new.digest
     ), routed AS (
         INSERT INTO deliveries (conversation_id, key, version, destination, state,
                                 next_attempt_at, last_error, created_at, updated_at)
         SELECT numbered.id, numbered.key, numbered.version, r.destination,
                CASE WHEN r.error IS NULL THEN 'pending' ELSE 'dead' END,
                numbered.received_at, r.error, numbered.received_at, numbered.received_at
         FROM numbered JOIN UNNEST($6::int8[], $7::text[], $8::text[]) AS r (n, destination, error)
              ON r.n = numbered.n
     )
     SELECT n, version FROM numbered";

/// Moves a delivery on and logs its attempt, only while the claim the attempt ran under
/// (`$12`, the claim counter it set) is the latest: an attempt that outlived its lease, while
/// another instance claimed the delivery again, writes nothing over the newer claim. The
/// attempt is logged from the updated row, so it is logged exactly when the delivery moved.
const RECORD: &str = "WITH moved AS (
         UPDATE deliveries SET attempts = attempts + $7, state = $8,
             next_attempt_at = COALESCE($9, next_attempt_at), lease_until = NULL,
             last_error = $6, result = COALESCE($10, result), updated_at = $11,
             last_request = CASE WHEN $8 = 'done' THEN NULL ELSE COALESCE($13, last_request) END
         WHERE id = $1 AND claims = $12
         RETURNING id, attempts - $7 AS before
     )
     INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status, excerpt, error)
     SELECT id, before + 1, $2, $3, $4, $5, $6 FROM moved";

/// An attempt outcome to commit.
pub struct Record {
    pub delivery: i64,
    /// The claim number the attempt ran under.
    pub claim: i64,
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
    /// Answers whether the claim was still held (and the attempt written).
    Record(Record, oneshot::Sender<Result<bool, StoreError>>),
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
    /// Whether the attempt was written (its claim still held).
    Recorded(bool),
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
                    Ok(Outcome::Recorded(_)) => Err(unavailable("mismatched answer")),
                    Err(e) => Err(e.clone()),
                });
            }
            Job::Record(_, reply) => {
                let _ = reply.send(match result {
                    Ok(Outcome::Recorded(written)) => Ok(*written),
                    Ok(Outcome::Ingested(_)) => Err(unavailable("mismatched answer")),
                    Err(e) => Err(e.clone()),
                });
            }
        }
    }
}

async fn run(pool: &Pool, batch: &[Job]) -> Result<Vec<Outcome>, StoreError> {
    let mut client = pool.get().await.map_err(failed)?;
    let tx = client.transaction().await.map_err(failed)?;
    let mut outcomes: Vec<Outcome> = batch
        .iter()
        .map(|job| match job {
            Job::Ingest(..) => Outcome::Ingested(None),
            Job::Record(..) => Outcome::Recorded(false),
        })
        .collect();

    // All conversations in one statement; `n` (1-based) is the position in the batch.
    let conversations: Vec<(usize, &NewConversation)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, job)| match job {
            Job::Ingest(c, _) => Some((i + 1, c)),
            Job::Record(..) => None,
        })
        .collect();
    if !conversations.is_empty() {
        let keys: Vec<&str> = conversations.iter().map(|(_, c)| c.key.as_str()).collect();
        let digests: Vec<&[u8]> = conversations.iter().map(|(_, c)| &c.digest[..]).collect();
        let raws: Vec<&[u8]> = conversations.iter().map(|(_, c)| &c.raw[..]).collect();
        let received: Vec<i64> = conversations.iter().map(|(_, c)| c.received_at).collect();
        let ips: Vec<Option<&str>> = conversations
            .iter()
            .map(|(_, c)| c.client_ip.as_deref())
            .collect();
        let kinds: Vec<&str> = conversations.iter().map(|(_, c)| c.kind).collect();
        let names: Vec<Option<&str>> = conversations
            .iter()
            .map(|(_, c)| c.visitor_name.as_deref())
            .collect();
        let emails: Vec<Option<&str>> = conversations
            .iter()
            .map(|(_, c)| c.visitor_email.as_deref())
            .collect();
        let began: Vec<Option<i64>> = conversations.iter().map(|(_, c)| c.began_at).collect();
        let ended: Vec<Option<i64>> = conversations.iter().map(|(_, c)| c.ended_at).collect();
        let mut route_n = Vec::new();
        let mut route_destination = Vec::new();
        let mut route_error = Vec::new();
        // UNNEST numbers the inputs 1, 2, … in the order of the arrays.
        for (ordinal, (_, c)) in conversations.iter().enumerate() {
            for r in &c.destinations {
                route_n.push(ordinal as i64 + 1);
                route_destination.push(r.destination.as_str());
                route_error.push(r.error.as_deref());
            }
        }
        let statement = tx.prepare_cached(INGEST_MANY).await.map_err(failed)?;
        let rows = tx
            .query(
                &statement,
                &[
                    &keys,
                    &digests,
                    &raws,
                    &received,
                    &ips,
                    &route_n,
                    &route_destination,
                    &route_error,
                    &kinds,
                    &names,
                    &emails,
                    &began,
                    &ended,
                ],
            )
            .await
            .map_err(failed)?;
        for row in rows {
            let ordinal: i64 = row.get(0);
            let version: i32 = row.get(1);
            if let Some((position, _)) = conversations.get(ordinal as usize - 1) {
                outcomes[position - 1] = Outcome::Ingested(Some(i64::from(version)));
            }
        }
    }

    // Attempt records, pipelined on the same connection.
    let record = tx.prepare_cached(RECORD).await.map_err(failed)?;
    let records = batch.iter().enumerate().filter_map(|(i, job)| match job {
        Job::Record(r, _) => Some((i, r)),
        Job::Ingest(..) => None,
    });
    let statements = records.map(|(i, r)| {
        let (tx, record) = (&tx, &record);
        async move {
            let (state, due, counted) = r.next.columns();
            let state = state.as_str();
            let a = &r.attempt;
            let status = a.status.map(i32::from);
            let claim = i32::try_from(r.claim).unwrap_or(i32::MAX);
            let written = tx
                .execute(
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
                        &claim,
                        &a.request,
                    ],
                )
                .await;
            (i, written)
        }
    });
    for (i, written) in join_all(statements).await {
        outcomes[i] = Outcome::Recorded(written.map_err(failed)? > 0);
    }
    tx.commit().await.map_err(failed)?;
    Ok(outcomes)
}
