//! The Smartsupp POST hook: the cheap identity read on the hook path, and the normalized
//! template context built later by the worker.

pub mod events;
mod identity;
mod probe;

pub use identity::{Identity, IdentityError, MAX_ID_CHARS};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The name of a JSON value's type, for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the bridge knows about a stored conversation besides its body.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Conversation key.
    pub key: String,
    /// Version of this key, from 1.
    pub version: i64,
    /// When deskbridge received this version (epoch ms).
    pub received_at: i64,
}

/// Documented fields of `channel`.
const CHANNEL_FIELDS: &[&str] = &[
    "id",
    "isChat",
    "isMissed",
    "isTriggered",
    "isOffline",
    "isCompleted",
    "isDropped",
    "duration",
    "avgResponse",
    "firstResponse",
    "messagesCount",
    "wordsCount",
    "rating",
    "ratingDesc",
];
/// Documented fields of `visitor`.
const VISITOR_FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "note",
    "group",
    "groupKey",
    "ipAddress",
    "city",
    "countryCode",
    "country",
    "userAgent",
    "platform",
    "referer",
];
/// Documented fields of each message.
const MESSAGE_FIELDS: &[&str] = &["type", "name", "from", "content", "sentAt", "triggeredBy"];
/// Documented fields of each visited page.
const PATH_FIELDS: &[&str] = &["url", "title"];

/// Builds the template context: the hook's JSON with every documented field present and a
/// computed `meta` object.
pub fn context(raw: &[u8], stored: &Stored) -> Result<Value, IdentityError> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| IdentityError::NotJson(e.to_string()))?;
    let Value::Object(mut root) = value else {
        return Err(IdentityError::NotObject(type_name(&value)));
    };
    for field in ["accountId", "beginAt", "endAt"] {
        root.entry(field).or_insert(Value::Null);
    }
    let channel = object_at(&mut root, "channel");
    fill(channel, CHANNEL_FIELDS);
    let visitor = object_at(&mut root, "visitor");
    fill(visitor, VISITOR_FIELDS);
    if visitor["group"].is_null() {
        visitor["group"] = visitor["groupKey"].clone();
    }
    if visitor["groupKey"].is_null() {
        visitor["groupKey"] = visitor["group"].clone();
    }
    normalize_variables(visitor);
    for list in ["paths", "messages"] {
        if !root.get(list).is_some_and(Value::is_array) {
            root.insert(list.into(), Value::Array(Vec::new()));
        }
    }
    for (list, fields) in [("messages", MESSAGE_FIELDS), ("paths", PATH_FIELDS)] {
        if let Some(Value::Array(items)) = root.get_mut(list) {
            for item in items.iter_mut() {
                if !item.is_object() {
                    *item = Value::Object(Map::new());
                }
                if let Value::Object(m) = item {
                    fill(m, fields);
                }
            }
        }
    }
    // An assembled conversation says where it came from; the hook's own fields stay as sent.
    let origin = match root.get("deskbridge") {
        Some(Value::Object(o))
            if matches!(
                o.get("source").and_then(Value::as_str),
                Some("events" | "import")
            ) =>
        {
            root.shift_remove("deskbridge")
        }
        _ => None,
    };
    let mut meta = meta(&root, stored);
    let (source, unknown) = match &origin {
        Some(o) => (o["source"].clone(), o["unknown"].clone()),
        None => (Value::from("hook"), Value::Null),
    };
    meta["source"] = source;
    meta["unknown"] = if unknown.is_array() {
        unknown
    } else {
        Value::Array(Vec::new())
    };
    root.insert("meta".into(), meta);
    Ok(Value::Object(root))
}

fn object_at<'a>(root: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = root.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("made an object just above")
}

fn fill(map: &mut Map<String, Value>, fields: &[&str]) {
    for field in fields {
        map.entry(*field).or_insert(Value::Null);
    }
}

/// `variables` entries become `{label, value}` whether sent that way or as bare values.
fn normalize_variables(visitor: &mut Map<String, Value>) {
    let slot = visitor.entry("variables").or_insert(Value::Null);
    let Value::Object(vars) = slot else {
        *slot = Value::Object(Map::new());
        return;
    };
    for (name, entry) in vars.iter_mut() {
        let is_pair = entry.as_object().is_some_and(|o| o.contains_key("value"));
        if is_pair {
            let label_missing = entry.get("label").is_none_or(Value::is_null);
            if label_missing {
                entry["label"] = Value::String(name.clone());
            }
        } else {
            let value = entry.take();
            *entry = serde_json::json!({ "label": name, "value": value });
        }
    }
}

/// The conversation kind: `offline` (a message left while offline), `missed`, or `chat`.
pub fn kind(root: &Map<String, Value>) -> &'static str {
    let flag = |name: &str| root["channel"][name].as_bool().unwrap_or(false);
    kind_of(flag("isOffline"), flag("isMissed"))
}

fn kind_of(offline: bool, missed: bool) -> &'static str {
    if offline {
        "offline"
    } else if missed {
        "missed"
    } else {
        "chat"
    }
}

/// A string's trimmed text, or a number's; `None` for blanks and other JSON.
pub fn non_empty(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// RFC 3339 text of an epoch-milliseconds value.
pub fn rfc3339(millis: &Value) -> Value {
    millis
        .as_i64()
        .or_else(|| millis.as_f64().map(|f| f as i64))
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

/// `local@domain.tld` with no spaces: good enough to offer as a requester's address.
pub fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
        && !domain.contains('@')
}

/// The latest `sentAt` among the context's messages.
pub fn last_sent_at(context: &Value) -> Option<i64> {
    context["messages"]
        .as_array()?
        .iter()
        .filter_map(|m| m["sentAt"].as_i64())
        .max()
}

/// The context's messages sent after `after` (all of them when `after` is unknown).
pub fn messages_after(context: &Value, after: Option<i64>) -> Vec<Value> {
    context["messages"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|m| match (after, m["sentAt"].as_i64()) {
                    (Some(last), Some(sent)) => sent > last,
                    _ => true,
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// First name and last name from a full name: the first word, and the rest.
pub fn split_name(full: &str) -> (String, String) {
    let full = full.trim();
    match full.split_once(char::is_whitespace) {
        Some((first, rest)) => (first.to_string(), rest.trim().to_string()),
        None => (full.to_string(), String::new()),
    }
}

fn meta(root: &Map<String, Value>, stored: &Stored) -> Value {
    let visitor = &root["visitor"];
    let name = non_empty(&visitor["name"]);
    let email = non_empty(&visitor["email"]).filter(|e| looks_like_email(e));
    let display = name
        .clone()
        .or_else(|| email.clone())
        .or_else(|| non_empty(&visitor["id"]).map(|id| format!("Visitor #{id}")))
        .unwrap_or_else(|| "Anonymous visitor".to_string());
    let (first_name, last_name) = split_name(name.as_deref().unwrap_or(""));
    serde_json::json!({
        "key": stored.key,
        "firstName": first_name,
        "lastName": last_name,
        "version": stored.version,
        "kind": kind(root),
        "visitorName": display,
        "email": email,
        "hasEmail": email.is_some(),
        "beginAt": rfc3339(&root["beginAt"]),
        "endAt": rfc3339(&root["endAt"]),
        "receivedAt": rfc3339(&Value::from(stored.received_at)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_first_and_rest() {
        assert_eq!(split_name("Dusan Kmet"), ("Dusan".into(), "Kmet".into()));
        assert_eq!(split_name(" Cher "), ("Cher".into(), String::new()));
        assert_eq!(
            split_name("Anna Maria  de la Cruz"),
            ("Anna".into(), "Maria  de la Cruz".into())
        );
        assert_eq!(split_name(""), (String::new(), String::new()));
    }

    fn stored() -> Stored {
        Stored {
            key: "1-2".into(),
            version: 1,
            received_at: 0,
        }
    }

    #[test]
    fn context_fills_documented_fields_and_keeps_unknown_ones() {
        let raw = br#"{"channel":{"id":2,"isMissed":true},"visitor":{"groupKey":"g","variables":{"a":5,"b":{"label":"B","value":"x"}}},"messages":[{"type":"visitor","content":"hi","extra":1}],"custom":true}"#;
        let ctx = context(raw, &stored()).unwrap();
        assert_eq!(ctx["visitor"]["group"], "g");
        assert!(ctx["visitor"]["email"].is_null());
        assert_eq!(
            ctx["visitor"]["variables"]["a"],
            serde_json::json!({"label":"a","value":5})
        );
        assert_eq!(ctx["visitor"]["variables"]["b"]["label"], "B");
        assert!(ctx["messages"][0]["name"].is_null());
        assert_eq!(ctx["messages"][0]["extra"], 1);
        assert_eq!(ctx["custom"], true);
        assert_eq!(ctx["paths"], serde_json::json!([]));
        let raw = br#"{"channel":{"id":2},"paths":[{"url":"u"}],"visitor":{"email":" a@b.cz "}}"#;
        let other = context(raw, &stored()).unwrap();
        assert!(other["paths"][0]["title"].is_null());
        assert_eq!(other["meta"]["email"], "a@b.cz");
        assert_eq!(ctx["meta"]["kind"], "missed");
        assert_eq!(ctx["meta"]["visitorName"], "Anonymous visitor");
    }
}
