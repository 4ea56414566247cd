//! A small OpenAPI 3.0/3.1 and JSON Schema checker: `$ref`, `allOf`, `oneOf`, `anyOf`, `type`
//! (one or a list, `null` included), `nullable`, `enum`, `const`, `required`, `properties`,
//! `additionalProperties`, `items`, `minimum`, `maximum`, `minLength`/`maxLength`,
//! `minItems`/`maxItems`, and the `date-time` and `email` formats. Enough to hold our request
//! bodies to Zendesk's published description and to the JSON Schemas written from the other
//! services' references (`tests/specs/*/*.schema.json`), and every answer our HTTP tests
//! receive to docs/openapi.yaml ([`assert_documented`]); a body it refuses fails the test.

use serde_json::{Map, Value};
use std::path::Path;

pub struct Spec {
    root: Value,
}

fn from_yaml(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => format!("{other:?}"),
                };
                m.insert(key, from_yaml(v));
            }
            Value::Object(m)
        }
        Yaml::Array(a) => Value::Array(a.iter().map(from_yaml).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(r.clone())),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

impl Spec {
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).expect("spec readable");
        let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("spec parses");
        Self {
            root: from_yaml(&docs[0]),
        }
    }

    /// A JSON Schema file (the schema is the whole document; `$ref`s point into it).
    pub fn load_json(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).expect("schema readable");
        Self {
            root: serde_json::from_str(&text).expect("schema parses"),
        }
    }

    /// The whole document, for a JSON Schema file.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The JSON request body schema of `method` on `path` (as written in the spec).
    pub fn request_schema(&self, path: &str, method: &str) -> &Value {
        let schema = &self.root["paths"][path][method]["requestBody"]["content"]
            ["application/json"]["schema"];
        assert!(!schema.is_null(), "no request schema for {method} {path}");
        schema
    }

    /// Every way `value` breaks `schema`; with `strict`, properties the schema does not
    /// describe count as errors too (they catch misspelt field names).
    pub fn check(&self, schema: &Value, value: &Value, strict: bool) -> Vec<String> {
        let mut errors = Vec::new();
        self.walk(schema, value, "$", strict, &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, reference: &str) -> &'a Value {
        let mut node = &self.root;
        for part in reference.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "unresolved $ref {reference}");
        node
    }

    fn walk(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        strict: bool,
        errors: &mut Vec<String>,
    ) {
        if let Some(reference) = schema["$ref"].as_str() {
            return self.walk(self.resolve(reference), value, at, strict, errors);
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                self.walk(s, value, at, false, errors);
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema[key].as_array() {
                if !options
                    .iter()
                    .any(|s| self.check(s, value, strict).is_empty())
                {
                    errors.push(format!("{at}: matches none of {key}"));
                }
            }
        }
        if value.is_null() && schema["nullable"] == Value::Bool(true) {
            return;
        }
        if let Some(expected) = schema.get("const") {
            if expected != value {
                errors.push(format!("{at}: {value} is not {expected}"));
            }
        }
        for (key, below) in [("minimum", true), ("maximum", false)] {
            if let (Some(bound), Some(n)) = (schema[key].as_f64(), value.as_f64()) {
                if (below && n < bound) || (!below && n > bound) {
                    errors.push(format!("{at}: {n} is beyond the {key} {bound}"));
                }
            }
        }
        if let Some(choices) = schema["enum"].as_array() {
            if !choices.contains(value) {
                errors.push(format!("{at}: {value} is not one of {choices:?}"));
            }
        }
        let is = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        };
        let ok = match &schema["type"] {
            Value::String(t) => is(t),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(is),
            _ => true,
        };
        if !ok {
            errors.push(format!("{at}: expected {}, found {value}", schema["type"]));
            return;
        }
        match (schema["format"].as_str(), value.as_str()) {
            (Some("date-time"), Some(text))
                if chrono::DateTime::parse_from_rfc3339(text).is_err() =>
            {
                errors.push(format!("{at}: {text:?} is not a date-time"));
            }
            (Some("email"), Some(text)) if !text.contains('@') => {
                errors.push(format!("{at}: {text:?} is not an email"));
            }
            _ => {}
        }
        let bounds = |key: &str| schema[key].as_u64().map(|n| n as usize);
        let size = match value {
            Value::String(text) => Some((text.chars().count(), "minLength", "maxLength")),
            Value::Array(items) => Some((items.len(), "minItems", "maxItems")),
            _ => None,
        };
        if let Some((n, min, max)) = size {
            if bounds(min).is_some_and(|least| n < least) {
                errors.push(format!("{at}: {n} is below {min} {}", schema[min]));
            }
            if bounds(max).is_some_and(|most| n > most) {
                errors.push(format!("{at}: {n} is above {max} {}", schema[max]));
            }
        }
        if let Value::Object(fields) = value {
            for name in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    if !fields.contains_key(name) {
                        errors.push(format!("{at}: required {name} is missing"));
                    }
                }
            }
            let properties = schema["properties"].as_object();
            for (name, field) in fields {
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => self.walk(s, field, &format!("{at}.{name}"), strict, errors),
                    None if schema["additionalProperties"] == Value::Bool(false)
                        || (strict && properties.is_some()) =>
                    {
                        errors.push(format!("{at}: unknown property {name}"));
                    }
                    None => {}
                }
            }
        }
        if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.walk(s, item, &format!("{at}[{i}]"), strict, errors);
            }
        }
    }
}

/// docs/openapi.yaml, read once.
pub fn api() -> &'static Spec {
    static API: std::sync::OnceLock<Spec> = std::sync::OnceLock::new();
    API.get_or_init(|| Spec::load(&super::repo().join("docs/openapi.yaml")))
}

/// Fails the test unless docs/openapi.yaml documents this answer: the route (query left
/// out), its method and status, the content type, and a JSON body that matches the schema
/// with no undescribed fields.
pub fn assert_documented(
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    let errors = api().response_errors(method, path, status, content_type, body);
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} ({content_type:?}) {}, which docs/openapi.yaml does not describe: {errors:#?}",
        String::from_utf8_lossy(body)
    );
}

impl Spec {
    /// The documented route matching `path` (templates match one segment; literal segments
    /// win over templates).
    pub fn route(&self, path: &str) -> Option<&str> {
        let path = path.split('?').next().unwrap_or_default();
        let given: Vec<&str> = path.split('/').collect();
        let mut best: Option<(&str, usize)> = None;
        for template in self.root["paths"].as_object()?.keys() {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != given.len() {
                continue;
            }
            let mut literal = 0;
            let matches = parts.iter().zip(&given).all(|(t, g)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !g.is_empty()
                } else {
                    literal += 1;
                    t == g
                }
            });
            if matches && best.is_none_or(|(_, n)| literal > n) {
                best = Some((template.as_str(), literal));
            }
        }
        best.map(|(t, _)| t)
    }

    /// Every way an answer differs from the document.
    pub fn response_errors(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<String> {
        let Some(route) = self.route(path) else {
            // No such route: 404 is the only right answer.
            return match status {
                404 => Vec::new(),
                _ => vec![format!("no documented route matches {path}")],
            };
        };
        let operation = &self.root["paths"][route][method.to_lowercase()];
        if operation.is_null() {
            return vec![format!("{method} {route} is not documented")];
        }
        let mut response = &operation["responses"][status.to_string()];
        if let Some(reference) = response["$ref"].as_str() {
            response = self.resolve(reference);
        }
        if response.is_null() {
            return vec![format!(
                "{method} {route} does not document status {status}"
            )];
        }
        let media = content_type
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_string())
            .filter(|c| !c.is_empty());
        let Some(content) = response["content"].as_object() else {
            return match (media, body.is_empty()) {
                (None, true) => Vec::new(),
                _ => vec![format!("{status} is documented without a body")],
            };
        };
        let Some(media) = media else {
            return vec![format!("no content type; documented: {:?}", content.keys())];
        };
        let Some(described) = content.get(&media) else {
            return vec![format!(
                "content type {media} is not one of {:?}",
                content.keys()
            )];
        };
        if media != "application/json" {
            return Vec::new();
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("the body is not JSON: {e}")],
        };
        self.check(&described["schema"], &value, true)
    }
}
