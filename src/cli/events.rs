//! Files given to `render` and `check`: a hook body, or a sequence of Webhooks API events
//! (NDJSON) assembled per conversation as the server would, without the REST API.

use crate::smartsupp::events::{assemble, is_closed, Envelope, Inputs, Source};
use anyhow::Context as _;
use indexmap::IndexMap;
use serde_json::Value;
use std::path::Path;

/// The conversation bodies in `file`, each with a label for messages: the file itself when it
/// is one JSON object without `event`, else every conversation its events close.
pub fn bodies(file: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let raw = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let one: Option<Value> = serde_json::from_slice(&raw).ok();
    if one.as_ref().is_some_and(|v| v.get("event").is_none()) {
        return Ok(vec![("the file".into(), raw)]);
    }
    let text =
        String::from_utf8(raw).with_context(|| format!("{} is not UTF-8", file.display()))?;
    let mut groups: IndexMap<(String, String), Vec<Value>> = IndexMap::new();
    let mut contacts: Vec<(String, Value)> = Vec::new();
    let lines: Vec<(usize, &str)> = match one {
        // One event, possibly pretty-printed.
        Some(_) => vec![(1, text.as_str())],
        None => text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty())
            .collect(),
    };
    for (line, body) in lines {
        let event: Value = serde_json::from_str(body)
            .with_context(|| format!("{} line {line}: not JSON", file.display()))?;
        let envelope =
            Envelope::of(&event).with_context(|| format!("{} line {line}", file.display()))?;
        match envelope.conversation_id {
            Some(id) => groups
                .entry((envelope.account_id, id))
                .or_default()
                .push(event),
            None => {
                if let Some(contact) = envelope.contact_id {
                    contacts.push((format!("{}-{contact}", envelope.account_id), event));
                }
            }
        }
    }
    let mut out = Vec::new();
    for ((account, id), mut events) in groups {
        let contact = events
            .iter()
            .find_map(|e| Envelope::of(e).ok().and_then(|e| e.contact_id))
            .map(|c| format!("{account}-{c}"));
        if let Some(contact) = contact {
            events.extend(
                contacts
                    .iter()
                    .filter(|(k, _)| *k == contact)
                    .map(|(_, e)| e.clone()),
            );
        }
        if !is_closed(&events) {
            eprintln!("note: conversation {account}-{id} is not closed by these events; it would wait for its close");
            continue;
        }
        let body = assemble(&Inputs {
            account_id: account.clone(),
            conversation_id: id.clone(),
            events,
            api: None,
            source: Source::Events,
        });
        out.push((
            format!("conversation {account}-{id}"),
            serde_json::to_vec(&body)?,
        ));
    }
    if out.is_empty() {
        anyhow::bail!(
            "{}: no closed conversation among these events",
            file.display()
        );
    }
    Ok(out)
}
