//! `GET /admin/api/openapi.json`: docs/openapi.yaml, built into the binary and served as JSON.

use serde_json::{Map, Value};
use std::sync::OnceLock;

/// The OpenAPI document as shipped.
pub const YAML: &str = include_str!("../../docs/openapi.yaml");

/// The document as JSON, converted once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let value = yaml_rust2::YamlLoader::load_from_str(YAML)
            .ok()
            .and_then(|docs| docs.into_iter().next())
            .map(|doc| to_json(&doc))
            .unwrap_or(Value::Null);
        value.to_string()
    })
}

/// A YAML value as JSON (mapping keys as strings).
fn to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => String::new(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(r.clone())),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_document_converts() {
        let doc: serde_json::Value = serde_json::from_str(super::json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/admin/api/overview"]["get"]["responses"]["200"].is_object());
        assert_eq!(
            doc["components"]["schemas"]["Overview"]["properties"]["hooks_last_hour"]["type"],
            "integer"
        );
    }
}
