//! Operator queries on SQLite: reads on the reader connection, changes on the writer's.

use crate::store::admin::{
    conversations_sql, destination_stats_sql, last_error_sql, retention_condition, shown_error,
    AttemptInfo, ConversationQuery, ConversationRow, ConversationVersion, DeliveryDetail,
    DeliveryFilter, DeliveryInfo, DestinationStats, Dialect, Erased, Overview, Param, Purged,
    Replay, Retention, StateCounts, DELIVERY_COLUMNS,
};
use crate::store::now_ms;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::HashMap;

fn delivery(r: &Row) -> rusqlite::Result<DeliveryInfo> {
    Ok(DeliveryInfo {
        id: r.get(0)?,
        key: r.get(1)?,
        version: r.get(2)?,
        destination: r.get(3)?,
        state: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_at: r.get(6)?,
        last_error: shown_error(r.get(7)?),
        result: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        last_response: r.get(11)?,
    })
}

pub fn deliveries(conn: &Connection, f: &DeliveryFilter) -> rusqlite::Result<Vec<DeliveryInfo>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE (?1 IS NULL OR d.state = ?1) AND (?2 IS NULL OR d.destination = ?2)
           AND (?3 IS NULL OR d.updated_at >= ?3)
         ORDER BY d.id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![f.state, f.destination, f.since, f.limit], delivery)?;
    rows.collect()
}

pub fn detail(conn: &Connection, id: i64) -> rusqlite::Result<Option<DeliveryDetail>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, c.raw, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = ?1"
    );
    let found = conn
        .query_row(&sql, [id], |r| {
            Ok((delivery(r)?, r.get::<_, Vec<u8>>(12)?, r.get::<_, i64>(13)?))
        })
        .optional()?;
    let Some((delivery, raw, received_at)) = found else {
        return Ok(None);
    };
    Ok(Some(DeliveryDetail {
        delivery,
        attempts: attempts(conn, &[id])?.remove(&id).unwrap_or_default(),
        raw: raw.into(),
        received_at,
    }))
}

/// The attempts of each of `deliveries`, oldest first.
pub fn attempts(
    conn: &Connection,
    deliveries: &[i64],
) -> rusqlite::Result<HashMap<i64, Vec<AttemptInfo>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, started_at, duration_ms, status, excerpt, error
         FROM attempts WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let mut out = HashMap::with_capacity(deliveries.len());
    for &id in deliveries {
        let list = stmt
            .query_map([id], |r| {
                Ok(AttemptInfo {
                    attempt: r.get(0)?,
                    started_at: r.get(1)?,
                    duration_ms: r.get(2)?,
                    status: r.get(3)?,
                    excerpt: r.get(4)?,
                    error: shown_error(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.insert(id, list);
    }
    Ok(out)
}

const REPLAY: &str = "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1,
         lease_until = NULL, updated_at = ?1";

pub fn replay(conn: &Connection, what: &Replay) -> rusqlite::Result<usize> {
    let now = now_ms();
    match what {
        Replay::Ids(ids) => {
            let mut stmt =
                conn.prepare_cached(&format!("{REPLAY} WHERE id = ?2 AND state <> 'pending'"))?;
            let mut n = 0;
            for id in ids {
                n += stmt.execute(params![now, id])?;
            }
            Ok(n)
        }
        Replay::Dead { destination, since } => conn.execute(
            &format!(
                "{REPLAY} WHERE state = 'dead' AND (?2 IS NULL OR destination = ?2)
                   AND (?3 IS NULL OR updated_at >= ?3)"
            ),
            params![now, destination, since],
        ),
    }
}

pub fn conversation(conn: &Connection, key: &str) -> rusqlite::Result<Vec<ConversationVersion>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, version, received_at, client_ip, raw FROM conversations
         WHERE key = ?1 ORDER BY version",
    )?;
    let versions = stmt
        .query_map([key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut deliveries = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.conversation_id = ?1 ORDER BY d.id"
    ))?;
    let mut out = Vec::with_capacity(versions.len());
    for (id, version, received_at, client_ip, raw) in versions {
        out.push(ConversationVersion {
            key: key.to_string(),
            version,
            received_at,
            client_ip,
            raw: raw.into(),
            deliveries: deliveries
                .query_map([id], delivery)?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        });
    }
    Ok(out)
}

pub fn erase(conn: &Connection, key: &str) -> rusqlite::Result<Erased> {
    let (versions, pending): (i64, i64) = conn.query_row(
        "SELECT COUNT(DISTINCT c.id), COUNT(d.id) FILTER (WHERE d.state = 'pending')
         FROM conversations c LEFT JOIN deliveries d ON d.conversation_id = c.id WHERE c.key = ?1",
        [key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if versions == 0 {
        return Ok(Erased::NotFound);
    }
    if pending > 0 {
        return Ok(Erased::Pending(pending as usize));
    }
    let n = conn.execute("DELETE FROM conversations WHERE key = ?1", [key])?;
    Ok(Erased::Deleted(n))
}

pub fn purge(conn: &Connection, rule: Retention, dry_run: bool) -> rusqlite::Result<Purged> {
    let condition = retention_condition("?1", "?2");
    let (conversations, deliveries): (i64, i64) = conn.query_row(
        &format!(
            "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM deliveries x WHERE x.conversation_id = c.id)), 0)
             FROM conversations c WHERE {condition}"
        ),
        params![rule.received_before, rule.dead_before],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !dry_run && conversations > 0 {
        conn.execute(
            &format!("DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c WHERE {condition})"),
            params![rule.received_before, rule.dead_before],
        )?;
    }
    Ok(Purged {
        conversations: conversations as usize,
        deliveries: deliveries as usize,
    })
}

pub fn conversations(
    conn: &Connection,
    q: &ConversationQuery,
) -> rusqlite::Result<Vec<ConversationRow>> {
    // SQLite's LIKE ignores the case of ASCII letters (emails are stored lowercased).
    let (sql, params) = conversations_sql(Dialect::Sqlite, q);
    let mut stmt = conn.prepare_cached(&sql)?;
    let values: Vec<rusqlite::types::Value> = params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => t.into(),
            Param::Int(i) => i.into(),
        })
        .collect();
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok(ConversationRow {
            id: r.get(0)?,
            key: r.get(1)?,
            version: r.get(2)?,
            received_at: r.get(3)?,
            kind: r.get(4)?,
            visitor_name: r.get(5)?,
            visitor_email: r.get(6)?,
            deliveries: StateCounts {
                pending: r.get(7)?,
                done: r.get(8)?,
                dead: r.get(9)?,
            },
        })
    })?;
    rows.collect()
}

pub fn overview(conn: &Connection, now: i64) -> rusqlite::Result<Overview> {
    let (hour, day) = (now - 3_600_000, now - 86_400_000);
    let mut count =
        conn.prepare_cached("SELECT COUNT(*) FROM conversations WHERE received_at >= ?1")?;
    let hooks_last_hour = count.query_row([hour], |r| r.get(0))?;
    let hooks_last_day = count.query_row([day], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(&destination_stats_sql("?1"))?;
    let mut totals = StateCounts::default();
    let mut destinations = stmt
        .query_map([day], |r| {
            totals.pending += r.get::<_, i64>(1)?;
            totals.done += r.get::<_, i64>(5)?;
            totals.dead += r.get::<_, i64>(6)?;
            Ok(DestinationStats {
                destination: r.get(0)?,
                pending: r.get(1)?,
                oldest_pending_at: r.get(2)?,
                done_last_day: r.get(3)?,
                dead_last_day: r.get(4)?,
                last_error: None,
                last_error_at: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut last = conn.prepare_cached(&last_error_sql("?1"))?;
    for d in &mut destinations {
        if let Some((error, at)) = last
            .query_row([&d.destination], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            d.last_error = shown_error(Some(error));
            d.last_error_at = Some(at);
        }
    }
    Ok(Overview {
        hooks_last_hour,
        hooks_last_day,
        deliveries: totals,
        destinations,
    })
}
