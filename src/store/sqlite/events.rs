//! SQLite side of [`crate::store::events`].

use super::{unavailable, SqliteStore};
use crate::store::events::{
    Assembly, AssemblyOutcome, EventIngested, NewEvent, StoredEvent, CLOSING, STATE_EVENTS,
};
use crate::store::{now_ms, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

impl SqliteStore {
    pub async fn ingest_event(&self, e: NewEvent) -> Result<EventIngested, StoreError> {
        self.run(move |conn| {
            super::in_savepoint(
                conn,
                ["SAVEPOINT event", "RELEASE event", "ROLLBACK TO event"],
                |conn| ingest_event(conn, &e),
            )
        })
        .await
    }

    pub async fn claim_assemblies(
        &self,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Assembly>, StoreError> {
        self.run(move |conn| {
            let now = now_ms();
            let found = conn
                .prepare_cached(
                    "SELECT key, account_id, conversation_id, generation, attempts
                     FROM smartsupp_assemblies
                     WHERE due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
                     ORDER BY due_at LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![now, limit as i64], |r| {
                        Ok(Assembly {
                            key: r.get(0)?,
                            account_id: r.get(1)?,
                            conversation_id: r.get(2)?,
                            generation: r.get(3)?,
                            attempts: r.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(unavailable)?;
            let mut lease = conn
                .prepare_cached("UPDATE smartsupp_assemblies SET lease_until = ?2 WHERE key = ?1")
                .map_err(unavailable)?;
            for a in &found {
                lease
                    .execute(params![a.key, lease_until])
                    .map_err(unavailable)?;
            }
            Ok(found)
        })
        .await
    }

    pub async fn finish_assembly(
        &self,
        key: String,
        generation: i64,
        outcome: AssemblyOutcome,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            match outcome {
                AssemblyOutcome::Done => {
                    let gone = conn
                        .execute(
                            "DELETE FROM smartsupp_assemblies WHERE key = ?1 AND generation = ?2",
                            params![key, generation],
                        )
                        .map_err(unavailable)?;
                    if gone == 0 {
                        // An event came meanwhile: assemble again (it is due already).
                        conn.execute(
                            "UPDATE smartsupp_assemblies SET lease_until = NULL, attempts = 0 WHERE key = ?1",
                            params![key],
                        )
                        .map_err(unavailable)?;
                    }
                }
                AssemblyOutcome::Retry { at, error } => {
                    conn.execute(
                        "UPDATE smartsupp_assemblies SET lease_until = NULL, due_at = ?2,
                             attempts = attempts + 1, last_error = ?3 WHERE key = ?1",
                        params![key, at, error],
                    )
                    .map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Makes every reserved assembly due again: after a crash, when this is the only instance.
    pub async fn release_assemblies(&self) -> Result<usize, StoreError> {
        self.run(|conn| {
            conn.execute(
                "UPDATE smartsupp_assemblies SET lease_until = NULL WHERE lease_until IS NOT NULL",
                [],
            )
            .map_err(unavailable)
        })
        .await
    }

    pub async fn events(
        &self,
        conversation: String,
        contact: Option<String>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, event, raw, received_at, occurred_at FROM smartsupp_events
                 WHERE conversation = ?1 OR (?2 IS NOT NULL AND contact = ?2 AND conversation IS NULL)
                 ORDER BY id",
            )?
            .query_map(params![conversation, contact], |r| {
                Ok(StoredEvent {
                    id: r.get(0)?,
                    event: r.get(1)?,
                    raw: bytes::Bytes::from(r.get::<_, Vec<u8>>(2)?),
                    received_at: r.get(3)?,
                    occurred_at: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
    }

    pub async fn assemblies_pending(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM smartsupp_assemblies", [], |r| {
                r.get(0)
            })
        })
        .await
    }

    pub async fn conversation_known(&self, key: String) -> Result<bool, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE key = ?1)
                     OR EXISTS (SELECT 1 FROM smartsupp_events WHERE conversation = ?1)",
                params![key],
                |r| r.get(0),
            )
        })
        .await
    }

    pub async fn import_cursor(&self, name: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT cursor FROM smartsupp_imports WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    pub async fn save_import_cursor(
        &self,
        name: String,
        cursor: Option<String>,
    ) -> Result<(), StoreError> {
        self.run(move |conn| {
            match cursor {
                Some(cursor) => conn.execute(
                    "INSERT INTO smartsupp_imports (name, cursor, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor,
                         updated_at = excluded.updated_at",
                    params![name, cursor, now_ms()],
                ),
                None => conn.execute(
                    "DELETE FROM smartsupp_imports WHERE name = ?1",
                    params![name],
                ),
            }
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }
}

fn ingest_event(conn: &Connection, e: &NewEvent) -> rusqlite::Result<EventIngested> {
    let conversation = e.conversation_key();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO smartsupp_events (digest, event, conversation, contact, raw, received_at,
                                           occurred_at, client_ip)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (digest) DO NOTHING",
        )?
        .execute(params![
            &e.digest[..],
            e.event,
            conversation,
            e.contact_key(),
            &e.raw[..],
            e.received_at,
            e.occurred_at,
            e.client_ip
        ])?;
    if inserted == 0 {
        return Ok(EventIngested::Duplicate);
    }
    let id = conn.last_insert_rowid();
    let (Some(key), Some(conversation_id)) = (conversation, e.conversation_id.as_ref()) else {
        return Ok(EventIngested::Stored {
            id,
            scheduled: false,
        });
    };
    if !e.may_schedule() {
        return Ok(EventIngested::Stored {
            id,
            scheduled: false,
        });
    }
    // The conversation is closed when its latest open/close event (by Smartsupp's time, then
    // arrival) is a close.
    let latest: Option<String> = conn
        .prepare_cached(
            "SELECT event FROM smartsupp_events WHERE conversation = ?1 AND event IN (?2, ?3, ?4)
             ORDER BY COALESCE(occurred_at, received_at) DESC, id DESC LIMIT 1",
        )?
        .query_row(
            params![key, STATE_EVENTS[0], STATE_EVENTS[1], STATE_EVENTS[2]],
            |r| r.get(0),
        )
        .optional()?;
    let closed = latest.is_some_and(|l| CLOSING.contains(&l.as_str()));
    if closed {
        conn.prepare_cached(
            "INSERT INTO smartsupp_assemblies (key, account_id, conversation_id, due_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key) DO UPDATE SET generation = generation + 1,
                 due_at = MIN(due_at, excluded.due_at)",
        )?
        .execute(params![key, e.account_id, conversation_id, e.due_at])?;
    }
    Ok(EventIngested::Stored {
        id,
        scheduled: closed,
    })
}
