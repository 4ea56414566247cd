//! Assembly: a conversation's events (and what the REST API added) become the same
//! normalized model a legacy POST hook carries, so routing, versions, destinations and
//! templates treat both alike. The result is deterministic: the same inputs give the same
//! body, so assembling again after a crash is a duplicate, not a new version.

use super::envelope::{id_of, millis};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Which interface a conversation came through (`meta.source` in templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Webhooks API events.
    Events,
    /// `deskbridge import smartsupp` (the REST API).
    Import,
}

impl Source {
    /// `events` or `import`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Import => "import",
        }
    }
}

/// What the REST API told about the contact.
#[derive(Debug, Clone, Default)]
pub enum ContactLookup {
    /// Not asked (no token, or no contact id).
    #[default]
    NotAsked,
    /// The contact.
    Found(Value),
    /// Smartsupp answered 404.
    NotFound,
}

/// What the REST API added, when a token is set.
#[derive(Debug, Clone, Default)]
pub struct ApiData {
    /// `GET conversations/{id}`.
    pub conversation: Option<Value>,
    /// Every message of `GET conversations/{id}/messages`.
    pub messages: Option<Vec<Value>>,
    /// `GET contacts/{id}`.
    pub contact: ContactLookup,
    /// Agent names by id (`GET agents`).
    pub agents: HashMap<String, String>,
    /// Why the API could not complete the conversation (it gave up after its retries).
    pub failed: Option<String>,
}

/// Everything a conversation is assembled from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Smartsupp's account id.
    pub account_id: String,
    /// Smartsupp's conversation id.
    pub conversation_id: String,
    /// Its events (parsed envelopes), in arrival order; contact events included.
    pub events: Vec<Value>,
    /// What the REST API added, when it was asked.
    pub api: Option<ApiData>,
    /// Events or import.
    pub source: Source,
}

/// A message on its way into the model, with what orders it: time, then system events that
/// open (joins) before messages before closes, then a stable tie-breaker (the message id),
/// so the order never depends on the order events arrived in.
struct Message {
    at: Option<i64>,
    rank: u8,
    tie: String,
    value: Value,
}

/// Copies the non-null fields of `from` over `into` (objects only).
fn overlay(into: &mut Map<String, Value>, from: &Value) {
    if let Value::Object(from) = from {
        for (k, v) in from {
            if !v.is_null() {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn text(v: &Value) -> Option<String> {
    crate::smartsupp::non_empty(v)
}

/// A message's text: a string, `{text}`, or a word for other content.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("text")
            .and_then(text)
            .or_else(|| o.get("type").and_then(text).map(|t| format!("[{t}]")))
            .unwrap_or_default(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `variables` as an object whatever shape they came in (an object, or a list of
/// `{name|key, value, label}`).
fn variables(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::Array(items)) => {
            let mut out = Map::new();
            for item in items {
                let name = item.get("name").or_else(|| item.get("key")).and_then(text);
                if let Some(name) = name {
                    let label = item.get("label").and_then(text).unwrap_or(name.clone());
                    let value = item.get("value").cloned().unwrap_or(Value::Null);
                    out.insert(name, json!({"label": label, "value": value}));
                }
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}

/// Builds the hook-shaped body of a conversation.
pub fn assemble(inputs: &Inputs) -> Value {
    let mut conversation = Map::new();
    let mut contact = Map::new();
    let mut messages: BTreeMap<String, (usize, Map<String, Value>)> = BTreeMap::new();
    let mut system: Vec<Message> = Vec::new();
    let mut rating: (Value, Value) = (Value::Null, Value::Null);
    let mut closed_at: Option<i64> = None;
    let mut agent_names: HashMap<String, String> = HashMap::new();
    let mut order = 0usize;
    let mut events: Vec<&Value> = inputs.events.iter().collect();
    // Smartsupp's time first, then arrival: later states win.
    events.sort_by_cached_key(|e| {
        (
            e.get("timestamp").and_then(millis).unwrap_or(i64::MAX),
            e["event"].as_str().unwrap_or("").to_string(),
            e.to_string(),
        )
    });
    for event in &events {
        let name = event["event"].as_str().unwrap_or("");
        let data = &event["data"];
        let at = event.get("timestamp").and_then(millis);
        order += 1;
        if name.starts_with("contact.") {
            overlay(&mut contact, &data["contact"]);
            continue;
        }
        overlay(&mut conversation, &data["conversation"]);
        if let Some(m) = data.get("message").filter(|m| m.is_object()) {
            let id = m
                .get("id")
                .and_then(id_of)
                .unwrap_or_else(|| format!("#{order}"));
            let entry = messages.entry(id).or_insert((order, Map::new()));
            overlay(&mut entry.1, m);
            if let (Some(agent), Some(author)) = (
                m.get("agent_id").and_then(id_of),
                m.get("author_name").and_then(text),
            ) {
                agent_names.insert(agent, author);
            }
        }
        match name {
            "conversation.rated" => {
                rating = (
                    data.get("rating_value").cloned().unwrap_or(Value::Null),
                    data.get("rating_text").cloned().unwrap_or(Value::Null),
                );
            }
            "conversation.agent_joined" | "conversation.agent_left" => {
                let code = if name.ends_with("joined") {
                    "agent.join"
                } else {
                    "agent.leave"
                };
                let agent = data.get("agent_id").and_then(id_of);
                system.push(Message {
                    at,
                    rank: 0,
                    tie: format!("{code}:{}", agent.clone().unwrap_or_default()),
                    value: json!({"code": code, "agent": agent}),
                });
            }
            "conversation.closed" | "conversation.closed_by_contact" => {
                let finished = data["conversation"].get("finished_at").and_then(millis);
                closed_at = finished.or(at);
                let by_contact = name.ends_with("by_contact")
                    || data.get("close_type").and_then(Value::as_str) == Some("contact");
                let code = match data.get("close_type").and_then(Value::as_str) {
                    _ if by_contact => "close.visitorClose",
                    Some("timeout") | Some("inactive") | Some("inactivity") => "close.timeout",
                    _ => "close.agentClose",
                };
                system.retain(|m| !m.value["code"].as_str().unwrap_or("").starts_with("close."));
                system.push(Message {
                    at: closed_at,
                    rank: 2,
                    tie: code.to_string(),
                    value: json!({"code": code, "agent": data.get("agent_id").and_then(id_of)}),
                });
            }
            _ => {}
        }
    }
    let api = inputs.api.clone().unwrap_or_default();
    if let Some(c) = &api.conversation {
        overlay(&mut conversation, c);
    }
    if let ContactLookup::Found(c) = &api.contact {
        overlay(&mut contact, c);
    }
    if let Some(list) = &api.messages {
        for m in list {
            order += 1;
            let id = m
                .get("id")
                .and_then(id_of)
                .unwrap_or_else(|| format!("#{order}"));
            let entry = messages.entry(id).or_insert((order, Map::new()));
            overlay(&mut entry.1, m);
        }
    }
    for (id, name) in &api.agents {
        agent_names.insert(id.clone(), name.clone());
    }
    let conv = Value::Object(conversation);
    let visitor_id = conv.get("visitor_id").and_then(id_of);
    // Messages in the legacy shape.
    let mut out: Vec<Message> = Vec::new();
    let mut unnamed_agent = false;
    for (id, (_, m)) in messages {
        let m = Value::Object(m);
        if m.get("content").is_none() && m.get("sub_type").is_none() {
            continue; // only a delivery receipt
        }
        let at = m.get("created_at").and_then(millis);
        let content = content_text(m.get("content").unwrap_or(&Value::Null));
        let sub_type = m.get("sub_type").and_then(Value::as_str).unwrap_or("");
        let agent = m.get("agent_id").and_then(id_of);
        let trigger = m
            .get("trigger_name")
            .and_then(text)
            .or_else(|| m.get("trigger_id").and_then(text));
        let value = match sub_type {
            "contact" | "visitor" => json!({
                "type": "visitor", "name": null,
                "from": visitor_id.as_ref().map(|v| format!("visitor:{v}")),
                "content": content, "sentAt": at, "triggeredBy": null,
            }),
            "agent" => {
                let name = agent
                    .as_ref()
                    .and_then(|a| agent_names.get(a).cloned())
                    .or_else(|| m.get("author_name").and_then(text));
                unnamed_agent |= name.is_none();
                json!({
                    "type": "agent", "name": name,
                    "from": agent.as_ref().map(|a| format!("agent:{a}")).unwrap_or("agent".into()),
                    "content": content, "sentAt": at, "triggeredBy": null,
                })
            }
            "bot" | "trigger" => json!({
                "type": "agent", "name": m.get("author_name").and_then(text).unwrap_or_default(),
                "from": "system", "content": content, "sentAt": at,
                "triggeredBy": trigger.unwrap_or_else(|| sub_type.to_string()),
            }),
            _ => json!({
                "type": "system", "name": null, "from": "system",
                "content": content, "sentAt": at, "triggeredBy": null,
            }),
        };
        let mut value = value;
        if let Some(files) = m
            .get("attachments")
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        {
            value["attachments"] = files.clone();
        }
        if let Some(page) = m.get("page_url").and_then(text) {
            value["pageUrl"] = Value::String(page);
        }
        out.push(Message {
            at,
            rank: 1,
            tie: id,
            value,
        });
    }
    for s in system {
        let agent = s.value["agent"].as_str().map(str::to_string);
        let name = agent.as_ref().and_then(|a| agent_names.get(a).cloned());
        out.push(Message {
            at: s.at,
            rank: s.rank,
            tie: s.tie,
            value: json!({
                "type": "system", "name": name,
                "from": agent.map(|a| format!("agent:{a}")).unwrap_or("system".into()),
                "content": s.value["code"], "sentAt": s.at, "triggeredBy": null,
            }),
        });
    }
    out.sort_by(|a, b| {
        (a.at.unwrap_or(i64::MAX), a.rank, &a.tie).cmp(&(b.at.unwrap_or(i64::MAX), b.rank, &b.tie))
    });
    let pages: Vec<Value> = {
        let mut seen: Vec<String> = Vec::new();
        for m in &out {
            if let Some(url) = m.value.get("pageUrl").and_then(Value::as_str) {
                if seen.last().map(String::as_str) != Some(url) {
                    seen.push(url.to_string());
                }
            }
        }
        seen.into_iter()
            .map(|url| json!({"url": url, "title": null}))
            .collect()
    };
    let messages: Vec<Value> = out
        .into_iter()
        .map(|mut m| {
            if let Value::Object(o) = &mut m.value {
                o.remove("pageUrl");
            }
            m.value
        })
        .collect();
    // Channel figures as the legacy hook gives them.
    let spoken: Vec<&Value> = messages
        .iter()
        .filter(|m| matches!(m["type"].as_str(), Some("visitor" | "agent")))
        .collect();
    let human_agent = |m: &Value| m["type"] == "agent" && m["triggeredBy"].is_null();
    let mut delays: Vec<i64> = Vec::new();
    let mut waiting_since: Option<i64> = None;
    for m in &spoken {
        match (m["type"].as_str(), m["sentAt"].as_i64()) {
            (Some("visitor"), Some(t)) => {
                waiting_since.get_or_insert(t);
            }
            (_, Some(t)) if human_agent(m) => {
                if let Some(since) = waiting_since.take() {
                    delays.push(((t - since) as f64 / 1000.0).round() as i64);
                }
            }
            _ => {}
        }
    }
    let answered = spoken.iter().any(|m| human_agent(m));
    let offline = conv
        .get("is_offline")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || conv["channel"]["type"]
            .as_str()
            .is_some_and(|t| t != "chat");
    let begin = conv
        .get("created_at")
        .and_then(millis)
        .or_else(|| messages.iter().filter_map(|m| m["sentAt"].as_i64()).min());
    let end = conv
        .get("finished_at")
        .and_then(millis)
        .or(closed_at)
        .or_else(|| messages.iter().filter_map(|m| m["sentAt"].as_i64()).max());
    if rating.0.is_null() {
        match conv.get("rating") {
            Some(Value::Object(r)) => {
                rating = (
                    r.get("value").cloned().unwrap_or(Value::Null),
                    r.get("text").cloned().unwrap_or(Value::Null),
                )
            }
            Some(v @ Value::Number(_)) => {
                rating = (
                    v.clone(),
                    conv.get("rating_text").cloned().unwrap_or(Value::Null),
                )
            }
            _ => {}
        }
    }
    let words: usize = spoken
        .iter()
        .map(|m| {
            m["content"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .sum();
    let channel = json!({
        "id": inputs.conversation_id,
        "isChat": !offline,
        "isMissed": !offline && !answered,
        "isTriggered": messages.first().is_some_and(|m| !m["triggeredBy"].is_null()),
        "isOffline": offline,
        "isCompleted": end.is_some() && closed_at.is_some(),
        "isDropped": false,
        "duration": begin.zip(end).map(|(b, e)| ((e - b) as f64 / 1000.0).round() as i64),
        "avgResponse": (!delays.is_empty()).then(|| ((delays.iter().sum::<i64>() as f64) / delays.len() as f64).round() as i64),
        "firstResponse": delays.first(),
        "messagesCount": spoken.len(),
        "wordsCount": words,
        "rating": rating.0,
        "ratingDesc": rating.1,
    });
    let contact = Value::Object(contact);
    let pick = |c: &str, conv_field: &str| {
        contact
            .get(c)
            .and_then(text)
            .or_else(|| conv.get(conv_field).and_then(text))
    };
    let visitor = json!({
        "id": visitor_id,
        "name": pick("name", "contact_name"),
        "email": pick("email", "contact_email"),
        "note": contact.get("note").and_then(text),
        "phone": pick("phone", "contact_phone"),
        "group": conv.get("group").and_then(text),
        "ipAddress": conv.get("location_ip").and_then(text),
        "city": conv.get("location_city").and_then(text),
        "countryCode": conv.get("location_code").and_then(text),
        "country": conv.get("location_country").and_then(text),
        "userAgent": conv.get("user_agent").and_then(text),
        "platform": conv.get("platform").and_then(text),
        "referer": conv.get("referer").and_then(text),
        "variables": variables(conv.get("variables")),
    });
    // What could not be known, said in the ticket.
    let mut unknown: Vec<String> = Vec::new();
    let has_contact = conv.get("contact_id").and_then(id_of).is_some();
    match (&inputs.api, &api.contact) {
        (None, _) => {
            unknown.push(
                "messages not received as events (no Smartsupp API token is configured)".into(),
            );
            if has_contact && (visitor["name"].is_null() || visitor["email"].is_null()) {
                unknown.push("the contact's details (no Smartsupp API token is configured)".into());
            }
        }
        (Some(_), ContactLookup::NotFound) => {
            unknown.push("the contact's details (Smartsupp no longer knows the contact)".into())
        }
        _ => {}
    }
    if let Some(why) = &api.failed {
        unknown.push(format!("what Smartsupp's API would have added ({why})"));
    }
    if unnamed_agent {
        unknown.push("the names of some agents".into());
    }
    let mut api_parts: Vec<&str> = Vec::new();
    if api.conversation.is_some() {
        api_parts.push("conversation");
    }
    if api.messages.is_some() {
        api_parts.push("messages");
    }
    if matches!(api.contact, ContactLookup::Found(_)) {
        api_parts.push("contact");
    }
    if !api.agents.is_empty() {
        api_parts.push("agents");
    }
    json!({
        "accountId": inputs.account_id,
        "beginAt": begin,
        "endAt": end,
        "channel": channel,
        "visitor": visitor,
        "paths": pages,
        "messages": messages,
        "tags": conv.get("tags").cloned().unwrap_or(json!([])),
        "deskbridge": {
            "source": inputs.source.name(),
            "events": inputs.events.len(),
            "api": api_parts,
            "unknown": unknown,
        },
    })
}

/// Whether the events say the conversation is closed now (its latest open or close event,
/// by Smartsupp's time, closes it).
pub fn is_closed(events: &[Value]) -> bool {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some(
                    "conversation.opened"
                        | "conversation.closed"
                        | "conversation.closed_by_contact"
                )
            )
        })
        .max_by_key(|e| e.get("timestamp").and_then(millis).unwrap_or(i64::MIN))
        .is_some_and(|e| e["event"] != "conversation.opened")
}
