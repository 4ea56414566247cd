//! A small OpenAPI 3.0 schema checker for request bodies: `$ref`, `allOf`, `oneOf`,
//! `anyOf`, `type`, `nullable`, `enum`, `required`, `properties`, `additionalProperties`,
//! `items`, `minLength`/`maxLength`, `minItems`/`maxItems`, and the `date-time` and `email`
//! formats. Enough to hold our bodies to Zendesk's published description and to the JSON
//! Schemas written from the other services' references (`tests/specs/*/*.schema.json`); a
//! body it refuses fails the test.

#![allow(dead_code)]

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
        if let Some(choices) = schema["enum"].as_array() {
            if !choices.contains(value) {
                errors.push(format!("{at}: {value} is not one of {choices:?}"));
            }
        }
        let ok = match schema["type"].as_str() {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("null") => value.is_null(),
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
