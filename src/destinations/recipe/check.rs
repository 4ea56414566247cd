//! Reading a recipe file and the checks that need the whole recipe (unique step ids, captures
//! defined before use, templates that compile, secrets kept out of bodies and links). Every
//! problem names the recipe file, the line and the key.

use super::format::{Capture, Outcome, Recipe, RequestSpec, SettingType};
use crate::config::{ConfigError, Problems};
use serde_json::Value;
use std::path::Path;

/// Reads and checks the recipe at `path`; `templates` is the template folder, whose body
/// templates are read to see which captures they use.
pub fn load(path: &Path, templates: &Path) -> Result<Recipe, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::file(path, format!("cannot read the recipe: {e}")))?;
    let tree = crate::config::parse_yaml(&text).map_err(|e| ConfigError::file(path, e))?;
    let mut recipe: Recipe = serde_path_to_error::deserialize(tree).map_err(|e| {
        let mut problems = Problems::new(&text);
        let (key, message) = typing_problem(&e);
        problems.add(&key, message);
        problems.finish(path).expect_err("one problem was added")
    })?;
    if recipe.name.is_empty() {
        recipe.name = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "recipe".into());
    }
    let mut problems = Problems::new(&text);
    check(&recipe, templates, &mut problems);
    problems.finish(path)?;
    Ok(recipe)
}

/// The dotted key and message of a typing error; an unknown field is named itself (serde
/// places it at its parent).
fn typing_problem(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let message = e.inner().to_string();
    let mut key = e.path().to_string();
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if key == "." {
            key = field.to_string();
        } else if key.rsplit('.').next() != Some(field) {
            key = format!("{key}.{field}");
        }
    }
    (key, message)
}

/// Names that templates use after `prefix.` (`captures.ticket_id` → `ticket_id`).
fn used_names(source: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    let needle = format!("{prefix}.");
    while let Some(at) = rest.find(&needle) {
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        rest = &rest[at + needle.len()..];
        if !boundary {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

fn check_capture(at: &str, capture: &Capture, out: &mut Problems) {
    let given = [
        capture.json.is_some(),
        capture.header.is_some(),
        capture.regex.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        out.add(at, "give exactly one of json, header or regex");
    }
    if let Some(pointer) = &capture.json {
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            out.add(
                &format!("{at}.json"),
                format!("{pointer:?} is not a JSON pointer (write e.g. /id or /data/0/id)"),
            );
        }
    }
    if let Some(pattern) = &capture.regex {
        match regex::Regex::new(pattern) {
            Ok(re) if re.captures_len() < 2 => out.add(
                &format!("{at}.regex"),
                "needs a group in parentheses: its text is the value",
            ),
            Ok(_) => {}
            Err(e) => out.add(
                &format!("{at}.regex"),
                format!("not a regular expression: {e}"),
            ),
        }
    }
    if let Some(from) = &capture.from {
        if capture.regex.is_none() {
            out.add(&format!("{at}.from"), "only with regex");
        }
        if from != "body" && from.strip_prefix("header:").is_none_or(str::is_empty) {
            out.add(
                &format!("{at}.from"),
                format!("{from:?}: write body or header:<name>"),
            );
        }
    }
}

fn compile(at: &str, source: &str, out: &mut Problems) {
    if let Err(e) = handlebars::Template::compile(source) {
        out.add(at, format!("does not compile: {e}"));
    }
}

/// The checks that need the whole recipe.
fn check(recipe: &Recipe, templates: &Path, out: &mut Problems) {
    let setting_names: Vec<&str> = recipe.settings.keys().map(String::as_str).collect();
    for (name, spec) in &recipe.settings {
        let at = format!("settings.{name}");
        if name == "recipe"
            || name == "kind"
            || crate::destinations::registry::SHARED_KEYS.contains(&name.as_str())
        {
            out.add(
                &at,
                format!("{name:?} is a key every destination has; choose another name"),
            );
        }
        if spec.kind == SettingType::Enum && spec.values.is_empty() {
            out.add(&format!("{at}.values"), "an enum needs its values");
        }
        if spec.kind != SettingType::Enum && !spec.values.is_empty() {
            out.add(&format!("{at}.values"), "only with type: enum");
        }
        if spec.secret && spec.default.is_some() {
            out.add(&format!("{at}.default"), "a secret has no default");
        }
        if let Some(Value::String(default)) = &spec.default {
            for part in default.split("{{").skip(1) {
                let other = part.split("}}").next().unwrap_or_default().trim();
                if !setting_names.contains(&other) {
                    out.add(
                        &format!("{at}.default"),
                        format!("uses {{{{{other}}}}}, which is not a setting of this recipe"),
                    );
                }
            }
        }
    }
    if let Some(auth) = &recipe.auth {
        for (key, source) in auth.templates() {
            compile(&format!("auth.{key}"), source, out);
        }
    }
    if recipe.create.is_empty() {
        out.add("create", "needs at least one step");
    }
    let mut created: Vec<String> = Vec::new();
    for (name, steps) in [("create", &recipe.create), ("update", &recipe.update)] {
        let mut ids: Vec<&str> = Vec::new();
        let mut captured: Vec<String> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let at = format!("{name}[{i}]");
            if step.id.is_empty()
                || !step
                    .id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                out.add(
                    &format!("{at}.id"),
                    format!("{:?}: use a-z, 0-9 and _", step.id),
                );
            }
            if ids.contains(&step.id.as_str()) {
                out.add(
                    &format!("{at}.id"),
                    format!("{:?} is used by an earlier step", step.id),
                );
            }
            ids.push(&step.id);
            let requests: Vec<(String, &RequestSpec)> = step
                .find
                .iter()
                .map(|f| (format!("{at}.find"), f))
                .chain(std::iter::once((at.clone(), &step.request)))
                .collect();
            // What this step's templates may use: earlier steps' captures, then its find's.
            let mut known = captured.clone();
            for (prefix, request) in &requests {
                if reqwest::Method::from_bytes(request.method.as_bytes()).is_err() {
                    out.add(
                        &format!("{prefix}.method"),
                        format!("{:?} is not an HTTP method", request.method),
                    );
                }
                let mut sources: Vec<(String, String)> =
                    vec![(format!("{prefix}.url"), request.url.clone())];
                for (header, value) in &request.headers {
                    sources.push((format!("{prefix}.headers.{header}"), value.clone()));
                }
                if let Some(body) = &request.body {
                    // A missing body template is reported with the configuration's templates.
                    if let Ok(text) = std::fs::read_to_string(templates.join(body)) {
                        sources.push((format!("{prefix}.body"), text));
                    }
                }
                if prefix == &at {
                    if let Some(when) = &step.when {
                        sources.push((format!("{at}.when"), when.clone()));
                    }
                }
                for (key, source) in &sources {
                    if !key.ends_with(".body") {
                        compile(key, source, out);
                    }
                    for used in used_names(source, "captures") {
                        if !known.contains(&used) {
                            out.add(
                                key,
                                format!("uses captures.{used}, which no earlier step captures"),
                            );
                        }
                    }
                    if name == "create" && !used_names(source, "previous").is_empty() {
                        out.add(key, "uses previous.*, which only update steps have");
                    }
                    if key.ends_with(".body") && source.contains("secret.") {
                        out.add(
                            key,
                            "uses secret.*: secrets are for url, headers and auth only",
                        );
                    }
                }
                for (capture_name, capture) in &request.capture {
                    check_capture(&format!("{prefix}.capture.{capture_name}"), capture, out);
                    if captured.contains(capture_name) {
                        out.add(
                            &format!("{prefix}.capture.{capture_name}"),
                            "captured by an earlier step already",
                        );
                    }
                    known.push(capture_name.clone());
                }
            }
            if step.find.as_ref().is_some_and(|f| f.capture.is_empty()) {
                out.add(
                    &format!("{at}.find.capture"),
                    "find needs captures: they tell whether it found something",
                );
            }
            for (r, rule) in step.outcomes.iter().enumerate() {
                if let Some(problem) = rule.status.problem() {
                    out.add(&format!("{at}.outcomes[{r}].status"), problem);
                }
                if !rule.capture.is_empty() && rule.outcome != Outcome::Exists {
                    out.add(
                        &format!("{at}.outcomes[{r}].capture"),
                        "only with outcome: exists",
                    );
                }
                for (capture_name, capture) in &rule.capture {
                    check_capture(
                        &format!("{at}.outcomes[{r}].capture.{capture_name}"),
                        capture,
                        out,
                    );
                }
            }
            if let Some(error) = &step.error {
                check_capture(&format!("{at}.error"), error, out);
            }
            if step.foreach.as_deref().is_some_and(|p| p.trim().is_empty()) {
                out.add(&format!("{at}.foreach"), "name a list, e.g. messages");
            }
            for request in [Some(&step.request), step.find.as_ref()]
                .into_iter()
                .flatten()
            {
                captured.extend(request.capture.keys().cloned());
            }
            for rule in &step.outcomes {
                captured.extend(rule.capture.keys().cloned());
            }
        }
        if name == "create" {
            created = captured;
        } else {
            for (i, step) in steps.iter().enumerate() {
                let mut sources = vec![step.request.url.as_str()];
                sources.extend(step.request.headers.values().map(String::as_str));
                for used in sources.iter().flat_map(|s| used_names(s, "previous")) {
                    if !created.contains(&used) && !captured.contains(&used) {
                        out.add(
                            &format!("update[{i}]"),
                            format!("uses previous.{used}, which no step captures"),
                        );
                    }
                }
            }
        }
    }
    for (i, link) in recipe.links.iter().enumerate() {
        compile(&format!("links[{i}].id"), &link.id, out);
        if let Some(url) = &link.url {
            compile(&format!("links[{i}].url"), url, out);
        }
        for source in std::iter::once(link.id.as_str()).chain(link.url.as_deref()) {
            if source.contains("secret.") {
                out.add(&format!("links[{i}]"), "links cannot use secret.*");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_after_a_prefix_are_found_at_word_starts_only() {
        assert_eq!(
            used_names(
                "{{captures.a}}/{{x.captures.b}} {{#if captures.c_d}}",
                "captures"
            ),
            vec!["a", "c_d"]
        );
    }
}
