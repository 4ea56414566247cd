//! PostgreSQL side of [`crate::store::events`]: each operation is one short transaction.

use super::{failed, PgStore};
use crate::store::events::{
    Assembly, AssemblyOutcome, EventIngested, NewEvent, StoredEvent, CLOSING, STATE_EVENTS,
};
use crate::store::{now_ms, StoreError};

impl PgStore {
    pub async fn ingest_event(&self, e: NewEvent) -> Result<EventIngested, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let conversation = e.conversation_key();
        let row = tx
            .query_opt(
                "INSERT INTO smartsupp_events (digest, event, conversation, contact, raw,
                                               received_at, occurred_at, client_ip)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (digest) DO NOTHING
                 RETURNING id",
                &[
                    &&e.digest[..],
                    &e.event,
                    &conversation,
                    &e.contact_key(),
                    &&e.raw[..],
                    &e.received_at,
                    &e.occurred_at,
                    &e.client_ip,
                ],
            )
            .await
            .map_err(failed)?;
        let Some(row) = row else {
            return Ok(EventIngested::Duplicate);
        };
        let id: i64 = row.get(0);
        let mut scheduled = false;
        if let (Some(key), Some(conversation_id), true) =
            (conversation, e.conversation_id.as_ref(), e.may_schedule())
        {
            let states: Vec<&str> = STATE_EVENTS.to_vec();
            let latest: Option<String> = tx
                .query_opt(
                    "SELECT event FROM smartsupp_events WHERE conversation = $1 AND event = ANY($2)
                     ORDER BY COALESCE(occurred_at, received_at) DESC, id DESC LIMIT 1",
                    &[&key, &states],
                )
                .await
                .map_err(failed)?
                .map(|r| r.get(0));
            scheduled = latest.is_some_and(|l| CLOSING.contains(&l.as_str()));
            if scheduled {
                tx.execute(
                    "INSERT INTO smartsupp_assemblies (key, account_id, conversation_id, due_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (key) DO UPDATE SET
                         generation = smartsupp_assemblies.generation + 1,
                         due_at = LEAST(smartsupp_assemblies.due_at, EXCLUDED.due_at)",
                    &[&key, &e.account_id, conversation_id, &e.due_at],
                )
                .await
                .map_err(failed)?;
            }
        }
        tx.commit().await.map_err(failed)?;
        Ok(EventIngested::Stored { id, scheduled })
    }

    pub async fn claim_assemblies(
        &self,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Assembly>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "WITH due AS (
                     SELECT key FROM smartsupp_assemblies
                     WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                     ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED
                 )
                 UPDATE smartsupp_assemblies a SET lease_until = $3 FROM due
                 WHERE a.key = due.key
                 RETURNING a.key, a.account_id, a.conversation_id, a.generation, a.attempts",
                &[&now_ms(), &(limit as i64), &lease_until],
            )
            .await
            .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| Assembly {
                key: r.get(0),
                account_id: r.get(1),
                conversation_id: r.get(2),
                generation: r.get(3),
                attempts: r.get(4),
            })
            .collect())
    }

    pub async fn finish_assembly(
        &self,
        key: String,
        generation: i64,
        outcome: AssemblyOutcome,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        match outcome {
            AssemblyOutcome::Done => {
                let gone = client
                    .execute(
                        "DELETE FROM smartsupp_assemblies WHERE key = $1 AND generation = $2",
                        &[&key, &generation],
                    )
                    .await
                    .map_err(failed)?;
                if gone == 0 {
                    client
                        .execute(
                            "UPDATE smartsupp_assemblies SET lease_until = NULL, attempts = 0
                             WHERE key = $1",
                            &[&key],
                        )
                        .await
                        .map_err(failed)?;
                }
            }
            AssemblyOutcome::Retry { at, error } => {
                client
                    .execute(
                        "UPDATE smartsupp_assemblies SET lease_until = NULL, due_at = $2,
                             attempts = attempts + 1, last_error = $3 WHERE key = $1",
                        &[&key, &at, &error],
                    )
                    .await
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    pub async fn events(
        &self,
        conversation: String,
        contact: Option<String>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, event, raw, received_at, occurred_at FROM smartsupp_events
                 WHERE conversation = $1 OR ($2::TEXT IS NOT NULL AND contact = $2 AND conversation IS NULL)
                 ORDER BY id",
                &[&conversation, &contact],
            )
            .await
            .map_err(failed)?;
        Ok(rows
            .iter()
            .map(|r| StoredEvent {
                id: r.get(0),
                event: r.get(1),
                raw: bytes::Bytes::from(r.get::<_, Vec<u8>>(2)),
                received_at: r.get(3),
                occurred_at: r.get(4),
            })
            .collect())
    }

    pub async fn assemblies_pending(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT COUNT(*) FROM smartsupp_assemblies", &[])
            .await
            .map_err(failed)?;
        Ok(row.get(0))
    }

    pub async fn conversation_known(&self, key: String) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM conversations WHERE key = $1)
                     OR EXISTS (SELECT 1 FROM smartsupp_events WHERE conversation = $1)",
                &[&key],
            )
            .await
            .map_err(failed)?;
        Ok(row.get(0))
    }

    pub async fn import_cursor(&self, name: String) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT cursor FROM smartsupp_imports WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(failed)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn save_import_cursor(
        &self,
        name: String,
        cursor: Option<String>,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let now = now_ms();
        match cursor {
            Some(cursor) => client
                .execute(
                    "INSERT INTO smartsupp_imports (name, cursor, updated_at) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor,
                             updated_at = EXCLUDED.updated_at",
                    &[&name, &cursor, &now],
                )
                .await,
            None => {
                client
                    .execute("DELETE FROM smartsupp_imports WHERE name = $1", &[&name])
                    .await
            }
        }
        .map_err(failed)?;
        Ok(())
    }
}
