//! Recipe destinations at load time (docs/RECIPES.md): a `kind` that is none of deskbridge's
//! own names a shipped recipe under the templates folder; each recipe file is read and
//! checked, and the destination's keys are typed by the recipe's settings.

use super::{ConfigError, DestinationSettings, Problems, Settings};
use crate::destinations::recipe::{format, settings};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kinds implemented in deskbridge itself.
pub const BUILT_IN_KINDS: &[&str] = &["webhook", "file", "zendesk", "hubspot", "email", "recipe"];

/// The file of the shipped recipe `kind` under the templates folder `dir`, if there is one.
fn shipped_file(dir: &Path, kind: &str) -> Option<PathBuf> {
    let plain = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    let file = dir.join(kind).join("recipe.yaml");
    (plain && file.is_file()).then_some(file)
}

/// The shipped recipes under `dir`, by name.
pub fn shipped(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("recipe.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Before typing: `kind: NAME` of a shipped recipe becomes `kind: recipe` with its file; any
/// other unknown kind is a problem naming the kinds there are.
pub fn name_shipped(tree: &mut Value, out: &mut Problems) {
    let dir = PathBuf::from(
        tree.pointer("/templates/dir")
            .and_then(Value::as_str)
            .unwrap_or("templates"),
    );
    let Some(Value::Object(destinations)) = tree.get_mut("destinations") else {
        return;
    };
    for (name, destination) in destinations.iter_mut() {
        let Some(map) = destination.as_object_mut() else {
            continue;
        };
        let Some(kind) = map.get("kind").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        if BUILT_IN_KINDS.contains(&kind.as_str()) {
            continue;
        }
        let at = format!("destinations.{name}");
        match shipped_file(&dir, &kind) {
            Some(file) => {
                if map.contains_key("recipe") {
                    out.add(
                        &format!("{at}.recipe"),
                        format!("only with kind: recipe (kind: {kind} is a shipped recipe)"),
                    );
                }
                map.insert("kind".into(), Value::String("recipe".into()));
                map.insert("recipe".into(), Value::String(file.display().to_string()));
            }
            None => {
                let recipes = shipped(&dir);
                out.add(
                    &format!("{at}.kind"),
                    format!(
                        "unknown kind {kind:?}: use one of {}, or a recipe under {}/ ({})",
                        BUILT_IN_KINDS.join(", "),
                        dir.display(),
                        if recipes.is_empty() {
                            "none there".to_string()
                        } else {
                            recipes.join(", ")
                        }
                    ),
                );
            }
        }
    }
}

/// After typing: reads each destination's recipe and types its keys. A broken recipe is an
/// error naming the recipe file; a key that does not fit the recipe names the configuration.
pub fn load(settings: &mut Settings, path: &Path, text: &str) -> Result<(), ConfigError> {
    let templates = PathBuf::from(&settings.templates.dir);
    let mut problems = Problems::new(text);
    for (name, destination) in settings.destinations.iter_mut() {
        let DestinationSettings::Recipe(r) = destination else {
            continue;
        };
        let recipe = format::load(Path::new(&r.recipe), &templates)?;
        r.resolved = settings::resolve(
            &recipe,
            &r.values,
            &format!("destinations.{name}"),
            &mut problems,
        );
        r.loaded = Arc::new(recipe);
    }
    problems.finish(path)
}
