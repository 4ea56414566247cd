//! The recipe file (docs/RECIPES.md): its shape, read with unknown keys refused, and the checks
//! that need the whole recipe (unique step ids, captures defined before use, templates that
//! compile). Every problem names the recipe file, the line and the key.

use crate::config::{ConfigError, Problems};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// A recipe as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Used in messages; the recipe's folder name when not given.
    #[serde(default)]
    pub name: String,
    /// What the recipe does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The destination keys it takes, in file order.
    #[serde(default)]
    pub settings: IndexMap<String, SettingSpec>,
    /// Applied to every request.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// The steps of a conversation's first version.
    pub create: Vec<Step>,
    /// The steps of a later version, with the earlier version's captures.
    #[serde(default)]
    pub update: Vec<Step>,
    /// What a delivery created, for the dashboard.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
}

/// One destination key of a recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: SettingType,
    /// With `type: enum`, the allowed values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Whether it must be given (`true` unless there is a default).
    #[serde(default)]
    pub required: Option<bool>,
    /// The value when absent; a string default may use `{{other_setting}}`.
    #[serde(default)]
    pub default: Option<Value>,
    /// A credential: also `<key>_file`, masked everywhere, only in `url`, `headers`, `auth`.
    #[serde(default)]
    pub secret: bool,
    /// What it is, for people.
    #[serde(default)]
    pub description: Option<String>,
}

impl SettingSpec {
    /// Whether the destination must give it.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

/// The type of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    /// Any text.
    String,
    /// An absolute http or https URL.
    Url,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An IANA time zone name.
    TimeZone,
    /// A value for each of `chat`, `missed`, `offline`.
    PerKind,
    /// A list of strings.
    List,
    /// One of `values`.
    Enum,
}

/// How requests are authenticated.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// `Authorization: Basic`.
    Basic {
        /// Template of the user name.
        username: String,
        /// Template of the password.
        password: String,
    },
    /// `Authorization: Bearer`.
    Bearer {
        /// Template of the token.
        token: String,
    },
    /// A header of the service's own.
    Header {
        /// The header's name.
        name: String,
        /// Template of its value.
        value: String,
    },
    /// A query parameter added to every URL.
    Query {
        /// The parameter's name.
        name: String,
        /// Template of its value.
        value: String,
    },
    /// OAuth 2.0 client credentials, tokens fetched and renewed by deskbridge.
    Oauth2 {
        /// Template of the token endpoint.
        token_url: String,
        /// Template of the client id.
        client_id: String,
        /// Template of the client secret.
        client_secret: String,
        /// Scopes asked for, if the service wants any.
        #[serde(default)]
        scope: Option<String>,
    },
}

impl AuthSpec {
    /// The templates of the auth block, by key.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Basic { username, password } => {
                vec![("username", username), ("password", password)]
            }
            Self::Bearer { token } => vec![("token", token)],
            Self::Header { value, .. } | Self::Query { value, .. } => vec![("value", value)],
            Self::Oauth2 {
                token_url,
                client_id,
                client_secret,
                ..
            } => vec![
                ("token_url", token_url),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ],
        }
    }
}

/// One HTTP request of a step (the step's own, or its `find`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// Template of the URL.
    pub url: String,
    /// Header name → template of its value.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Template path of the body under the templates folder.
    #[serde(default)]
    pub body: Option<String>,
    /// Values read from a successful answer.
    #[serde(default)]
    pub capture: IndexMap<String, Capture>,
}

fn post() -> String {
    "POST".into()
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique name of the step.
    pub id: String,
    /// Template; the step is skipped when it renders empty or `false`.
    #[serde(default)]
    pub when: Option<String>,
    /// A path in the template data to a list: the step runs once per item.
    #[serde(default)]
    pub foreach: Option<String>,
    /// Find-or-create: sent first; when all its captures are found the step's request is not.
    #[serde(default)]
    pub find: Option<RequestSpec>,
    /// The step's request.
    #[serde(flatten)]
    pub request: RequestSpec,
    /// A header that carries a stable key per delivery, step and item.
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// Rules for statuses, before the defaults.
    #[serde(default)]
    pub outcomes: Vec<Rule>,
    /// Where the service explains a failure.
    #[serde(default)]
    pub error: Option<Capture>,
    /// The header that says how long to wait on 429 and 503 (default `Retry-After`).
    #[serde(default)]
    pub retry_after: Option<String>,
}

/// Where a captured value is read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// A JSON pointer into the body.
    #[serde(default)]
    pub json: Option<String>,
    /// A response header.
    #[serde(default)]
    pub header: Option<String>,
    /// A regular expression whose first group is the value.
    #[serde(default)]
    pub regex: Option<String>,
    /// With `regex`: `body` (default) or `header:<name>`.
    #[serde(default)]
    pub from: Option<String>,
    /// Whether an answer may lack it.
    #[serde(default)]
    pub optional: bool,
}

/// What a status means for a step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The statuses it applies to.
    pub status: StatusMatch,
    /// What they mean.
    pub outcome: Outcome,
    /// With `exists`: values read from this answer instead of the step's captures.
    #[serde(default)]
    pub capture: IndexMap<String, Capture>,
    /// Words for the attempt log.
    #[serde(default)]
    pub message: Option<String>,
}

/// Statuses: a number, a class such as `4xx`, or a list of these.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusMatch {
    /// One status.
    One(u16),
    /// A class (`4xx`) or a number written as text.
    Text(String),
    /// Any of several.
    Any(Vec<StatusMatch>),
}

impl StatusMatch {
    /// Whether `status` matches.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            Self::One(s) => *s == status,
            Self::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                class if class.len() == 3 && class.ends_with("xx") => class
                    .chars()
                    .next()
                    .and_then(|c| c.to_digit(10))
                    .is_some_and(|d| u32::from(status / 100) == d),
                other => other.parse::<u16>().is_ok_and(|s| s == status),
            },
            Self::Any(list) => list.iter().any(|m| m.matches(status)),
        }
    }

    fn problem(&self) -> Option<String> {
        match self {
            Self::One(s) if !(100..=599).contains(s) => Some(format!("{s} is not an HTTP status")),
            Self::One(_) => None,
            Self::Text(t) => {
                let t = t.trim().to_ascii_lowercase();
                let class = t.len() == 3
                    && t.ends_with("xx")
                    && matches!(&t[..1], "1" | "2" | "3" | "4" | "5");
                (!class && t.parse::<u16>().map_or(true, |s| !(100..=599).contains(&s)))
                    .then(|| format!("{t:?} is neither a status nor a class such as 4xx"))
            }
            Self::Any(list) => list.iter().find_map(Self::problem),
        }
    }
}

/// What an answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The step succeeded.
    Done,
    /// What it would create is there already: capture and continue.
    Exists,
    /// Try the delivery again later.
    Retry,
    /// Permanent: the delivery is dead.
    Dead,
    /// The service refused the credentials: the destination pauses and the delivery waits,
    /// spending no attempt, until an admin fixes them.
    Credentials,
}

/// A link shown on the dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// What it is, e.g. `ticket`.
    pub label: String,
    /// Template of its id at the service.
    pub id: String,
    /// Template of its page.
    #[serde(default)]
    pub url: Option<String>,
}

/// Which sequence of steps a delivery runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sequence {
    /// `create`.
    Create,
    /// `update`.
    Update,
}

impl Recipe {
    /// The steps of `sequence`.
    pub fn steps(&self, sequence: Sequence) -> &[Step] {
        match sequence {
            Sequence::Create => &self.create,
            Sequence::Update => &self.update,
        }
    }

    /// Every inline template of the recipe, by its key in the recipe file.
    pub fn inline_templates(&self) -> Vec<(String, &str)> {
        let mut out: Vec<(String, &str)> = Vec::new();
        if let Some(auth) = &self.auth {
            for (key, source) in auth.templates() {
                out.push((format!("auth.{key}"), source));
            }
        }
        for (name, steps) in [("create", &self.create), ("update", &self.update)] {
            for (i, step) in steps.iter().enumerate() {
                let at = format!("{name}[{i}]");
                if let Some(when) = &step.when {
                    out.push((format!("{at}.when"), when));
                }
                let requests = step
                    .find
                    .iter()
                    .map(|f| (format!("{at}.find"), f))
                    .chain(std::iter::once((at.clone(), &step.request)));
                for (prefix, r) in requests {
                    out.push((format!("{prefix}.url"), r.url.as_str()));
                    for (header, value) in &r.headers {
                        out.push((format!("{prefix}.headers.{header}"), value.as_str()));
                    }
                }
            }
        }
        for (i, link) in self.links.iter().enumerate() {
            out.push((format!("links[{i}].id"), &link.id));
            if let Some(url) = &link.url {
                out.push((format!("links[{i}].url"), url));
            }
        }
        out
    }

    /// Every body template, by key.
    pub fn body_templates(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (name, steps) in [("create", &self.create), ("update", &self.update)] {
            for (i, step) in steps.iter().enumerate() {
                if let Some(body) = step.find.as_ref().and_then(|f| f.body.as_deref()) {
                    out.push((format!("{name}[{i}].find.body"), body));
                }
                if let Some(body) = &step.request.body {
                    out.push((format!("{name}[{i}].body"), body.as_str()));
                }
            }
        }
        out
    }
}

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

    #[test]
    fn statuses_match_numbers_classes_and_lists() {
        assert!(StatusMatch::One(409).matches(409));
        assert!(StatusMatch::Text("4xx".into()).matches(422));
        assert!(!StatusMatch::Text("4xx".into()).matches(500));
        let any = StatusMatch::Any(vec![StatusMatch::One(404), StatusMatch::Text("5xx".into())]);
        assert!(any.matches(503) && any.matches(404) && !any.matches(400));
        assert!(StatusMatch::Text("6xx".into()).problem().is_some());
        assert!(StatusMatch::One(42).problem().is_some());
    }
}
