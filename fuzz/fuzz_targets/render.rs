//! A conversation through every shipped template: for any body the hook accepts, each
//! destination kind renders its requests (first and later versions) without an error, and
//! every JSON body it would send parses. Each input is tried as a body, and as edits of the
//! documented example (any field replaced by a value of any type), which reaches the
//! templates' corners far sooner than byte mutations of JSON text.
#![no_main]

use deskbridge::app::{prepare, Prepared};
use deskbridge::config::from_text;
use deskbridge::destinations::preview;
use deskbridge::smartsupp::Identity;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::OnceLock;

/// One destination of each kind and mode, on the templates shipped in `templates/`.
const CONFIG: &str = r#"
server:
  hook_tokens: ["fuzz"]
templates:
  dir: "TEMPLATES"
destinations:
  webhook:
    kind: webhook
    url: "https://example.com/hook"
    signing_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
  file:
    kind: file
    dir: "/nonexistent/outbox"
  zendesk:
    kind: zendesk
    subdomain: "example"
    email: "agent@example.com"
    api_token: "token"
    time_zone: "Europe/Prague"
    tags: ["website"]
  zendesk_public:
    kind: zendesk
    subdomain: "example"
    email: "agent@example.com"
    api_token: "token"
    public: true
  zendesk_import:
    kind: zendesk
    subdomain: "example"
    email: "agent@example.com"
    api_token: "token"
    mode: import
  hubspot:
    kind: hubspot
    access_token: "token"
    time_zone: "America/New_York"
    create: [contact, ticket, note]
"#;

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates");
        let text = CONFIG.replace("TEMPLATES", templates);
        let path = Path::new("fuzz.yaml");
        let settings = from_text(path, &text, std::iter::empty()).expect("fuzz config is valid");
        prepare(settings, path, &text).expect("shipped templates compile")
    })
}

/// Bodies the edits start from.
const BASES: &[&str] = &[
    include_str!("../corpus/render/doc-example.json"),
    include_str!("../corpus/render/doc-example-2015-format.json"),
    include_str!("../corpus/render/offline.json"),
];

/// Strings that mean something to the templates, their helpers or their escaping.
const STRINGS: &[&str] = &[
    "",
    " ",
    "agent",
    "visitor",
    "system",
    "bot",
    "agent.join",
    "close.visitorClose",
    "agent:3",
    "visitor:abc",
    "a@b.cz",
    "Dusan Kmet",
    "<script>alert(1)</script>",
    "{{meta.key}}",
    "\"\\\n\r\t\u{0}\u{1b}\u{2028}",
    "😀 🇨🇿",
    "https://example.com/?a=1&b=<2>",
    "javascript:alert(1)",
    "1427470439703",
    "-1",
];

/// Field names of the hook, so that edits also add fields the templates read.
const FIELDS: &[&str] = &[
    "id",
    "name",
    "email",
    "content",
    "type",
    "from",
    "sentAt",
    "triggeredBy",
    "url",
    "title",
    "label",
    "value",
    "variables",
    "rating",
    "ratingDesc",
    "note",
    "group",
    "groupKey",
    "isMissed",
    "isOffline",
    "beginAt",
    "endAt",
    "duration",
    "messages",
    "paths",
];

/// A value of any type, small enough to keep inputs fast.
fn value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let choice = u.int_in_range(0..=if depth == 0 { 6 } else { 8 })?;
    Ok(match choice {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => Value::from(u.arbitrary::<f64>()?),
        5 => Value::from(*u.choose(STRINGS)?),
        6 => Value::from(u.arbitrary::<String>()?),
        7 => {
            let n = u.int_in_range(0..=3)?;
            (0..n)
                .map(|_| value(u, depth - 1))
                .collect::<Result<Vec<_>>>()?
                .into()
        }
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                map.insert(u.choose(FIELDS)?.to_string(), value(u, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// Replaces one node under `node` (or adds a field to an object on the way) with any value.
fn edit(u: &mut Unstructured, node: &mut Value) -> Result<()> {
    if u.ratio(1, 4)? {
        *node = value(u, 2)?;
        return Ok(());
    }
    match node {
        Value::Object(map) if !map.is_empty() => {
            if u.ratio(1, 8)? {
                let field = u.choose(FIELDS)?.to_string();
                map.insert(field, value(u, 2)?);
                return Ok(());
            }
            let i = u.choose_index(map.len())?;
            match map.values_mut().nth(i) {
                Some(child) => edit(u, child),
                None => Ok(()),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = u.choose_index(items.len())?;
            edit(u, &mut items[i])
        }
        _ => {
            *node = value(u, 2)?;
            Ok(())
        }
    }
}

/// A fixture with the edits `data` describes.
fn edited(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let base = *u.choose(BASES).ok()?;
    let mut body: Value = serde_json::from_str(base).ok()?;
    for _ in 0..u.int_in_range(1..=6).ok()? {
        if edit(&mut u, &mut body).is_err() {
            break;
        }
    }
    serde_json::to_vec(&body).ok()
}

/// Every destination renders `body` (when the hook would accept it) as a first and a later
/// version, and every JSON body it would send parses.
fn render_all(body: &[u8]) {
    let prepared = prepared();
    if Identity::read(body).is_err() {
        return;
    }
    for destination in &prepared.destinations {
        let later = destination.sample_previous();
        for previous in [None, later] {
            let requests = match preview(destination.as_ref(), body, previous.as_deref()) {
                Ok(requests) => requests,
                Err(e) => panic!(
                    "{} (previous {previous:?}): {e:#}\nbody: {}",
                    destination.name(),
                    String::from_utf8_lossy(body)
                ),
            };
            for request in requests {
                let json = request.headers.iter().any(|(name, value, _)| {
                    name.eq_ignore_ascii_case("content-type") && value.contains("json")
                });
                if json || request.method == "WRITE" {
                    if let Err(e) = serde_json::from_str::<Value>(&request.body) {
                        panic!(
                            "{} sends invalid JSON ({e}): {}",
                            destination.name(),
                            request.body
                        );
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    render_all(data);
    if let Some(body) = edited(data) {
        render_all(&body);
    }
});
