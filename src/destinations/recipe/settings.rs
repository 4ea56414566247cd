//! A recipe destination's keys checked against the recipe's declared settings and typed:
//! defaults filled in, secrets (also `<key>_file`) kept apart from what templates may show.

use super::format::{Recipe, SettingSpec, SettingType};
use crate::config::Problems;
use serde_json::{Map, Value};
use std::fmt;

/// A destination's recipe settings, typed.
#[derive(Clone, Default)]
pub struct Resolved {
    /// What templates see as `destination.*`.
    pub public: Map<String, Value>,
    /// What `url`, `headers` and `auth` see as `secret.*`.
    pub secret: Map<String, Value>,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("public", &self.public)
            .field("secret", &self.secret.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Resolved {
    /// Every secret value, for masking.
    pub fn secret_values(&self) -> Vec<String> {
        self.secret
            .values()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Types `values` (the destination's keys besides the shared ones) by `recipe`; problems are
/// recorded at `at.<key>` (`at` is `destinations.<name>`).
pub fn resolve(
    recipe: &Recipe,
    values: &Map<String, Value>,
    at: &str,
    out: &mut Problems,
) -> Resolved {
    let mut given = values.clone();
    // `<secret>_file`: the secret read from a file (keys the loader knows are read already).
    for name in recipe
        .settings
        .iter()
        .filter(|(_, s)| s.secret)
        .map(|(n, _)| n)
    {
        let file_key = format!("{name}_file");
        let Some(file) = given.shift_remove(&file_key) else {
            continue;
        };
        let key = format!("{at}.{file_key}");
        if given.get(name).is_some_and(|v| !v.is_null()) {
            out.add(&key, format!("give either {name} or {file_key}, not both"));
            continue;
        }
        let Some(path) = file.as_str() else {
            out.add(&key, "must be a file path");
            continue;
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                given.insert(name.clone(), Value::String(text.trim().to_string()));
            }
            Err(e) => out.add(&key, format!("cannot read secret file {path}: {e}")),
        }
    }
    for key in given.keys() {
        if !recipe.settings.contains_key(key) {
            let known: Vec<&str> = recipe.settings.keys().map(String::as_str).collect();
            out.add(
                &format!("{at}.{key}"),
                format!(
                    "unknown key for the {} recipe (it takes: {})",
                    recipe.name,
                    known.join(", ")
                ),
            );
        }
    }
    let mut typed = Map::new();
    for (name, spec) in &recipe.settings {
        let key = format!("{at}.{name}");
        let value = match given.get(name) {
            Some(v) if !v.is_null() => v.clone(),
            _ => match &spec.default {
                Some(default) => default.clone(),
                None if spec.is_required() => {
                    out.add(
                        &key,
                        format!("missing: the {} recipe needs it", recipe.name),
                    );
                    continue;
                }
                None => Value::Null,
            },
        };
        if value.is_null() {
            typed.insert(name.clone(), value);
            continue;
        }
        match typed_value(spec, value) {
            Ok(v) => {
                typed.insert(name.clone(), v);
            }
            Err(message) => out.add(&key, message),
        }
    }
    // String defaults made of other settings (`https://{{domain}}.freshdesk.com`).
    for (name, spec) in &recipe.settings {
        let given_here = given.get(name).is_some_and(|v| !v.is_null());
        let Some(Value::String(default)) = spec.default.as_ref().filter(|_| !given_here) else {
            continue;
        };
        if !default.contains("{{") {
            continue;
        }
        match fill(default, &typed) {
            Ok(text) => match typed_value(spec, Value::String(text)) {
                Ok(v) => {
                    typed.insert(name.clone(), v);
                }
                Err(message) => out.add(&format!("{at}.{name}"), message),
            },
            Err(missing) => out.add(
                &format!("{at}.{name}"),
                format!("missing: set {name}, or {missing} from which it is made"),
            ),
        }
    }
    let mut resolved = Resolved::default();
    for (name, value) in typed {
        let secret = recipe.settings.get(&name).is_some_and(|s| s.secret);
        if secret {
            resolved.secret.insert(name, value);
        } else {
            resolved.public.insert(name, value);
        }
    }
    resolved
}

/// `template` with each `{{name}}` replaced by that setting; `Err` names a missing one.
fn fill(template: &str, settings: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        let name = after[..end].trim();
        match settings.get(name) {
            Some(Value::String(s)) if !s.is_empty() => out.push_str(s),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            _ => return Err(name.to_string()),
        }
        rest = after.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// `value` as `spec`'s type says, or what is wrong with it.
fn typed_value(spec: &SettingSpec, value: Value) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match spec.kind {
        SettingType::String => text(&value)
            .map(Value::String)
            .ok_or_else(|| "must be text".into()),
        SettingType::Url => {
            let s = text(&value).ok_or("must be a URL")?;
            match reqwest::Url::parse(&s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
                    Ok(Value::String(s.trim_end_matches('/').to_string()))
                }
                _ => Err(format!(
                    "{:?} is not an absolute http or https URL",
                    crate::redact::url(&s)
                )),
            }
        }
        SettingType::Integer => match &value {
            Value::Number(n) if n.is_i64() => Ok(value),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{s:?} is not a whole number")),
            _ => Err("must be a whole number".into()),
        },
        SettingType::Boolean => match &value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
            _ => Err("must be true or false".into()),
        },
        SettingType::TimeZone => {
            let s = text(&value).ok_or("must be a time zone name")?;
            s.parse::<chrono_tz::Tz>()
                .map(|_| Value::String(s.clone()))
                .map_err(|_| format!("{s:?} is not an IANA time zone such as Europe/Prague or UTC"))
        }
        SettingType::PerKind => {
            let Value::Object(map) = &value else {
                return Err("must give chat, missed and offline, e.g. { chat: normal, missed: high, offline: normal }".into());
            };
            let mut out = Map::new();
            for kind in ["chat", "missed", "offline"] {
                match map.get(kind) {
                    Some(v) if !v.is_null() && !v.is_object() && !v.is_array() => {
                        out.insert(kind.into(), v.clone());
                    }
                    _ => return Err(format!("{kind} is missing: give chat, missed and offline")),
                }
            }
            if let Some(extra) = map.keys().find(|k| !out.contains_key(*k)) {
                return Err(format!(
                    "{extra:?} is not a conversation kind (chat, missed, offline)"
                ));
            }
            Ok(Value::Object(out))
        }
        SettingType::List => match value {
            Value::Array(items) => items
                .iter()
                .map(|i| text(i).map(Value::String))
                .collect::<Option<Vec<_>>>()
                .map(Value::Array)
                .ok_or_else(|| "must be a list of text".into()),
            Value::String(s) => Ok(Value::Array(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.into()))
                    .collect(),
            )),
            _ => Err("must be a list".into()),
        },
        SettingType::Enum => {
            let s = text(&value).ok_or("must be one of its values")?;
            if spec.values.contains(&s) {
                Ok(Value::String(s))
            } else {
                Err(format!("{s:?} is not one of {}", spec.values.join(", ")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(settings: &str) -> Recipe {
        let text = format!("settings:\n{settings}\ncreate:\n  - id: a\n    url: http://x\n");
        let tree = crate::config::parse_yaml(&text).unwrap();
        serde_json::from_value(tree).unwrap()
    }

    fn run(recipe: &Recipe, values: Value) -> Result<Resolved, String> {
        let mut problems = Problems::new("");
        let resolved = resolve(
            recipe,
            values.as_object().unwrap(),
            "destinations.d",
            &mut problems,
        );
        problems
            .finish(std::path::Path::new("c.yaml"))
            .map(|()| resolved)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_fill_in_and_may_be_made_of_other_settings() {
        let r = recipe(
            "  domain: { type: string, required: false }\n  base_url: { type: url, default: \"https://{{domain}}.example.com\" }\n  key: { type: string, secret: true }\n",
        );
        let ok = run(&r, serde_json::json!({"domain": "acme", "key": "k"})).unwrap();
        assert_eq!(ok.public["base_url"], "https://acme.example.com");
        assert_eq!(ok.secret["key"], "k");
        assert!(!ok.public.contains_key("key"));
        let err = run(&r, serde_json::json!({"key": "k"})).unwrap_err();
        assert!(
            err.contains("destinations.d.base_url: missing: set base_url, or domain"),
            "{err}"
        );
    }

    #[test]
    fn types_unknown_keys_and_missing_keys_are_reported() {
        let r = recipe(
            "  n: { type: integer }\n  z: { type: time_zone, default: UTC }\n  p: { type: per_kind, default: { chat: 1, missed: 2, offline: 3 } }\n  e: { type: enum, values: [a, b], default: a }\n",
        );
        let err = run(
            &r,
            serde_json::json!({"n": "x", "z": "Mars/Base", "e": "c", "q": 1}),
        )
        .unwrap_err();
        for wanted in [
            "d.n: \"x\" is not a whole number",
            "d.z: \"Mars/Base\"",
            "d.e: \"c\" is not one of a, b",
            "d.q: unknown key",
        ] {
            assert!(err.contains(wanted), "{wanted} in {err}");
        }
        let err = run(&r, serde_json::json!({})).unwrap_err();
        assert!(err.contains("d.n: missing"), "{err}");
        let ok = run(&r, serde_json::json!({"n": 3})).unwrap();
        assert_eq!(ok.public["p"]["missed"], 2);
    }
}
