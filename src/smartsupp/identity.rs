//! The hook path's read of a body: the conversation's identity, and a check that the whole
//! body is JSON the full parse ([`super::context`]) accepts, so that nothing answered 200
//! dead-letters later for being unreadable. No JSON tree is built.

use super::probe::{Channel, Checked, Probe};
use super::{kind_of, looks_like_email, non_empty, type_name};
use serde_json::value::RawValue;
use serde_json::Value;

/// Longest `accountId` and `channel.id` accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// What the receiver needs from a hook body: the conversation key, and what the admin
/// dashboard lists and searches by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `<accountId>-<channel.id>`; `0` stands for a missing account id.
    pub key: String,
    /// `chat`, `missed` or `offline`.
    pub kind: &'static str,
    /// The visitor's name, trimmed, when given.
    pub name: Option<String>,
    /// The visitor's email, trimmed and lowercased, when it looks like one.
    pub email: Option<String>,
    /// When the chat began (`beginAt`, epoch ms), when the body says.
    pub began_at: Option<i64>,
    /// When it ended (`endAt`, epoch ms), when the body says.
    pub ended_at: Option<i64>,
}

/// Why a body is not a conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The body does not parse as JSON (numbers beyond the range of a double, lone UTF-16
    /// surrogates, invalid UTF-8 and nesting deeper than 128 included).
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON, but not an object.
    #[error("body must be a JSON object, found {0}")]
    NotObject(&'static str),
    /// A JSON object that is not a usable conversation; the message names the field.
    #[error("{0}")]
    NotConversation(String),
}

impl Identity {
    /// Reads the key from a hook body without building a JSON tree. The whole body is still
    /// read through the grammar of the full parse: whatever this accepts, [`super::context`]
    /// accepts too.
    pub fn read(body: &[u8]) -> Result<Self, IdentityError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| IdentityError::NotJson(e.to_string()))?;
            return Err(IdentityError::NotObject(type_name(&value)));
        }
        let probe: Probe =
            serde_json::from_slice(body).map_err(|e| IdentityError::NotJson(e.to_string()))?;
        if let Some(field) = probe.repeated {
            return Err(IdentityError::NotConversation(format!(
                "{field} appears more than once; a conversation names it once"
            )));
        }
        let missing = || {
            IdentityError::NotConversation(
                "not a Smartsupp conversation: channel.id is missing".into(),
            )
        };
        let channel = match probe.channel.ok_or_else(missing)? {
            Channel::Object(channel) => channel,
            Channel::Other => {
                return Err(IdentityError::NotConversation(
                    "not a Smartsupp conversation: channel must be an object with an id".into(),
                ))
            }
        };
        let channel_id = id_text(body, "channel.id", channel.id.ok_or_else(missing)?)?;
        let account = match probe.account_id {
            Some(raw) => id_text(body, "accountId", raw)?,
            None => "0".to_string(),
        };
        let flag = |v: &Option<Value>| v.as_ref().and_then(Value::as_bool).unwrap_or(false);
        let kind = kind_of(flag(&channel.is_offline), flag(&channel.is_missed));
        // A visitor that is not an object is left to the templates to report; here it only
        // means nothing to search by.
        let visitor = probe.visitor;
        let name = visitor.name.as_ref().and_then(non_empty);
        let email = visitor
            .email
            .as_ref()
            .and_then(non_empty)
            .filter(|e| looks_like_email(e))
            .map(|e| e.to_lowercase());
        let millis = |v: &Option<Value>| {
            v.as_ref()
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        };
        Ok(Self {
            key: format!("{account}-{channel_id}"),
            kind,
            name,
            email,
            began_at: millis(&probe.begin_at),
            ended_at: millis(&probe.end_at),
        })
    }
}

/// The text of a numeric or string id of at most [`MAX_ID_CHARS`] characters.
fn id_text(body: &[u8], field: &str, raw: &RawValue) -> Result<String, IdentityError> {
    let text = raw.get();
    // The probe only skimmed the id: read it again through the full grammar.
    let id = match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).map_err(|_| grammar_error(body))?,
        Some(b'-' | b'0'..=b'9') => {
            serde_json::from_str::<Checked>(text).map_err(|_| grammar_error(body))?;
            text.to_string()
        }
        _ => String::new(),
    };
    if id.trim().is_empty() {
        return Err(IdentityError::NotConversation(format!(
            "{field} must be a number or a non-empty string"
        )));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(IdentityError::NotConversation(format!(
            "{field} is longer than {MAX_ID_CHARS} characters"
        )));
    }
    Ok(id)
}

/// The full grammar's complaint about `body`, with its position in the body.
fn grammar_error(body: &[u8]) -> IdentityError {
    match serde_json::from_slice::<Checked>(body) {
        Err(e) => IdentityError::NotJson(e.to_string()),
        // Not reached: a part that fails the grammar fails it within the whole body too.
        Ok(_) => IdentityError::NotJson("an id is not a valid JSON value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{context, Stored};
    use super::*;

    fn full_parse_accepts(body: &[u8]) -> bool {
        let stored = Stored {
            key: "k".into(),
            version: 1,
            received_at: 0,
        };
        context(body, &stored).is_ok()
    }

    #[test]
    fn identity_accepts_numbers_and_strings() {
        let id = Identity::read(br#"{"accountId": 208, "channel": {"id": 55039}}"#).unwrap();
        assert_eq!(id.key, "208-55039");
        let id = Identity::read(br#" {"accountId": "a1", "channel": {"id": "c9"}}"#).unwrap();
        assert_eq!(id.key, "a1-c9");
        let id = Identity::read(br#"{"channel": {"id": 7}}"#).unwrap();
        assert_eq!(id.key, "0-7");
        let id = Identity::read(br#"{"accountId": null, "channel": {"id": 1.50}}"#).unwrap();
        assert_eq!(id.key, "0-1.50");
    }

    #[test]
    fn identity_carries_kind_and_visitor_for_search() {
        let raw = br#"{"channel":{"id":1,"isMissed":true},"visitor":{"name":" Ann ","email":" Ann@Example.COM "}}"#;
        let id = Identity::read(raw).unwrap();
        assert_eq!(
            (id.kind, id.name.as_deref(), id.email.as_deref()),
            ("missed", Some("Ann"), Some("ann@example.com"))
        );
        let raw = br#"{"channel":{"id":1,"isOffline":true,"isMissed":true},"visitor":{"email":"not an email"}}"#;
        let id = Identity::read(raw).unwrap();
        assert_eq!((id.kind, id.name, id.email), ("offline", None, None));
        assert_eq!((id.began_at, id.ended_at), (None, None));
        let raw = br#"{"channel":{"id":1},"beginAt":1427470439703,"endAt":"soon"}"#;
        let id = Identity::read(raw).unwrap();
        assert_eq!((id.began_at, id.ended_at), (Some(1427470439703), None));
        let id = Identity::read(br#"{"channel":{"id":1},"visitor":[1]}"#).unwrap();
        assert_eq!((id.kind, id.name, id.email), ("chat", None, None));
    }

    #[test]
    fn identity_errors_say_what_is_wrong() {
        let long = "9".repeat(MAX_ID_CHARS + 1);
        let long_id = format!(r#"{{"channel": {{"id": {long}}}}}"#);
        let long_account = format!(r#"{{"accountId": "{long}", "channel": {{"id": 1}}}}"#);
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not valid JSON"),
            (b"[1,2]", "an array"),
            (b"\"text\"", "a string"),
            (b"{\"a\":1", "not valid JSON"),
            (b"{}", "channel.id is missing"),
            (b"{\"channel\": 5}", "channel must be an object"),
            (b"{\"channel\": null}", "channel must be an object"),
            (b"{\"channel\": {\"id\": null}}", "channel.id is missing"),
            (b"{\"channel\": {\"id\": \"\"}}", "channel.id must be"),
            (b"{\"channel\": {\"id\": [1]}}", "channel.id must be"),
            (
                b"{\"accountId\": [], \"channel\": {\"id\": 1}}",
                "accountId must be",
            ),
            (
                long_id.as_bytes(),
                "channel.id is longer than 128 characters",
            ),
            (
                long_account.as_bytes(),
                "accountId is longer than 128 characters",
            ),
            (
                br#"{"channel": {"id": 1}, "channel": {"id": 2}}"#,
                "channel appears more than once",
            ),
            (
                br#"{"channel": {"id": 1, "id": 2}}"#,
                "channel.id appears more than once",
            ),
            (
                br#"{"accountId": 1, "channel": {"id": 1}, "accountId": 2}"#,
                "accountId appears more than once",
            ),
            (
                br#"{"channel": {"id": 1}, "visitor": {"name": "a", "name": "b"}}"#,
                "visitor.name appears more than once",
            ),
        ];
        for (body, expected) in cases {
            let err = Identity::read(body).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn ids_of_exactly_the_limit_are_accepted() {
        let id = "é".repeat(MAX_ID_CHARS);
        let body = format!(r#"{{"accountId": "{id}", "channel": {{"id": "{id}"}}}}"#);
        assert_eq!(
            Identity::read(body.as_bytes()).unwrap().key,
            format!("{id}-{id}")
        );
    }

    /// Bodies the full parse refuses, anywhere in the body: the identity refuses them too.
    #[test]
    fn identity_refuses_what_the_full_parse_refuses() {
        let deep = |n: usize| {
            format!(
                r#"{{"channel":{{"id":1}},"x":{}{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let too_deep = deep(128);
        let cases: &[(&[u8], &str)] = &[
            (br#"{"channel":{"id":1},"x":1e400}"#, "number out of range"),
            (br#"{"channel":{"id":1},"x":-1e400}"#, "number out of range"),
            (
                br#"{"channel":{"id":1},"x":{"y":[1e999]}}"#,
                "number out of range",
            ),
            (
                br#"{"channel":{"id":1e400}}"#,
                "number out of range at line 1 column 22",
            ),
            (
                br#"{"accountId":2e308,"channel":{"id":1}}"#,
                "number out of range",
            ),
            (
                br#"{"channel":{"id":1,"duration":1e400}}"#,
                "number out of range",
            ),
            (
                br#"{"channel":{"id":1,"isMissed":1e400}}"#,
                "number out of range",
            ),
            (
                br#"{"channel":{"id":1},"visitor":{"note":1e400}}"#,
                "number out of range",
            ),
            (
                br#"{"channel":{"id":1},"visitor":[1e400]}"#,
                "number out of range",
            ),
            (br#"{"channel":[1e400]}"#, "number out of range"),
            (br#"{"channel":{"id":1},"x":"\ud800"}"#, "hex escape"),
            (br#"{"channel":{"id":"\udc00"}}"#, "surrogate"),
            (br#"{"channel":{"id":1},"\ud800":1}"#, "hex escape"),
            (
                b"{\"channel\":{\"id\":1},\"x\":\"\xff\"}",
                "invalid unicode",
            ),
            (b"{\"channel\":{\"id\":1},\"\xc3\":1}", "invalid unicode"),
            (too_deep.as_bytes(), "recursion limit"),
        ];
        for (body, expected) in cases {
            let shown = String::from_utf8_lossy(body);
            assert!(!full_parse_accepts(body), "{shown}");
            match Identity::read(body) {
                Err(IdentityError::NotJson(message)) => {
                    assert!(message.contains(expected), "{shown}: {message}")
                }
                other => panic!("{shown}: {other:?}"),
            }
        }
        // Just within the nesting limit, both accept.
        assert!(full_parse_accepts(deep(126).as_bytes()));
        assert!(Identity::read(deep(126).as_bytes()).is_ok());
        assert!(!full_parse_accepts(deep(127).as_bytes()));
        assert!(Identity::read(deep(127).as_bytes()).is_err());
    }
}
