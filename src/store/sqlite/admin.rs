//! Operator queries on SQLite: reads on the reader connection, changes on the writer's.

use crate::store::admin::{
    conversations_count_sql, conversations_sql, destination_stats_sql, last_error_sql, replay_set,
    retention_condition, shown_error, AttemptInfo, ConversationQuery, ConversationRow,
    ConversationVersion, DeadLetter, DeliveryDetail, DeliveryFilter, DeliveryInfo,
    DestinationStats, Dialect, Erased, Overview, Param, Purged, Replay, ReplayInfo, Replayer,
    Retention, StateCounts, DELIVERY_COLUMNS, DELIVERY_COLUMN_COUNT, LAST_RECEIVED_SQL,
};
use crate::store::{now_ms, DeliveryState};
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
        schedule_attempts: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: shown_error(r.get(8)?),
        result: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        last_response: r.get(12)?,
        last_status: r.get(13)?,
        replayed_at: r.get(14)?,
        replayed_by: r.get(15)?,
        last_request: None,
    })
}

/// A delivery with the request of its last attempt (the column after [`DELIVERY_COLUMNS`]).
fn delivery_with_request(r: &Row) -> rusqlite::Result<DeliveryInfo> {
    let mut d = delivery(r)?;
    d.last_request = r.get(DELIVERY_COLUMN_COUNT)?;
    Ok(d)
}

pub fn deliveries(conn: &Connection, f: &DeliveryFilter) -> rusqlite::Result<Vec<DeliveryInfo>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE (?1 IS NULL OR d.state = ?1) AND (?2 IS NULL OR d.destination = ?2)
           AND (?3 IS NULL OR d.updated_at >= ?3)
         ORDER BY d.id DESC LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            f.state.map(DeliveryState::as_str),
            f.destination,
            f.since,
            f.limit
        ],
        delivery,
    )?;
    rows.collect()
}

pub fn detail(conn: &Connection, id: i64) -> rusqlite::Result<Option<DeliveryDetail>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, d.last_request, c.raw, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE d.id = ?1"
    );
    let n = DELIVERY_COLUMN_COUNT;
    let found = conn
        .query_row(&sql, [id], |r| {
            Ok((
                delivery_with_request(r)?,
                r.get::<_, Vec<u8>>(n + 1)?,
                r.get::<_, i64>(n + 2)?,
            ))
        })
        .optional()?;
    let Some((delivery, raw, received_at)) = found else {
        return Ok(None);
    };
    Ok(Some(DeliveryDetail {
        delivery,
        attempts: attempts(conn, &[id])?.remove(&id).unwrap_or_default(),
        replays: replays(conn, &[id])?.remove(&id).unwrap_or_default(),
        raw: raw.into(),
        received_at,
    }))
}

/// The replays of each of `deliveries`, oldest first.
pub fn replays(
    conn: &Connection,
    deliveries: &[i64],
) -> rusqlite::Result<HashMap<i64, Vec<ReplayInfo>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT replayed_at, replayed_by, was FROM replays WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let mut out = HashMap::with_capacity(deliveries.len());
    for &id in deliveries {
        let list = stmt
            .query_map([id], |r| {
                Ok(ReplayInfo {
                    at: r.get(0)?,
                    by: r.get(1)?,
                    was: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.insert(id, list);
    }
    Ok(out)
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
                    summary: None,
                    replay: None,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.insert(id, list);
    }
    Ok(out)
}

/// Makes the chosen done or dead deliveries due now, recording each replay (who, when, the
/// state it left) before the delivery moves; returns how many.
pub fn replay(conn: &Connection, what: &Replay, by: Replayer) -> rusqlite::Result<usize> {
    let now = now_ms();
    let set = replay_set("?1");
    match what {
        Replay::Ids(ids) => {
            let mut log = conn.prepare_cached(
                "INSERT INTO replays (delivery_id, replayed_at, replayed_by, was)
                 SELECT id, ?1, ?3, state FROM deliveries WHERE id = ?2 AND state <> 'pending'",
            )?;
            let mut stmt =
                conn.prepare_cached(&format!("{set} WHERE id = ?2 AND state <> 'pending'"))?;
            let mut n = 0;
            for id in ids {
                log.execute(params![now, id, by.name()])?;
                n += stmt.execute(params![now, id])?;
            }
            Ok(n)
        }
        Replay::Dead { destination, since } => {
            let which = "state = 'dead' AND (?2 IS NULL OR destination = ?2)
                         AND (?3 IS NULL OR updated_at >= ?3)";
            conn.execute(
                &format!(
                    "INSERT INTO replays (delivery_id, replayed_at, replayed_by, was)
                     SELECT id, ?1, ?4, state FROM deliveries WHERE {which}"
                ),
                params![now, destination, since, by.name()],
            )?;
            conn.execute(
                &format!("{set} WHERE {which}"),
                params![now, destination, since],
            )
        }
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
        "SELECT {DELIVERY_COLUMNS}, d.last_request
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
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
                .query_map([id], delivery_with_request)?
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
    conn.execute(crate::store::admin::ERASE_EVENTS_SQLITE, [key])?;
    conn.execute("DELETE FROM smartsupp_assemblies WHERE key = ?1", [key])?;
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
    let old_events = crate::store::admin::old_events("?1");
    let events: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM smartsupp_events WHERE {old_events}"),
        params![rule.received_before],
        |r| r.get(0),
    )?;
    if !dry_run && conversations > 0 {
        conn.execute(
            &format!("DELETE FROM conversations WHERE id IN (SELECT c.id FROM conversations c WHERE {condition})"),
            params![rule.received_before, rule.dead_before],
        )?;
    }
    if !dry_run && events > 0 {
        conn.execute(
            &format!("DELETE FROM smartsupp_events WHERE {old_events}"),
            params![rule.received_before],
        )?;
    }
    Ok(Purged {
        conversations: conversations as usize,
        deliveries: deliveries as usize,
        events: events as usize,
    })
}

fn bound(params: Vec<Param>) -> Vec<rusqlite::types::Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Text(t) => t.into(),
            Param::Int(i) => i.into(),
        })
        .collect()
}

pub fn conversations(
    conn: &Connection,
    q: &ConversationQuery,
) -> rusqlite::Result<Vec<ConversationRow>> {
    // SQLite's LIKE ignores the case of ASCII letters (emails are stored lowercased).
    let (sql, params) = conversations_sql(Dialect::Sqlite, q);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(bound(params)), |r| {
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
            began_at: r.get(10)?,
            ended_at: r.get(11)?,
            dead_destinations: ConversationRow::names(r.get(12)?),
            retrying_destinations: ConversationRow::names(r.get(13)?),
        })
    })?;
    rows.collect()
}

/// How many conversations the filters of `q` select, counting at most `cap`.
pub fn count_conversations(
    conn: &Connection,
    q: &ConversationQuery,
    cap: i64,
) -> rusqlite::Result<i64> {
    let (sql, params) = conversations_count_sql(Dialect::Sqlite, q, cap);
    conn.prepare_cached(&sql)?
        .query_row(rusqlite::params_from_iter(bound(params)), |r| r.get(0))
}

/// The newest dead deliveries (of one destination), with their conversations, and how many
/// are dead in all.
pub fn dead_letters(
    conn: &Connection,
    destination: Option<&str>,
    limit: i64,
) -> rusqlite::Result<(Vec<DeadLetter>, i64)> {
    let n = DELIVERY_COLUMN_COUNT;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS}, c.kind, c.visitor_name, c.visitor_email, c.received_at
         FROM deliveries d JOIN conversations c ON c.id = d.conversation_id
         WHERE d.state = 'dead' AND (?1 IS NULL OR d.destination = ?1)
         ORDER BY d.updated_at DESC, d.id DESC LIMIT ?2"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![destination, limit], |r| {
            Ok(DeadLetter {
                delivery: delivery(r)?,
                kind: r.get(n)?,
                visitor_name: r.get(n + 1)?,
                visitor_email: r.get(n + 2)?,
                received_at: r.get(n + 3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'dead' AND (?1 IS NULL OR destination = ?1)",
        )?
        .query_row(params![destination], |r| r.get(0))?;
    Ok((rows, total))
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
                dead: r.get(6)?,
                last_error: None,
                last_error_at: None,
                last_error_status: None,
                last_error_response: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut last = conn.prepare_cached(&last_error_sql("?1"))?;
    for d in &mut destinations {
        if let Some((error, at, status, response)) = last
            .query_row([&d.destination], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?
        {
            d.last_error = shown_error(Some(error));
            d.last_error_at = Some(at);
            d.last_error_status = status;
            d.last_error_response = response;
        }
    }
    let last_received_at = conn
        .prepare_cached(LAST_RECEIVED_SQL)?
        .query_row([], |r| r.get(0))?;
    Ok(Overview {
        hooks_last_hour,
        hooks_last_day,
        deliveries: totals,
        destinations,
        last_received_at,
    })
}
