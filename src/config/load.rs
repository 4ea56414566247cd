//! Loading: file → overrides from the environment → `${VAR}` expansion → `x_file` secrets →
//! typed settings → validation. Every error names the file, the line where known, and the key.

use super::problems::{ConfigError, Problems};
use super::Settings;
use crate::destinations::registry::{self, LoadContext, SecretKey};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use std::path::Path;

/// Secret keys outside `destinations` that may also be given as `<key>_file`; each
/// destination kind names its own ([`crate::destinations::registry::Kind::secret_keys`]).
const SECRET_KEYS: &[(&str, SecretKey)] = &[
    ("server", SecretKey::list("hook_tokens")),
    ("server", SecretKey::one("admin_token")),
    ("smartsupp", SecretKey::list("webhook_secrets")),
    ("smartsupp", SecretKey::one("api_token")),
];

/// Prefix of environment overrides (`DESKBRIDGE_SECTION__KEY`).
const ENV_PREFIX: &str = "DESKBRIDGE_";

/// Reads, layers and validates the configuration at `path`.
pub fn load(path: &Path) -> Result<(Settings, String), ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read the configuration: {e}")))?;
    let settings = from_text(path, &text, std::env::vars())?;
    Ok((settings, text))
}

/// Layers, types and validates the YAML `text` of a configuration with the environment
/// `env`; `path` only names the file in errors (and `x_file` secrets are read from disk).
/// Problems of typing and of validation are reported together: a destination whose keys do
/// not type is left out of validation, the rest is checked.
pub fn from_text(
    path: &Path,
    text: &str,
    env: impl Iterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let tree = super::yaml::parse(text).map_err(|e| ConfigError::file(path, e))?;
    let mut problems = Problems::new(text);
    let settings = settings_from_tree(path, text, tree, env, &mut problems)?;
    let Some(mut settings) = settings else {
        problems.finish(path)?;
        return Err(ConfigError::file(path, "the configuration cannot be read"));
    };
    // An empty admin token (say `${DESKBRIDGE_ADMIN_TOKEN:-}` with the variable unset) turns
    // the dashboard off, as leaving the key out does.
    if settings
        .server
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        settings.server.admin_token = None;
    }
    super::validate::validate(&settings, &mut problems);
    problems.finish(path)?;
    Ok(settings)
}

/// Layers environment overrides, expands variables, reads secret files and types the result:
/// the sections, then each destination by its kind. Problems of variables and secret files
/// end loading at once; problems of typing are recorded in `out`, and the sections that typed
/// are returned with every destination that typed (`None` when the sections did not).
pub fn settings_from_tree(
    path: &Path,
    text: &str,
    mut tree: Value,
    env: impl Iterator<Item = (String, String)>,
    out: &mut Problems,
) -> Result<Option<Settings>, ConfigError> {
    let mut problems = Problems::new(text);
    let env: Vec<(String, String)> = env.collect();
    apply_env_overrides(&mut tree, &env);
    expand_variables(&mut tree, "", &env, &mut problems);
    if let Value::Object(root) = &mut tree {
        for (section, key) in SECRET_KEYS {
            if let Some(Value::Object(map)) = root.get_mut(*section) {
                read_secret_files(map, section, std::slice::from_ref(key), &mut problems);
            }
        }
    }
    problems.finish(path)?;
    let destinations = match &mut tree {
        Value::Object(root) => root.shift_remove("destinations"),
        _ => None,
    };
    let settings = registry::typed::<Settings>(tree, "", &[], out);
    let destinations = destinations_from(destinations, settings.as_ref(), out);
    Ok(settings.map(|mut settings| {
        settings.destinations = destinations;
        settings
    }))
}

/// Reads the `destinations` map, each destination by its kind.
fn destinations_from(
    tree: Option<Value>,
    settings: Option<&Settings>,
    out: &mut Problems,
) -> IndexMap<String, super::DestinationSettings> {
    let mut found = IndexMap::new();
    let map = match tree {
        None | Some(Value::Null) => return found,
        Some(Value::Object(map)) => map,
        Some(other) => {
            out.add(
                "destinations",
                format!(
                    "invalid type: {}, expected a map of destinations by name",
                    crate::smartsupp::type_name(&other)
                ),
            );
            return found;
        }
    };
    let default_dir = super::TemplateSettings::default().dir;
    let dir = settings.map_or(default_dir.as_str(), |s| s.templates.dir.as_str());
    let cx = LoadContext {
        templates_dir: Path::new(dir),
    };
    for (name, value) in map {
        if let Some(destination) = registry::parse(&name, value, &cx, out) {
            found.insert(name, destination);
        }
    }
    found
}

/// `DESKBRIDGE_A__B__C=v` sets `a.b.c` (keys matched without regard to case). Variables
/// without `__` (such as `DESKBRIDGE_CONFIG`) are not overrides.
fn apply_env_overrides(tree: &mut Value, env: &[(String, String)]) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        set_path(tree, &path, scalar(value));
    }
}

fn set_path(tree: &mut Value, path: &[String], value: Value) {
    let mut node = tree;
    for (i, part) in path.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return;
        };
        let key = map
            .keys()
            .find(|k| k.eq_ignore_ascii_case(part))
            .cloned()
            .unwrap_or_else(|| part.clone());
        if i + 1 == path.len() {
            map.insert(key, value);
            return;
        }
        node = map.entry(key).or_insert(Value::Null);
    }
}

/// An environment value typed as YAML would type it: integers and booleans, else a string.
fn scalar(text: &str) -> Value {
    if let Ok(n) = text.parse::<i64>() {
        return Value::from(n);
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn expand_variables(node: &mut Value, at: &str, env: &[(String, String)], out: &mut Problems) {
    match node {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(message) => out.add(at, message),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_variables(item, &format!("{at}[{i}]"), env, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                expand_variables(v, &join(at, k), env, out);
            }
        }
        _ => {}
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$${` writes a literal `${`.
pub fn expand(text: &str, env: &[(String, String)]) -> Result<String, String> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (lookup(name), default) {
            (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(v),
            (_, Some(d)) => out.push_str(d),
            (_, None) => {
                return Err(format!(
                    "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces each `<key>_file` of `keys` (dotted paths under `map`, which stands at `at`) by
/// the content of the file it names: the trimmed text, or one value per non-empty line for a
/// list.
pub fn read_secret_files(
    map: &mut Map<String, Value>,
    at: &str,
    keys: &[SecretKey],
    out: &mut Problems,
) {
    for secret in keys {
        let (parents, stem) = match secret.key.rsplit_once('.') {
            Some((parents, stem)) => (Some(parents), stem),
            None => (None, secret.key.as_ref()),
        };
        let mut place = at.to_string();
        let mut node = Some(&mut *map);
        for part in parents.into_iter().flat_map(|p| p.split('.')) {
            node = match node.and_then(|n| n.get_mut(part)) {
                Some(Value::Object(inner)) => Some(inner),
                _ => None,
            };
            place = join(&place, part);
        }
        if let Some(node) = node {
            read_secret_file(node, &place, stem, secret.list, out);
        }
    }
}

/// Reads `<stem>_file` of `map` (at `at`) into `stem`.
fn read_secret_file(
    map: &mut Map<String, Value>,
    at: &str,
    stem: &str,
    list: bool,
    out: &mut Problems,
) {
    let key = format!("{stem}_file");
    let Some(value) = map.shift_remove(&key) else {
        return;
    };
    let Value::String(secret_path) = value else {
        out.add(&join(at, &key), "must be a file path");
        return;
    };
    if map.get(stem).is_some_and(|v| !v.is_null()) {
        out.add(
            &join(at, &key),
            format!("give either {stem} or {key}, not both"),
        );
        return;
    }
    let resolved = std::path::PathBuf::from(&secret_path);
    match std::fs::read_to_string(&resolved) {
        Ok(content) if list => {
            let values = content
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Value::String(l.to_string()))
                .collect();
            map.insert(stem.to_string(), Value::Array(values));
        }
        Ok(content) => {
            map.insert(stem.to_string(), Value::String(content.trim().to_string()));
        }
        Err(e) => out.add(
            &join(at, &key),
            format!("cannot read secret file {}: {e}", resolved.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_uses_values_defaults_and_names_missing_variables() {
        let e = env(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(expand("x${A}y", &e).unwrap(), "x1y");
        assert_eq!(expand("${B:-two}", &e).unwrap(), "two");
        assert_eq!(expand("${EMPTY:-d}", &e).unwrap(), "d");
        assert_eq!(expand("$${A}", &e).unwrap(), "${A}");
        let err = expand("${MISSING}", &e).unwrap_err();
        assert!(err.contains("MISSING"), "{err}");
        assert!(expand("${A", &e).is_err());
    }

    #[test]
    fn env_overrides_set_nested_keys_case_insensitively() {
        let mut tree = serde_json::json!({"destinations": {"HelpDesk": {"url": "a"}}});
        apply_env_overrides(
            &mut tree,
            &env(&[
                ("DESKBRIDGE_DESTINATIONS__HELPDESK__URL", "b"),
                ("DESKBRIDGE_DELIVERY__WORKERS", "3"),
                ("DESKBRIDGE_CONFIG", "ignored"),
            ]),
        );
        assert_eq!(tree["destinations"]["HelpDesk"]["url"], "b");
        assert_eq!(tree["delivery"]["workers"], 3);
        assert!(tree.get("config").is_none());
    }
}
