//! Operator queries on PostgreSQL.

use super::failed;
use crate::store::admin::{
    conversations_count_sql, conversations_sql, destination_stats_sql, last_error_sql, replay_set,
    retention_condition, shown_error, AttemptInfo, ConversationQuery, ConversationRow,
    ConversationVersion, DeadLetter, DeliveryDetail, DeliveryFilter, DeliveryInfo,
    DestinationStats, Dialect, Erased, Overview, Param, Purged, Replay, ReplayInfo, Replayer,
    Retention, StateCounts, DELIVERY_COLUMNS, DELIVERY_COLUMN_COUNT, LAST_RECEIVED_SQL,
};
use crate::store::{now_ms, DeliveryState, StoreError};
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
        attempts: r.get(5),
        schedule_attempts: i64::from(r.get::<_, i32>(6)),
        next_attempt_at: r.get(7),
        last_error: shown_error(r.get(8)),
        result: r.get(9),
        created_at: r.get(10),
        updated_at: r.get(11),
        last_response: r.get(12),
        last_status: r.get::<_, Option<i32>>(13).map(i64::from),
        replayed_at: r.get(14),
        replayed_by: r.get(15),
        last_request: None,
    }
}

/// A delivery with the request of its last attempt (the column after [`DELIVERY_COLUMNS`]).
fn delivery_with_request(r: &Row) -> DeliveryInfo {
    let mut d = delivery(r);
    d.last_request = r.get(DELIVERY_COLUMN_COUNT);
    d
}

pub async fn deliveries(c: &Client, f: &DeliveryFilter) -> Result<Vec<DeliveryInfo>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE ($1::text IS NULL OR d.state = $1) AND ($2::text IS NULL OR d.destination = $2)
           AND ($3::int8 IS NULL OR d.updated_at >= $3)
         ORDER BY d.id DESC LIMIT $4"
    );
    let rows = c
        .query(
            &sql,
            &[
                &f.state.map(DeliveryState::as_str),
                &f.destination,
                &f.since,
                &f.limit,
            ],
        )
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(delivery).collect())
}

pub async fn detail(c: &Client, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, d.last_request, c.raw, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = $1"
    );
    let Some(row) = c.query_opt(&sql, &[&id]).await.map_err(failed)? else {
        return Ok(None);
    };
    let n = DELIVERY_COLUMN_COUNT;
    Ok(Some(DeliveryDetail {
        delivery: delivery_with_request(&row),
        attempts: attempts(c, &[id]).await?.remove(&id).unwrap_or_default(),
        replays: replays(c, &[id]).await?.remove(&id).unwrap_or_default(),
        raw: row.get::<_, Vec<u8>>(n + 1).into(),
        received_at: row.get(n + 2),
    }))
}

/// The replays of each of `deliveries`, oldest first, in one query.
pub async fn replays(
    c: &Client,
    deliveries: &[i64],
) -> Result<HashMap<i64, Vec<ReplayInfo>>, StoreError> {
    let rows = c
        .query(
            "SELECT delivery_id, replayed_at, replayed_by, was
             FROM replays WHERE delivery_id = ANY($1) ORDER BY id",
            &[&deliveries],
        )
        .await
        .map_err(failed)?;
    let mut out: HashMap<i64, Vec<ReplayInfo>> =
        deliveries.iter().map(|&id| (id, Vec::new())).collect();
    for r in rows {
        out.entry(r.get(0)).or_default().push(ReplayInfo {
            at: r.get(1),
            by: r.get(2),
            was: r.get(3),
        });
    }
    Ok(out)
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
            summary: None,
            replay: None,
        });
    }
    Ok(out)
}

/// Makes the chosen done or dead deliveries due now and records each replay (who, when, the
/// state it left) in the same statement; returns how many.
pub async fn replay(c: &Client, what: &Replay, by: Replayer) -> Result<usize, StoreError> {
    let now = now_ms();
    let set = replay_set("$1");
    let log = |which: &str| {
        format!(
            "WITH old AS (SELECT id, state FROM deliveries WHERE {which} FOR UPDATE),
                  moved AS ({set} FROM old WHERE deliveries.id = old.id RETURNING old.id, old.state)
             INSERT INTO replays (delivery_id, replayed_at, replayed_by, was)
             SELECT id, $1, $2, state FROM moved"
        )
    };
    let n = match what {
        Replay::Ids(ids) => {
            c.execute(
                &log("id = ANY($3) AND state <> 'pending'"),
                &[&now, &by.name(), ids],
            )
            .await
        }
        Replay::Dead { destination, since } => {
            c.execute(
                &log("state = 'dead' AND ($3::text IS NULL OR destination = $3)
                       AND ($4::int8 IS NULL OR updated_at >= $4)"),
                &[&now, &by.name(), destination, since],
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
        "SELECT {DELIVERY_COLUMNS}, d.last_request
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
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
            deliveries: deliveries.iter().map(delivery_with_request).collect(),
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
    tx.execute(crate::store::admin::ERASE_EVENTS_POSTGRES, &[&key])
        .await
        .map_err(failed)?;
    tx.execute("DELETE FROM smartsupp_assemblies WHERE key = $1", &[&key])
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
    let old_events = crate::store::admin::old_events("$1");
    let events: i64 = c
        .query_one(
            &format!("SELECT COUNT(*) FROM smartsupp_events WHERE {old_events}"),
            &[&rule.received_before],
        )
        .await
        .map_err(failed)?
        .get(0);
    if !dry_run && conversations > 0 {
        c.execute(
            &format!("DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c WHERE {condition})"),
            &[&rule.received_before, &rule.dead_before],
        )
        .await
        .map_err(failed)?;
    }
    if !dry_run && events > 0 {
        c.execute(
            &format!("DELETE FROM smartsupp_events WHERE {old_events}"),
            &[&rule.received_before],
        )
        .await
        .map_err(failed)?;
    }
    Ok(Purged {
        conversations: conversations as usize,
        deliveries: deliveries as usize,
        events: events as usize,
    })
}

type Bound = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn bound(params: Vec<Param>) -> Vec<Bound> {
    params
        .into_iter()
        .map(|p| -> Bound {
            match p {
                Param::Text(t) => Box::new(t),
                Param::Int(i) => Box::new(i),
            }
        })
        .collect()
}

fn refs(values: &[Bound]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

pub async fn conversations(
    c: &Client,
    q: &ConversationQuery,
) -> Result<Vec<ConversationRow>, StoreError> {
    let (sql, params) = conversations_sql(Dialect::Postgres, q);
    let values = bound(params);
    let rows = c.query(&sql, &refs(&values)).await.map_err(failed)?;
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
            began_at: r.get(10),
            ended_at: r.get(11),
            dead_destinations: ConversationRow::names(r.get(12)),
            retrying_destinations: ConversationRow::names(r.get(13)),
        })
        .collect())
}

/// How many conversations the filters of `q` select, counting at most `cap`.
pub async fn count_conversations(
    c: &Client,
    q: &ConversationQuery,
    cap: i64,
) -> Result<i64, StoreError> {
    let (sql, params) = conversations_count_sql(Dialect::Postgres, q, cap);
    let values = bound(params);
    let row = c.query_one(&sql, &refs(&values)).await.map_err(failed)?;
    Ok(row.get(0))
}

/// The newest dead deliveries (of one destination), with their conversations, and how many
/// are dead in all.
pub async fn dead_letters(
    c: &Client,
    destination: Option<&str>,
    limit: i64,
) -> Result<(Vec<DeadLetter>, i64), StoreError> {
    let n = DELIVERY_COLUMN_COUNT;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, c.kind, c.visitor_name, c.visitor_email, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.state = 'dead' AND ($1::text IS NULL OR d.destination = $1)
         ORDER BY d.updated_at DESC, d.id DESC LIMIT $2"
    );
    let rows = c
        .query(&sql, &[&destination, &limit])
        .await
        .map_err(failed)?;
    let total: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM deliveries
             WHERE state = 'dead' AND ($1::text IS NULL OR destination = $1)",
            &[&destination],
        )
        .await
        .map_err(failed)?
        .get(0);
    let letters = rows
        .iter()
        .map(|r| DeadLetter {
            delivery: delivery(r),
            kind: r.get(n),
            visitor_name: r.get(n + 1),
            visitor_email: r.get(n + 2),
            received_at: r.get(n + 3),
        })
        .collect();
    Ok((letters, total))
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
            dead: r.get(6),
            last_error: None,
            last_error_at: None,
            last_error_status: None,
            last_error_response: None,
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
            d.last_error_status = r.get::<_, Option<i32>>(2).map(i64::from);
            d.last_error_response = r.get(3);
        }
    }
    let last_received_at: Option<i64> = c
        .query_one(LAST_RECEIVED_SQL, &[])
        .await
        .map_err(failed)?
        .get(0);
    Ok(Overview {
        hooks_last_hour: counts.get(0),
        hooks_last_day: counts.get(1),
        deliveries: totals,
        destinations,
        last_received_at,
    })
}
