//! OAuth refresh tokens on PostgreSQL (see [`crate::store::oauth`]): every statement is one
//! compare-and-swap, so instances sharing the database never renew with one token twice.

use super::{failed, PgStore};
use crate::store::now_ms;
use crate::store::oauth::{OAuthRow, Renewed};
use crate::store::StoreError;

const COLUMNS: &str = "seed, refresh_token, access_token, expires_at, generation, renewing_until";

fn row(r: &tokio_postgres::Row) -> OAuthRow {
    OAuthRow {
        seed: r.get(0),
        refresh_token: r.get(1),
        access_token: r.get(2),
        expires_at: r.get(3),
        generation: r.get(4),
        renewing_until: r.get(5),
    }
}

impl PgStore {
    pub async fn oauth_seed(
        &self,
        name: String,
        seed: String,
        token: String,
    ) -> Result<OAuthRow, StoreError> {
        // The connection goes back to the pool before the row is read with another one.
        self.client()
            .await?
            .execute(
                "INSERT INTO oauth_tokens (name, seed, seeds, refresh_token) VALUES ($1, $2, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET seed = excluded.seed,
                     seeds = oauth_tokens.seeds || ',' || excluded.seed,
                     refresh_token = excluded.refresh_token, access_token = NULL,
                     expires_at = NULL, generation = oauth_tokens.generation + 1,
                     renewing_until = NULL
                 WHERE strpos(',' || oauth_tokens.seeds || ',', ',' || excluded.seed || ',') = 0",
                &[&name, &seed, &token],
            )
            .await
            .map_err(failed)?;
        self.oauth_row(name)
            .await?
            .ok_or_else(|| super::unavailable("the OAuth row vanished"))
    }

    pub async fn oauth_row(&self, name: String) -> Result<Option<OAuthRow>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query_opt(
                &format!("SELECT {COLUMNS} FROM oauth_tokens WHERE name = $1"),
                &[&name],
            )
            .await
            .map_err(failed)?;
        Ok(found.as_ref().map(row))
    }

    pub async fn oauth_begin(
        &self,
        name: String,
        generation: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE oauth_tokens SET renewing_until = $3
                 WHERE name = $1 AND generation = $2
                   AND (renewing_until IS NULL OR renewing_until < $4)",
                &[&name, &generation, &until, &now_ms()],
            )
            .await
            .map_err(failed)?;
        Ok(n == 1)
    }

    pub async fn oauth_renewed(
        &self,
        name: String,
        generation: i64,
        r: Renewed,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE oauth_tokens SET refresh_token = $3, access_token = $4, expires_at = $5,
                     generation = generation + 1, renewing_until = NULL
                 WHERE name = $1 AND generation = $2",
                &[
                    &name,
                    &generation,
                    &r.refresh_token,
                    &r.access_token,
                    &r.expires_at,
                ],
            )
            .await
            .map_err(failed)?;
        Ok(n == 1)
    }

    pub async fn oauth_abandon(&self, name: String, generation: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE oauth_tokens SET renewing_until = NULL WHERE name = $1 AND generation = $2",
                &[&name, &generation],
            )
            .await
            .map_err(failed)?;
        Ok(())
    }
}
