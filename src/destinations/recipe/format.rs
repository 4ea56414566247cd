//! The recipe file (docs/RECIPES.md): its shape, read with unknown keys refused ([`super::check`]
//! reads and checks a file).

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

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

    /// What is wrong with the statuses as written, if anything.
    pub fn problem(&self) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
