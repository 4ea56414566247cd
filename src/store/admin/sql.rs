//! The SQL of the operator queries that both backends share, written once with each backend's
//! placeholders and dialect.

use super::ConversationQuery;
use crate::store::DeliveryState;

/// The SQL dialect of a backend, where their queries differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `?1` placeholders; LIKE ignores ASCII case; rows carry whole bodies, so a search first
    /// reads the narrow visitor index (`CROSS JOIN` keeps that order).
    Sqlite,
    /// `$1::type` placeholders; ILIKE; bodies are stored out of line (TOAST), so scanning the
    /// newest rows and filtering is cheap; deliveries carry their conversation's key.
    Postgres,
}

/// A query parameter, bound by each backend in its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
}

/// The parameters of a query being written, with each backend's placeholders.
struct Binder {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Binder {
    fn bind(&mut self, param: Param) -> String {
        let cast = match (&param, self.dialect) {
            (_, Dialect::Sqlite) => "",
            (Param::Text(_), Dialect::Postgres) => "::text",
            (Param::Int(_), Dialect::Postgres) => "::int8",
        };
        self.params.push(param);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.params.len()),
            Dialect::Postgres => format!("${}{cast}", self.params.len()),
        }
    }
}

/// The deliveries of every version of conversation `c`, as the start of a subquery.
fn deliveries_of_c(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "conversations v JOIN deliveries d ON d.conversation_id = v.id WHERE v.key = c.key"
        }
        Dialect::Postgres => "deliveries d WHERE d.key = c.key",
    }
}

/// The rows (alias `c`, latest versions only) that `q`'s filters select, without paging:
/// the FROM clause and the conditions.
fn matching(b: &mut Binder, q: &ConversationQuery) -> (String, Vec<String>) {
    let dialect = b.dialect;
    let mut from = "conversations c".to_string();
    let mut conditions = vec![
        "NOT EXISTS (SELECT 1 FROM conversations n WHERE n.key = c.key AND n.version > c.version)"
            .to_string(),
    ];
    if let Some(search) = &q.search {
        let s = b.bind(Param::Text(search.clone()));
        let pat = b.bind(Param::Text(like_pattern(search)));
        match dialect {
            Dialect::Sqlite => {
                from = format!(
                    "(SELECT id FROM conversations WHERE key = {s}
                      UNION SELECT id FROM conversations
                            WHERE visitor_email LIKE {pat} ESCAPE '\\' OR visitor_name LIKE {pat} ESCAPE '\\') h
                     CROSS JOIN conversations c ON c.id = h.id"
                )
            }
            Dialect::Postgres => conditions.push(format!(
                "(c.key = {s} OR c.visitor_email ILIKE {pat} ESCAPE '\\'
                  OR c.visitor_name ILIKE {pat} ESCAPE '\\')"
            )),
        }
    }
    if let Some(kind) = &q.kind {
        conditions.push(format!("c.kind = {}", b.bind(Param::Text(kind.clone()))));
    }
    if let Some(state) = &q.state {
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM {} AND d.state = {})",
            deliveries_of_c(dialect),
            b.bind(Param::Text(state.as_str().to_string()))
        ));
    }
    (from, conditions)
}

/// The SQL of [`ConversationQuery`] and its parameters in order. Only the filters given
/// appear, so each can use its index, and the page's ids are chosen before the delivery
/// counts are computed for them alone. The newest rows are read until the page is full; on
/// SQLite a search instead finds its matches first (the key by its index, email and name in
/// one pass over the narrow visitor index) and checks only those.
///
/// Columns: id, key, version, received_at, kind, visitor_name, visitor_email, pending, done,
/// dead, began_at, ended_at, the destinations with a dead delivery and those with a pending
/// delivery whose last attempt failed (each comma-separated; names hold no commas).
pub fn conversations_sql(dialect: Dialect, q: &ConversationQuery) -> (String, Vec<Param>) {
    let mut b = Binder {
        dialect,
        params: Vec::new(),
    };
    let (from, mut conditions) = matching(&mut b, q);
    if let Some(before) = q.before {
        conditions.push(format!("c.id < {}", b.bind(Param::Int(before))));
    }
    let limit = b.bind(Param::Int(q.limit));
    let of_c = deliveries_of_c(dialect);
    let count = |state: DeliveryState| {
        format!(
            "(SELECT COUNT(*) FROM {of_c} AND d.state = '{}')",
            state.as_str()
        )
    };
    let names = |condition: &str| match dialect {
        Dialect::Sqlite => {
            format!("(SELECT group_concat(DISTINCT d.destination) FROM {of_c} AND {condition})")
        }
        Dialect::Postgres => {
            format!("(SELECT string_agg(DISTINCT d.destination, ',') FROM {of_c} AND {condition})")
        }
    };
    let sql = format!(
        "SELECT c.id, c.key, c.version, c.received_at, c.kind, c.visitor_name, c.visitor_email,
                {pending}, {done}, {dead}, c.began_at, c.ended_at, {dead_to}, {retrying_to}
         FROM conversations c
         WHERE c.id IN (SELECT c.id FROM {from} WHERE {conditions}
                        ORDER BY c.id DESC LIMIT {limit})
         ORDER BY c.id DESC",
        pending = count(DeliveryState::Pending),
        done = count(DeliveryState::Done),
        dead = count(DeliveryState::Dead),
        dead_to = names(&format!("d.state = '{}'", DeliveryState::Dead.as_str())),
        retrying_to = names(&format!(
            "d.state = '{}' AND d.last_error IS NOT NULL",
            DeliveryState::Pending.as_str()
        )),
        conditions = conditions.join(" AND "),
    );
    (sql, b.params)
}

/// How many conversations `q`'s filters select (paging aside), counting at most `cap` of
/// them so a count over a large store stays cheap: one column, at most `cap`.
pub fn conversations_count_sql(
    dialect: Dialect,
    q: &ConversationQuery,
    cap: i64,
) -> (String, Vec<Param>) {
    let mut b = Binder {
        dialect,
        params: Vec::new(),
    };
    let (from, conditions) = matching(&mut b, q);
    let cap = b.bind(Param::Int(cap));
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {from} WHERE {conditions} LIMIT {cap}) m",
        conditions = conditions.join(" AND "),
    );
    (sql, b.params)
}

/// A search text as a `LIKE … ESCAPE '\\'` pattern matching it anywhere (the backends compare
/// case-insensitively).
pub fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Per-destination counts for the overview; parameter 1 is the start of the last day.
pub fn destination_stats_sql(p1: &str) -> String {
    format!(
        "SELECT destination,
                SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END),
                MIN(CASE WHEN state = 'pending' THEN created_at END),
                SUM(CASE WHEN state = 'done' AND updated_at >= {p1} THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'dead' AND updated_at >= {p1} THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'done' THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END)
         FROM deliveries GROUP BY destination ORDER BY destination"
    )
}

/// The newest failure of one destination (its error, when, and the status and response of
/// its last attempt); parameter 1 is the destination.
pub fn last_error_sql(p1: &str) -> String {
    format!(
        "SELECT d.last_error, d.updated_at,
                (SELECT a.status FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1),
                (SELECT a.excerpt FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1)
         FROM deliveries d
         WHERE d.destination = {p1} AND d.last_error IS NOT NULL ORDER BY d.updated_at DESC LIMIT 1"
    )
}

/// When the newest conversation version was received (epoch ms), or null.
pub const LAST_RECEIVED_SQL: &str = "SELECT MAX(received_at) FROM conversations";

/// The SQL condition (on conversation alias `c`) of [`super::Retention`]; parameters 1 and
/// 2 are `received_before` and `dead_before`, written in each backend's placeholder style.
pub fn retention_condition(p1: &str, p2: &str) -> String {
    format!(
        "c.received_at < {p1}
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.conversation_id = c.id AND d.state = 'pending')
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.conversation_id = c.id AND d.state = 'dead'
                         AND d.updated_at >= {p2})"
    )
}

/// Columns of [`super::DeliveryInfo`], for `d` joined with conversation `c`, in the order of
/// its fields (the request of the last attempt excepted): [`DELIVERY_COLUMN_COUNT`] of them.
pub const DELIVERY_COLUMNS: &str = "d.id, c.key, c.version, d.destination, d.state, \
     (SELECT COUNT(*) FROM attempts a WHERE a.delivery_id = d.id), d.attempts, \
     d.next_attempt_at, d.last_error, d.result, d.created_at, d.updated_at, \
     (SELECT a.excerpt FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1), \
     (SELECT a.status FROM attempts a WHERE a.delivery_id = d.id ORDER BY a.id DESC LIMIT 1), \
     (SELECT r.replayed_at FROM replays r WHERE r.delivery_id = d.id ORDER BY r.id DESC LIMIT 1), \
     (SELECT r.replayed_by FROM replays r WHERE r.delivery_id = d.id ORDER BY r.id DESC LIMIT 1)";

/// How many columns [`DELIVERY_COLUMNS`] has.
pub const DELIVERY_COLUMN_COUNT: usize = 16;

/// The state a replay leaves: due now, with a fresh retry schedule; parameter 1 is now.
pub fn replay_set(p1: &str) -> String {
    format!(
        "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = {p1},
             lease_until = NULL, updated_at = {p1}"
    )
}

/// Erases the Webhooks API events of conversation `?1`, and the contact events of the
/// contacts those events name (they hold the visitor's details).
pub const ERASE_EVENTS_SQLITE: &str = "DELETE FROM smartsupp_events WHERE conversation = ?1
     OR contact IN (SELECT contact FROM smartsupp_events WHERE conversation = ?1 AND contact IS NOT NULL)";

/// [`ERASE_EVENTS_SQLITE`] for PostgreSQL.
pub const ERASE_EVENTS_POSTGRES: &str = "DELETE FROM smartsupp_events WHERE conversation = $1
     OR contact IN (SELECT contact FROM smartsupp_events WHERE conversation = $1 AND contact IS NOT NULL)";

/// Webhooks API events received before `received_before` (a placeholder) whose conversation
/// is not waiting for assembly: what retention removes.
pub fn old_events(received_before: &str) -> String {
    format!(
        "received_at < {received_before}
         AND (conversation IS NULL OR conversation NOT IN (SELECT key FROM smartsupp_assemblies))"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_uses_the_filters_of_the_page_and_its_own_cap() {
        let q = ConversationQuery {
            search: Some("ann".into()),
            kind: Some("missed".into()),
            state: Some(DeliveryState::Dead),
            before: Some(10),
            limit: 50,
        };
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let (page, page_params) = conversations_sql(dialect, &q);
            let (count, count_params) = conversations_count_sql(dialect, &q, 1000);
            assert_eq!(page_params.len(), 6, "{page}");
            assert_eq!(
                count_params,
                [
                    Param::Text("ann".into()),
                    Param::Text("%ann%".into()),
                    Param::Text("missed".into()),
                    Param::Text(DeliveryState::Dead.as_str().into()),
                    Param::Int(1000),
                ],
                "{count}"
            );
            assert!(
                !count.contains("c.id <"),
                "the count ignores paging: {count}"
            );
        }
    }
}
