//! The destination kinds deskbridge knows, in one list ([`KINDS`]), and how a destination's
//! settings are read: its map is split into the keys every kind shares ([`Common`]: `when`,
//! `concurrency`, `rate_limit`, `breaker`) and the kind's own keys, which the kind types
//! itself. Every error names the dotted key, so that it can be placed on its line.
//!
//! Adding a destination kind written in Rust: a folder `src/destinations/<kind>/` with its
//! settings (a type implementing [`KindSettings`]), a unit type implementing [`Kind`], and one
//! line in [`KINDS`].
//!
//! A kind that is not in [`KINDS`] is looked up by [`external`], the extension point for
//! kinds that are not Rust code (a recipe found as a file at load time).

use super::{Destination, Shared};
use crate::config::{Common, DeliverySettings, DestinationSettings, Problems, RateLimit};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::any::Any;
use std::borrow::Cow;
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

/// Every destination kind written in Rust, in the order `unknown kind` errors list them.
pub const KINDS: &[&dyn Kind] = &[
    &super::webhook::WebhookKind,
    &super::file::FileKind,
    &super::zendesk::ZendeskKind,
    &super::hubspot::HubspotKind,
    &super::email::EmailKind,
];

/// The keys every kind shares; they are read into [`Common`], the rest belongs to the kind.
pub const SHARED_KEYS: &[&str] = &["kind", "when", "concurrency", "rate_limit", "breaker"];

/// A secret setting that may also be given as `<key>_file`: a path whose content, trimmed, is
/// the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    /// Dotted path under the destination, e.g. `api_token` or `auth.client_secret`.
    pub key: Cow<'static, str>,
    /// Whether the value is a list: each non-empty line of the file is one value.
    pub list: bool,
}

impl SecretKey {
    /// A secret holding one value.
    pub const fn one(key: &'static str) -> Self {
        Self {
            key: Cow::Borrowed(key),
            list: false,
        }
    }
    /// A secret holding a list (one value per line of the file).
    pub const fn list(key: &'static str) -> Self {
        Self {
            key: Cow::Borrowed(key),
            list: true,
        }
    }
}

/// What loading knows when it reads destinations: where templates (and recipes) live.
#[derive(Debug, Clone, Copy)]
pub struct LoadContext<'a> {
    /// `templates.dir` as configured (before typing), or its default.
    pub templates_dir: &'a Path,
}

/// A destination kind: its name, its secret keys and how its own keys are typed.
pub trait Kind: Sync {
    /// The value of `kind:`.
    fn name(&self) -> &str;
    /// Its secret keys; each may be given as `<key>_file` instead.
    fn secret_keys(&self) -> &[SecretKey];
    /// Types the kind's own keys (`own`: the destination's map without [`SHARED_KEYS`]).
    /// Problems are recorded under `at` (`destinations.<name>`); `None` when there were any.
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>>;
}

/// Gives `&dyn Any` of a settings value, to reach a kind's own type where one kind needs it
/// (`destinations test`).
pub trait AsAny {
    /// The value as `Any`.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What building a destination needs besides its settings.
pub struct BuildContext<'a> {
    /// Templates and the outbound HTTP client.
    pub shared: &'a Shared,
    /// `delivery:` (timeouts).
    pub delivery: &'a DeliverySettings,
}

/// The typed settings of one kind: their checks, their templates, and the destination they
/// build.
pub trait KindSettings: AsAny + Debug + Send + Sync {
    /// The value of `kind:`.
    fn kind(&self) -> &str;
    /// Records every problem of settings that typed well (e.g. keys that exclude each other)
    /// under `at` (`destinations.<name>`).
    fn validate(&self, name: &str, at: &str, out: &mut Problems);
    /// Every template file the destination may render, by the key that names it.
    fn templates(&self) -> Vec<(String, &str)>;
    /// Handlebars templates written in the configuration itself (not `when`), by their key
    /// under the destination, e.g. `subject` or `to[0]`.
    fn inline_templates(&self) -> Vec<(String, &str)>;
    /// The pacing of the destination's lane: `rate_limit`, or `None` for a destination that
    /// paces its own requests.
    fn lane_rate(&self, common: &Common) -> Option<RateLimit>;
    /// Builds the destination `name` (settings and templates were checked before).
    fn build(&self, name: &str, common: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination>;
}

/// The Rust kind called `name`, if there is one.
pub fn lookup(name: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Extension point for kinds that are not in [`KINDS`]: a kind defined outside Rust (a recipe
/// file under `templates.dir`, say) is resolved here. `None` means no such kind, which loading
/// reports as `unknown kind`, listing [`known_kinds`].
pub fn external(name: &str, cx: &LoadContext<'_>) -> Option<Box<dyn Kind>> {
    super::recipe::kind::RecipeKind::find(name, cx).map(|k| Box::new(k) as Box<dyn Kind>)
}

/// The kinds an `unknown kind` error lists: the Rust kinds and `recipe`.
pub fn known_kinds() -> Vec<String> {
    KINDS
        .iter()
        .map(|k| k.name().to_string())
        .chain(std::iter::once(
            super::recipe::kind::RECIPE_KIND.to_string(),
        ))
        .collect()
}

/// `` `a`, `b`, `c` ``.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads destination `name` from its map `value`: the kind, its secret files, the shared keys
/// and the kind's own keys. Problems are recorded in `out`; `None` when there were any.
pub fn parse(
    name: &str,
    value: Value,
    cx: &LoadContext<'_>,
    out: &mut Problems,
) -> Option<DestinationSettings> {
    let at = format!("destinations.{name}");
    let Value::Object(mut map) = value else {
        out.add(
            &at,
            format!(
                "invalid type: {}, expected a map with kind and the destination's settings",
                crate::smartsupp::type_name(&value)
            ),
        );
        return None;
    };
    let kind_name = match map.get("kind") {
        Some(Value::String(kind)) => kind.clone(),
        Some(other) => {
            out.add(
                &format!("{at}.kind"),
                format!(
                    "invalid type: {}, expected the name of a kind: one of {}",
                    crate::smartsupp::type_name(other),
                    quoted(&known_kinds())
                ),
            );
            return None;
        }
        None => {
            out.add(&at, "missing field `kind`");
            return None;
        }
    };
    let external_kind;
    let kind: &dyn Kind = match lookup(&kind_name) {
        Some(kind) => kind,
        None => match external(&kind_name, cx) {
            Some(kind) => {
                external_kind = kind;
                external_kind.as_ref()
            }
            None => {
                let recipes = super::recipe::kind::shipped(cx.templates_dir);
                out.add(
                    &format!("{at}.kind"),
                    format!(
                        "unknown kind `{kind_name}`, expected one of {}, or a recipe under {}/{}",
                        quoted(&known_kinds()),
                        cx.templates_dir.display(),
                        if recipes.is_empty() {
                            " (there is none)".to_string()
                        } else {
                            format!(": {}", quoted(&recipes))
                        }
                    ),
                );
                return None;
            }
        },
    };
    let before = out.len();
    crate::config::read_secret_files(&mut map, &at, kind.secret_keys(), out);
    if out.len() > before {
        return None;
    }
    let mut shared = Map::new();
    for key in SHARED_KEYS {
        if let Some(v) = map.shift_remove(*key) {
            if *key != "kind" {
                shared.insert((*key).to_string(), v);
            }
        }
    }
    let common = typed::<Common>(Value::Object(shared), &at, &[], out);
    let own = kind.parse(map, &at, out);
    Some(DestinationSettings {
        common: common?,
        own: own?,
    })
}

/// Types `own` as `T` for a Rust kind (see [`typed`]).
pub fn parse_own<T: DeserializeOwned + KindSettings + 'static>(
    own: Map<String, Value>,
    at: &str,
    out: &mut Problems,
) -> Option<Arc<dyn KindSettings>> {
    typed::<T>(Value::Object(own), at, SHARED_KEYS, out)
        .map(|settings| Arc::new(settings) as Arc<dyn KindSettings>)
}

/// Most keys taken out, one after the other, to find more problems of one destination.
const MAX_PROBLEMS_PER_DESTINATION: usize = 20;

/// Deserializes `value` as `T`, recording problems at their dotted keys under `at`. A key
/// that does not type is taken out and the rest is tried again, so that all such keys are
/// named at once; `None` when any did not type. `also_expected` are the shared keys, which an
/// `unknown field` error lists besides the kind's own.
pub fn typed<T: DeserializeOwned>(
    value: Value,
    at: &str,
    also_expected: &[&str],
    out: &mut Problems,
) -> Option<T> {
    let mut value = value;
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_PROBLEMS_PER_DESTINATION {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(settings) if removed.is_empty() => return Some(settings),
            Ok(_) => return None,
            Err(e) => e,
        };
        let mut message = error.inner().to_string();
        let mut path = error.path().to_string();
        if path == "." {
            path.clear();
        }
        // serde places an unknown field at its parent: name the field itself.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
        {
            if path.rsplit('.').next() != Some(field.as_str()) {
                path = if path.is_empty() {
                    field.clone()
                } else {
                    format!("{path}.{field}")
                };
            }
            if !path.contains('.') && !also_expected.is_empty() {
                message = unknown_field(&field, &message, also_expected);
            }
        }
        // Once a key was taken out, a missing field is most likely that key (misspelt, or
        // of the wrong type), which was named already.
        if !removed.is_empty() && message.starts_with("missing field `") {
            return None;
        }
        let key = match (at.is_empty(), path.is_empty()) {
            (true, true) => ".".to_string(),
            (true, false) => path.clone(),
            (false, true) => at.to_string(),
            (false, false) => format!("{at}.{path}"),
        };
        out.add(&key, message);
        // Take out the top-level key that failed, and look for further problems.
        let top = path
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_string();
        let Value::Object(map) = &mut value else {
            return None;
        };
        if top.is_empty() || map.shift_remove(&top).is_none() {
            return None;
        }
        removed.push(top);
    }
    None
}

/// serde's `unknown field` message, listing the shared keys too.
fn unknown_field(field: &str, message: &str, shared: &[&str]) -> String {
    let own: Vec<String> = match message.split_once(", expected one of ") {
        Some((_, list)) => list
            .split(", ")
            .map(|s| s.trim_matches('`').to_string())
            .collect(),
        None => match message.split_once(", expected `") {
            Some((_, one)) => vec![one.trim_end_matches('`').to_string()],
            None => Vec::new(),
        },
    };
    let all: Vec<String> = shared
        .iter()
        .filter(|k| **k != "kind")
        .map(|k| k.to_string())
        .chain(own)
        .collect();
    if all.is_empty() {
        return message.to_string();
    }
    format!("unknown field `{field}`, expected one of {}", quoted(&all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_at(text: &str, value: Value) -> (Option<DestinationSettings>, String) {
        let mut problems = Problems::new(text);
        let cx = LoadContext {
            templates_dir: Path::new("templates"),
        };
        let parsed = parse("d", value, &cx, &mut problems);
        let shown = match problems.finish(Path::new("t.yaml")) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        (parsed, shown)
    }

    #[test]
    fn every_kind_has_a_unique_name_and_is_found() {
        let names = known_kinds();
        for kind in KINDS {
            assert_eq!(lookup(kind.name()).map(|k| k.name()), Some(kind.name()));
        }
        for name in &names {
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
        assert_eq!(
            names,
            ["webhook", "file", "zendesk", "hubspot", "email", "recipe"]
        );
    }

    #[test]
    fn unknown_kinds_list_the_known_ones() {
        let (parsed, shown) = parse_at("", json!({"kind": "zendeks"}));
        assert!(parsed.is_none());
        assert_eq!(
            shown,
            "t.yaml: destinations.d.kind: unknown kind `zendeks`, expected one of `webhook`, `file`, `zendesk`, `hubspot`, `email`, `recipe`, or a recipe under templates/: `freshdesk`, `helpscout`, `pipedrive`, `slack`, `teams`"
        );
        let (_, shown) = parse_at("", json!({"url": "x"}));
        assert_eq!(shown, "t.yaml: destinations.d: missing field `kind`");
    }

    #[test]
    fn shared_and_own_keys_are_typed_apart_with_precise_keys() {
        let (parsed, shown) = parse_at(
            "",
            json!({"kind": "webhook", "url": "https://x.example", "when": "{{true}}", "concurrency": 2, "breaker": {"failures": 3}}),
        );
        assert_eq!(shown, "");
        let d = parsed.unwrap();
        assert_eq!(d.common.when.as_deref(), Some("{{true}}"));
        assert_eq!(d.common.concurrency, Some(2));
        assert_eq!(d.common.breaker.failures, 3);
        assert_eq!(d.kind(), "webhook");

        let (_, shown) = parse_at(
            "",
            json!({"kind": "webhook", "url": "https://x.example", "breaker": {"cool_dwn": "1s"}, "urll": 1}),
        );
        assert!(
            shown.contains("destinations.d.breaker.cool_dwn: unknown field `cool_dwn`"),
            "{shown}"
        );
        assert!(
            shown.contains("destinations.d.urll: unknown field `urll`, expected one of `when`, `concurrency`, `rate_limit`, `breaker`, `template`, `url`"),
            "{shown}"
        );
    }

    #[test]
    fn several_bad_keys_of_one_destination_are_named_together() {
        let (parsed, shown) = parse_at(
            "",
            json!({"kind": "zendesk", "subdomain": "acme", "time_zone": "Prague", "priority": {"chat": "normal", "missed": "critical", "offline": "low"}, "tagz": []}),
        );
        assert!(parsed.is_none());
        for expected in [
            "destinations.d.time_zone: unknown time zone \"Prague\"",
            "destinations.d.priority.missed: \"critical\" is not urgent, high, normal or low",
            "destinations.d.tagz: unknown field `tagz`",
        ] {
            assert!(shown.contains(expected), "{shown}\nexpected {expected}");
        }
    }
}
