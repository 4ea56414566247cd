//! Operator queries on PostgreSQL.

use super::failed;
use crate::store::admin::{
    conversations_sql, destination_stats_sql, last_error_sql, retention_condition, shown_error,
    AttemptInfo, ConversationQuery, ConversationRow, ConversationVersion, DeliveryDetail,
    DeliveryFilter, DeliveryInfo, DestinationStats, Dialect, Erased, Overview, Param, Purged,
    Replay, Retention, StateCounts, DELIVERY_COLUMNS,
};
use crate::store::{now_ms, StoreError};
use deadpool_postgres::Client;
use std::collections::HashMap;
use tokio_postgres::Row;

fn delivery(r: &Row) -> DeliveryInfo {
    DeliveryInfo {
        id: r.get(0),
        key: r.get(1),
        version: i64::from(r.get::<_, i32>(2)),
        destination: r.get(3),
        state: r.get(4),
        attempts: i64::from(r.get::<_, i32>(5)),
        next_attempt_at: r.get(6),
        last_error: shown_error(r.get(7)),
        result: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
        last_response: r.get(11),
    }
}

pub async fn deliveries(c: &Client, f: &DeliveryFilter) -> Result<Vec<DeliveryInfo>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE ($1::text IS NULL OR d.state = $1) AND ($2::text IS NULL OR d.destination = $2)
           AND ($3::int8 IS NULL OR d.updated_at >= $3)
         ORDER BY d.id DESC LIMIT $4"
    );
    let rows = c
        .query(&sql, &[&f.state, &f.destination, &f.since, &f.limit])
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(delivery).collect())
}

pub async fn detail(c: &Client, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, c.raw, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = $1"
    );
    let Some(row) = c.query_opt(&sql, &[&id]).await.map_err(failed)? else {
        return Ok(None);
    };
    Ok(Some(DeliveryDetail {
        delivery: delivery(&row),
        attempts: attempts(c, &[id]).await?.remove(&id).unwrap_or_default(),
        raw: row.get::<_, Vec<u8>>(12).into(),
        received_at: row.get(13),
    }))
}

/// The attempts of each of `deliveries`, oldest first, in one query.
pub async fn attempts(
    c: &Client,
    deliveries: &[i64],
) -> Result<HashMap<i64, Vec<AttemptInfo>>, StoreError> {
    let rows = c
        .query(
            "SELECT delivery_id, attempt, started_at, duration_ms, status, excerpt, error
             FROM attempts WHERE delivery_id = ANY($1) ORDER BY id",
            &[&deliveries],
        )
        .await
        .map_err(failed)?;
    let mut out: HashMap<i64, Vec<AttemptInfo>> =
        deliveries.iter().map(|&id| (id, Vec::new())).collect();
    for r in rows {
        out.entry(r.get(0)).or_default().push(AttemptInfo {
            attempt: i64::from(r.get::<_, i32>(1)),
            started_at: r.get(2),
            duration_ms: r.get(3),
            status: r.get::<_, Option<i32>>(4).map(i64::from),
            excerpt: r.get(5),
            error: shown_error(r.get(6)),
        });
    }
    Ok(out)
}

const REPLAY: &str = "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1,
         lease_until = NULL, updated_at = $1";

pub async fn replay(c: &Client, what: &Replay) -> Result<usize, StoreError> {
    let now = now_ms();
    let n = match what {
        Replay::Ids(ids) => {
            c.execute(
                &format!("{REPLAY} WHERE id = ANY($2) AND state <> 'pending'"),
                &[&now, ids],
            )
            .await
        }
        Replay::Dead { destination, since } => {
            c.execute(
                &format!(
                    "{REPLAY} WHERE state = 'dead' AND ($2::text IS NULL OR destination = $2)
                       AND ($3::int8 IS NULL OR updated_at >= $3)"
                ),
                &[&now, destination, since],
            )
            .await
        }
    };
    Ok(n.map_err(failed)? as usize)
}

pub async fn conversation(c: &Client, key: &str) -> Result<Vec<ConversationVersion>, StoreError> {
    let versions = c
        .query(
            "SELECT id, version, received_at, client_ip, raw FROM conversations
             WHERE key = $1 ORDER BY version",
            &[&key],
        )
        .await
        .map_err(failed)?;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.conversation_id = $1 ORDER BY d.id"
    );
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let id: i64 = v.get(0);
        let deliveries = c.query(&sql, &[&id]).await.map_err(failed)?;
        out.push(ConversationVersion {
            key: key.to_string(),
            version: i64::from(v.get::<_, i32>(1)),
            received_at: v.get(2),
            client_ip: v.get(3),
            raw: v.get::<_, Vec<u8>>(4).into(),
            deliveries: deliveries.iter().map(delivery).collect(),
        });
    }
    Ok(out)
}

pub async fn erase(c: &mut Client, key: &str) -> Result<Erased, StoreError> {
    let tx = c.transaction().await.map_err(failed)?;
    // Lock the versions so no delivery of them is claimed while we look.
    let versions = tx
        .query(
            "SELECT id FROM conversations WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .await
        .map_err(failed)?;
    if versions.is_empty() {
        return Ok(Erased::NotFound);
    }
    let pending: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM deliveries WHERE key = $1 AND state = 'pending'",
            &[&key],
        )
        .await
        .map_err(failed)?
        .get(0);
    if pending > 0 {
        return Ok(Erased::Pending(pending as usize));
    }
    let n = tx
        .execute("DELETE FROM conversations WHERE key = $1", &[&key])
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    Ok(Erased::Deleted(n as usize))
}

pub async fn purge(c: &Client, rule: Retention, dry_run: bool) -> Result<Purged, StoreError> {
    let condition = retention_condition("$1", "$2");
    let row = c
        .query_one(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM deliveries x WHERE x.conversation_id = c.id)), 0)::int8
                 FROM conversations c WHERE {condition}"
            ),
            &[&rule.received_before, &rule.dead_before],
        )
        .await
        .map_err(failed)?;
    let (conversations, deliveries): (i64, i64) = (row.get(0), row.get(1));
    if !dry_run && conversations > 0 {
        c.execute(
            &format!("DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c WHERE {condition})"),
            &[&rule.received_before, &rule.dead_before],
        )
        .await
        .map_err(failed)?;
    }
    Ok(Purged {
        conversations: conversations as usize,
        deliveries: deliveries as usize,
    })
}

pub async fn conversations(
    c: &Client,
    q: &ConversationQuery,
) -> Result<Vec<ConversationRow>, StoreError> {
    let (sql, params) = conversations_sql(Dialect::Postgres, q);
    let values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = params
        .into_iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Text(t) => Box::new(t),
                Param::Int(i) => Box::new(i),
            }
        })
        .collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = c.query(&sql, &refs).await.map_err(failed)?;
    Ok(rows
        .iter()
        .map(|r| ConversationRow {
            id: r.get(0),
            key: r.get(1),
            version: i64::from(r.get::<_, i32>(2)),
            received_at: r.get(3),
            kind: r.get(4),
            visitor_name: r.get(5),
            visitor_email: r.get(6),
            deliveries: StateCounts {
                pending: r.get(7),
                done: r.get(8),
                dead: r.get(9),
            },
        })
        .collect())
}

pub async fn overview(c: &Client, now: i64) -> Result<Overview, StoreError> {
    let (hour, day) = (now - 3_600_000, now - 86_400_000);
    let counts = c
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE received_at >= $1), COUNT(*)
             FROM conversations WHERE received_at >= $2",
            &[&hour, &day],
        )
        .await
        .map_err(failed)?;
    let mut totals = StateCounts::default();
    let mut destinations = Vec::new();
    for r in c
        .query(&destination_stats_sql("$1"), &[&day])
        .await
        .map_err(failed)?
    {
        totals.pending += r.get::<_, i64>(1);
        totals.done += r.get::<_, i64>(5);
        totals.dead += r.get::<_, i64>(6);
        destinations.push(DestinationStats {
            destination: r.get(0),
            pending: r.get(1),
            oldest_pending_at: r.get(2),
            done_last_day: r.get(3),
            dead_last_day: r.get(4),
            last_error: None,
            last_error_at: None,
        });
    }
    let last = c
        .prepare_cached(&last_error_sql("$1"))
        .await
        .map_err(failed)?;
    for d in &mut destinations {
        if let Some(r) = c
            .query_opt(&last, &[&d.destination])
            .await
            .map_err(failed)?
        {
            d.last_error = shown_error(r.get(0));
            d.last_error_at = r.get(1);
        }
    }
    Ok(Overview {
        hooks_last_hour: counts.get(0),
        hooks_last_day: counts.get(1),
        deliveries: totals,
        destinations,
    })
}
