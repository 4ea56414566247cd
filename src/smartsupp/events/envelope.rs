//! The envelope of a Webhooks API event: what the route needs to store it and group it by
//! conversation. Field presence varies between events; only `event` and `data` are required.

use crate::smartsupp::{type_name, IdentityError, MAX_ID_CHARS};
use serde_json::Value;

/// What the route reads from an event body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `event`, e.g. `conversation.closed`.
    pub event: String,
    /// `account_id` (`0` when missing).
    pub account_id: String,
    /// The conversation's id: `data.conversation.id`, `data.conversation_id` or
    /// `data.message.conversation_id`.
    pub conversation_id: Option<String>,
    /// The contact's id: `data.contact.id`, or the conversation's `contact_id`.
    pub contact_id: Option<String>,
    /// `timestamp` in epoch ms, when it is RFC 3339.
    pub occurred_at: Option<i64>,
}

impl Envelope {
    /// Reads an event body. Errors say what is wrong: not JSON or not an object (400), or the
    /// field that makes it no event (422, [`IdentityError::NotConversation`]).
    pub fn read(body: &[u8]) -> Result<Self, IdentityError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| IdentityError::NotJson(e.to_string()))?;
        Self::of(&value)
    }

    /// Reads a parsed event.
    pub fn of(value: &Value) -> Result<Self, IdentityError> {
        let Value::Object(root) = value else {
            return Err(IdentityError::NotObject(type_name(value)));
        };
        let not_event = |m: String| IdentityError::NotConversation(m);
        let event = match root.get("event") {
            Some(Value::String(e)) if !e.trim().is_empty() => e.trim().to_string(),
            Some(Value::String(_)) => {
                return Err(not_event("not a Smartsupp event: event is empty".into()))
            }
            Some(other) => {
                return Err(not_event(format!(
                    "not a Smartsupp event: event must be a string, found {}",
                    type_name(other)
                )))
            }
            None => return Err(not_event("not a Smartsupp event: event is missing".into())),
        };
        let data = match root.get("data") {
            Some(Value::Object(data)) => data,
            Some(other) => {
                return Err(not_event(format!(
                    "not a Smartsupp event: data must be an object, found {}",
                    type_name(other)
                )))
            }
            None => return Err(not_event("not a Smartsupp event: data is missing".into())),
        };
        let account_id = match root.get("account_id") {
            None | Some(Value::Null) => "0".to_string(),
            Some(v) => id_of(v).ok_or_else(|| {
                not_event(format!(
                    "account_id must be a number or a string of at most {MAX_ID_CHARS} characters"
                ))
            })?,
        };
        let conversation = data.get("conversation");
        let conversation_id = conversation
            .and_then(|c| c.get("id"))
            .or_else(|| data.get("conversation_id"))
            .or_else(|| data.get("message").and_then(|m| m.get("conversation_id")))
            .filter(|v| !v.is_null());
        let conversation_id = match conversation_id {
            Some(v) => Some(id_of(v).ok_or_else(|| {
                not_event(format!(
                    "the conversation id must be a number or a string of at most {MAX_ID_CHARS} characters"
                ))
            })?),
            None => None,
        };
        let contact_id = data
            .get("contact")
            .and_then(|c| c.get("id"))
            .or_else(|| conversation.and_then(|c| c.get("contact_id")))
            .and_then(id_of);
        let occurred_at = root.get("timestamp").and_then(millis);
        Ok(Self {
            event,
            account_id,
            conversation_id,
            contact_id,
            occurred_at,
        })
    }
}

/// The text of a numeric or non-empty string id of at most [`MAX_ID_CHARS`] characters.
pub fn id_of(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.chars().count() <= MAX_ID_CHARS).then_some(text)
}

/// Epoch ms of an RFC 3339 string, or of a number (seconds when small, else ms).
pub fn millis(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.timestamp_millis()),
        Value::Number(n) => {
            let n = n.as_f64()?;
            Some(if n < 1e11 {
                (n * 1000.0) as i64
            } else {
                n as i64
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_name_what_is_missing() {
        let cases: &[(&[u8], &str)] = &[
            (b"nope", "not valid JSON"),
            (b"[1]", "must be a JSON object, found an array"),
            (br#"{"data":{}}"#, "event is missing"),
            (
                br#"{"event":5,"data":{}}"#,
                "event must be a string, found a number",
            ),
            (br#"{"event":"x"}"#, "data is missing"),
            (
                br#"{"event":"x","data":[]}"#,
                "data must be an object, found an array",
            ),
            (
                br#"{"event":"x","data":{"conversation":{"id":[]}}}"#,
                "conversation id must be",
            ),
        ];
        for (body, expected) in cases {
            let err = Envelope::read(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn ids_come_from_wherever_the_event_puts_them() {
        let e = Envelope::read(
            br#"{"event":"conversation.agent_joined","timestamp":"2026-05-15T10:03:00Z","account_id":"a","data":{"conversation_id":"c1","agent_id":"x"}}"#,
        )
        .unwrap();
        assert_eq!(e.conversation_id.as_deref(), Some("c1"));
        assert_eq!(e.occurred_at, Some(1_778_839_380_000));
        let e = Envelope::read(
            br#"{"event":"conversation.message_delivered","data":{"message":{"id":"m","conversation_id":7}}}"#,
        )
        .unwrap();
        assert_eq!(
            (e.account_id.as_str(), e.conversation_id.as_deref()),
            ("0", Some("7"))
        );
        let e = Envelope::read(
            br#"{"event":"contact.updated","account_id":9,"data":{"contact":{"id":"k"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (e.conversation_id, e.contact_id.as_deref()),
            (None, Some("k"))
        );
    }
}
