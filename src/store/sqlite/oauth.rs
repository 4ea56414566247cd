//! OAuth refresh tokens on SQLite (see [`crate::store::oauth`]).

use super::{unavailable, SqliteStore};
use crate::store::now_ms;
use crate::store::oauth::{OAuthRow, Renewed};
use crate::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

const COLUMNS: &str = "seed, refresh_token, access_token, expires_at, generation, renewing_until";

fn row(conn: &Connection, name: &str) -> rusqlite::Result<Option<OAuthRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM oauth_tokens WHERE name = ?1"),
        [name],
        |r| {
            Ok(OAuthRow {
                seed: r.get(0)?,
                refresh_token: r.get(1)?,
                access_token: r.get(2)?,
                expires_at: r.get(3)?,
                generation: r.get(4)?,
                renewing_until: r.get(5)?,
            })
        },
    )
    .optional()
}

impl SqliteStore {
    pub async fn oauth_seed(
        &self,
        name: String,
        seed: String,
        token: String,
    ) -> Result<OAuthRow, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO oauth_tokens (name, seed, seeds, refresh_token) VALUES (?1, ?2, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET seed = excluded.seed,
                     seeds = seeds || ',' || excluded.seed,
                     refresh_token = excluded.refresh_token, access_token = NULL,
                     expires_at = NULL, generation = generation + 1, renewing_until = NULL
                 WHERE instr(',' || seeds || ',', ',' || excluded.seed || ',') = 0",
                params![name, seed, token],
            )
            .and_then(|_| row(conn, &name))
            .map_err(unavailable)?
            .ok_or_else(|| StoreError::unavailable("the OAuth row vanished"))
        })
        .await
    }

    pub async fn oauth_row(&self, name: String) -> Result<Option<OAuthRow>, StoreError> {
        // Through the writer: it sees every committed renewal at once.
        self.run(move |conn| row(conn, &name).map_err(unavailable))
            .await
    }

    pub async fn oauth_begin(
        &self,
        name: String,
        generation: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE oauth_tokens SET renewing_until = ?3
                 WHERE name = ?1 AND generation = ?2
                   AND (renewing_until IS NULL OR renewing_until < ?4)",
                params![name, generation, until, now_ms()],
            )
            .map(|n| n == 1)
            .map_err(unavailable)
        })
        .await
    }

    pub async fn oauth_renewed(
        &self,
        name: String,
        generation: i64,
        r: Renewed,
    ) -> Result<bool, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE oauth_tokens SET refresh_token = ?3, access_token = ?4, expires_at = ?5,
                     generation = generation + 1, renewing_until = NULL
                 WHERE name = ?1 AND generation = ?2",
                params![
                    name,
                    generation,
                    r.refresh_token,
                    r.access_token,
                    r.expires_at
                ],
            )
            .map(|n| n == 1)
            .map_err(unavailable)
        })
        .await
    }

    pub async fn oauth_abandon(&self, name: String, generation: i64) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE oauth_tokens SET renewing_until = NULL WHERE name = ?1 AND generation = ?2",
                params![name, generation],
            )
            .map(|_| ())
            .map_err(unavailable)
        })
        .await
    }
}
