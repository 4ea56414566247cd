//! The dead letters page: dead deliveries grouped by destination and error, each group with
//! its count, what the error means, the raw error text, and its conversations.

use super::outcome;
use super::{display_name, AdminError};
use crate::store::admin::DeadLetter;
use crate::store::Store;
use serde::Serialize;

/// Most dead deliveries read for the page (the newest); the total says how many there are.
pub const DEAD_LIMIT: i64 = 1000;
/// Groups of at most this many deliveries are shown open.
const OPEN_UP_TO: usize = 5;
/// Distinct raw error texts kept per group.
const RAW_KEPT: usize = 3;

/// The dead letters page.
#[derive(Debug, Serialize)]
pub struct DeadView {
    /// Dead deliveries in all (of the destination shown).
    pub total: i64,
    /// How many of them are shown: the newest, at most [`DEAD_LIMIT`].
    pub shown: usize,
    /// The groups, the largest first.
    pub groups: Vec<DeadGroup>,
    /// The ids of every delivery shown, comma-separated (what "retry all" replays).
    pub ids: String,
}

/// Dead deliveries of one destination that failed the same way.
#[derive(Debug, Serialize)]
pub struct DeadGroup {
    /// Destination name.
    pub destination: String,
    /// The error's headline ([`outcome::summary`]).
    pub headline: String,
    /// What the destination said, when it said the same to all of them.
    pub message: Option<String>,
    /// Why they are not retried and what to do.
    pub why: String,
    /// How many.
    pub count: usize,
    /// Their ids, comma-separated (what "retry this group" replays).
    pub ids: String,
    /// The error texts as recorded (a few distinct ones).
    pub raw_errors: Vec<String>,
    /// When the newest of them died (epoch ms).
    pub last_died_at: i64,
    /// When the oldest of them died (epoch ms).
    pub first_died_at: i64,
    /// Whether they all died within a minute (the page then shows one time).
    pub died_together: bool,
    /// Whether the page shows its conversations without a click.
    pub open: bool,
    /// Its deliveries, newest first.
    pub rows: Vec<DeadRow>,
}

/// One dead delivery of a group.
#[derive(Debug, Serialize)]
pub struct DeadRow {
    /// Delivery id.
    pub id: i64,
    /// Conversation key.
    pub key: String,
    /// Conversation version.
    pub version: i64,
    /// The visitor's name, as every page shows it.
    pub visitor: String,
    /// The visitor's email.
    pub email: Option<String>,
    /// `chat`, `missed` or `offline`.
    pub kind: String,
    /// When the conversation version was received (epoch ms).
    pub received_at: i64,
    /// When it died (epoch ms).
    pub died_at: i64,
    /// Attempts logged (the number every page shows).
    pub attempts: i64,
    /// When it was last replayed, and by whom.
    pub replayed_at: Option<i64>,
    /// `admin` or `cli`.
    pub replayed_by: Option<String>,
}

/// Builds the dead letters page, optionally of one destination.
pub async fn dead(store: &Store, destination: Option<String>) -> Result<DeadView, AdminError> {
    let (letters, total) = store
        .dead_letters(destination.filter(|d| !d.is_empty()), DEAD_LIMIT)
        .await?;
    Ok(group(letters, total))
}

/// Groups dead letters (newest first) by destination and the headline and message of their
/// error; the largest group first, then the one that died last.
pub fn group(letters: Vec<DeadLetter>, total: i64) -> DeadView {
    let shown = letters.len();
    let ids = join(letters.iter().map(|l| l.delivery.id));
    let mut groups: Vec<DeadGroup> = Vec::new();
    for letter in letters {
        let d = &letter.delivery;
        let error = d.last_error.clone().unwrap_or_default();
        let (headline, message) =
            outcome::summary(&error, d.last_status, d.last_response.as_deref());
        let row = DeadRow {
            id: d.id,
            key: d.key.clone(),
            version: d.version,
            visitor: display_name(
                letter.visitor_name.as_deref(),
                letter.visitor_email.as_deref(),
            ),
            email: letter.visitor_email.clone(),
            kind: letter.kind.clone(),
            received_at: letter.received_at,
            died_at: d.updated_at,
            attempts: d.attempts,
            replayed_at: d.replayed_at,
            replayed_by: d.replayed_by.clone(),
        };
        let found = groups.iter_mut().find(|g| {
            g.destination == d.destination && g.headline == headline && g.message == message
        });
        let group = match found {
            Some(g) => g,
            None => {
                let why = outcome::next(d, None, 0)
                    .map(|n| n.text)
                    .unwrap_or_default();
                groups.push(DeadGroup {
                    destination: d.destination.clone(),
                    headline,
                    message,
                    why,
                    count: 0,
                    ids: String::new(),
                    raw_errors: Vec::new(),
                    last_died_at: d.updated_at,
                    first_died_at: d.updated_at,
                    died_together: true,
                    open: false,
                    rows: Vec::new(),
                });
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        if !error.is_empty()
            && group.raw_errors.len() < RAW_KEPT
            && !group.raw_errors.contains(&error)
        {
            group.raw_errors.push(error);
        }
        group.first_died_at = group.first_died_at.min(row.died_at);
        group.last_died_at = group.last_died_at.max(row.died_at);
        group.rows.push(row);
    }
    for g in &mut groups {
        g.count = g.rows.len();
        g.ids = join(g.rows.iter().map(|r| r.id));
        g.open = g.count <= OPEN_UP_TO;
        g.died_together = g.last_died_at - g.first_died_at < 60_000;
    }
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.last_died_at.cmp(&a.last_died_at))
    });
    DeadView {
        total,
        shown,
        groups,
        ids,
    }
}

fn join(ids: impl Iterator<Item = i64>) -> String {
    ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::DeliveryInfo;
    use crate::store::DeliveryState;

    fn letter(id: i64, destination: &str, error: &str, status: Option<i64>) -> DeadLetter {
        DeadLetter {
            delivery: DeliveryInfo {
                id,
                key: format!("208-{id}"),
                version: 1,
                destination: destination.into(),
                state: DeliveryState::Dead,
                attempts: 2,
                schedule_attempts: 1,
                next_attempt_at: 0,
                last_error: Some(error.into()),
                result: None,
                created_at: 0,
                updated_at: 100 - id,
                last_response: None,
                last_status: status,
                replayed_at: None,
                replayed_by: None,
                last_request: None,
            },
            kind: "chat".into(),
            visitor_name: None,
            visitor_email: None,
            received_at: 0,
        }
    }

    #[test]
    fn dead_letters_group_by_destination_and_error_with_counts() {
        let refused = "could not connect: a: Connection refused (os error 111)";
        let mut letters: Vec<DeadLetter> =
            (1..=7).map(|id| letter(id, "crm", refused, None)).collect();
        letters.push(letter(8, "crm", "HTTP 422", Some(422)));
        letters.push(letter(9, "helpdesk", refused, None));
        let view = group(letters, 12);
        assert_eq!((view.total, view.shown), (12, 9));
        let summary: Vec<(&str, &str, usize)> = view
            .groups
            .iter()
            .map(|g| (g.destination.as_str(), g.headline.as_str(), g.count))
            .collect();
        assert_eq!(
            summary,
            [
                ("crm", "Could not connect", 7),
                ("crm", "HTTP 422 Unprocessable Entity", 1),
                ("helpdesk", "Could not connect", 1),
            ]
        );
        let big = &view.groups[0];
        assert_eq!(big.ids, "1,2,3,4,5,6,7");
        assert!(!big.open && view.groups[1].open);
        assert_eq!(big.raw_errors, [refused]);
        assert_eq!((big.first_died_at, big.last_died_at), (93, 99));
        assert_eq!(big.rows[0].visitor, "Anonymous visitor");
        assert!(big.why.contains("gave up after 2 attempts"), "{}", big.why);
    }
}
