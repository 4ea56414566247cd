//! Recipes as destination kinds: `kind: recipe` with `recipe: PATH`, and each shipped recipe
//! by its name (`kind: freshdesk` is `<templates.dir>/freshdesk/recipe.yaml`). The recipe file
//! is read and checked when the configuration is loaded; the destination's keys are typed by
//! the settings it declares.

use super::check;
use super::format::Recipe;
use super::settings::{resolve, Resolved};
use super::RecipeDestination;
use crate::config::{Common, Problems, RateLimit};
use crate::destinations::registry::{BuildContext, Kind, KindSettings, LoadContext, SecretKey};
use crate::destinations::Destination;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `kind:` of a recipe named by its file.
pub const RECIPE_KIND: &str = "recipe";

/// A recipe kind: `recipe` (the file given by the destination) or a shipped recipe's name.
pub struct RecipeKind {
    name: String,
    /// The shipped recipe's file; `None` for `kind: recipe`.
    file: Option<PathBuf>,
    templates: PathBuf,
}

/// The file of the shipped recipe `name` under the templates folder, if there is one.
fn shipped_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    let file = dir.join(name).join("recipe.yaml");
    (plain && file.is_file()).then_some(file)
}

/// The shipped recipes under the templates folder `dir`, by name.
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

impl RecipeKind {
    /// The recipe kind called `name`: `recipe`, or a shipped recipe under the templates folder.
    pub fn find(name: &str, cx: &LoadContext<'_>) -> Option<Self> {
        let file = if name == RECIPE_KIND {
            None
        } else {
            Some(shipped_file(cx.templates_dir, name)?)
        };
        Some(Self {
            name: name.to_string(),
            file,
            templates: cx.templates_dir.to_path_buf(),
        })
    }
}

impl Kind for RecipeKind {
    fn name(&self) -> &str {
        &self.name
    }

    fn secret_keys(&self) -> &[SecretKey] {
        // A recipe's secrets are known once its file is read: `resolve` reads their files.
        &[]
    }

    fn parse(
        &self,
        mut own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        let given = own.shift_remove("recipe");
        let (file, key) = match (&self.file, given) {
            (Some(file), None) => (file.clone(), format!("{at}.kind")),
            (Some(_), Some(_)) => {
                out.add(
                    &format!("{at}.recipe"),
                    format!(
                        "only with kind: recipe (kind: {} is a shipped recipe)",
                        self.name
                    ),
                );
                return None;
            }
            (None, Some(Value::String(path))) if !path.trim().is_empty() => {
                (PathBuf::from(path), format!("{at}.recipe"))
            }
            (None, Some(_)) => {
                out.add(&format!("{at}.recipe"), "must be the path of a recipe file");
                return None;
            }
            (None, None) => {
                out.add(
                    at,
                    "missing field `recipe` (the recipe file, docs/RECIPES.md)",
                );
                return None;
            }
        };
        let recipe = match check::load(&file, &self.templates) {
            Ok(recipe) => recipe,
            Err(e) => {
                out.add(&key, format!("the recipe is not usable:\n{e}"));
                return None;
            }
        };
        let before = out.len();
        let resolved = resolve(&recipe, &own, at, out);
        if out.len() > before {
            return None;
        }
        Some(Arc::new(RecipeSettings {
            kind: self.name.clone(),
            loaded: Arc::new(recipe),
            resolved,
        }))
    }
}

/// A recipe destination's settings: the checked recipe and its typed keys.
#[derive(Debug, Clone, Default)]
pub struct RecipeSettings {
    /// `recipe`, or the shipped recipe's name.
    pub kind: String,
    /// The recipe, read and checked.
    pub loaded: Arc<Recipe>,
    /// The destination's keys typed by the recipe's settings.
    pub resolved: Resolved,
}

impl KindSettings for RecipeSettings {
    fn kind(&self) -> &str {
        &self.kind
    }

    fn validate(&self, _name: &str, _at: &str, _out: &mut Problems) {
        // Checked against the recipe when it was read.
    }

    fn templates(&self) -> Vec<(String, &str)> {
        self.loaded
            .body_templates()
            .into_iter()
            .map(|(key, template)| (format!("recipe.{key}"), template))
            .collect()
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        self.loaded
            .inline_templates()
            .into_iter()
            .map(|(key, source)| (format!("recipe.{key}"), source))
            .collect()
    }

    fn lane_rate(&self, common: &Common) -> Option<RateLimit> {
        common.rate_limit
    }

    fn build(&self, name: &str, _common: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        Arc::new(RecipeDestination::new(name, self, cx.shared.clone()))
    }
}
