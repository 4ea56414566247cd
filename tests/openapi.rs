//! docs/openapi.yaml: an OpenAPI 3.1 document whose references all resolve, that names every
//! route the admin API registers, that is served at /admin/api/openapi.json behind the API's
//! authentication, and that describes what each route answers (the other HTTP tests check
//! every answer they get through `common::documented`; this one covers the statuses they
//! do not reach). `.ci/run` also validates it against the OpenAPI 3.1 schema and runs
//! schemathesis against a running instance.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::openapi::{api, assert_documented};
use common::{TestApp, TestConfig, TOKEN};
use serde_json::Value;

const ADMIN: &str = "admin-token-for-the-openapi-test";

fn refs<'a>(node: &'a Value, out: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn document() -> Value {
    api().root().clone()
}

#[test]
fn the_document_is_openapi_3_1_and_its_references_resolve() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let mut node = &doc;
        for part in r.trim_start_matches("#/").split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "{r} does not resolve");
    }
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            // Every {parameter} of the path is declared.
            for name in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                let name = name.trim_end_matches('}');
                let declared = op["parameters"].as_array().into_iter().flatten().any(|p| {
                    let p = match p["$ref"].as_str() {
                        Some(r) => &doc["components"]["parameters"][r.rsplit('/').next().unwrap()],
                        None => p,
                    };
                    p["name"] == name && p["in"] == "path"
                });
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
}

#[test]
fn every_registered_route_is_documented() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    let api = std::fs::read_to_string(common::repo().join("src/admin/api.rs")).unwrap();
    let mut seen = 0;
    for line in api.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else {
            continue;
        };
        let route = rest.split('"').next().unwrap();
        let method = if rest.contains("web::post()") {
            "post"
        } else {
            "get"
        };
        let path = format!("/admin/api{route}");
        assert!(
            paths.get(&path).is_some_and(|p| p[method].is_object()),
            "{method} {path} is served but not documented"
        );
        seen += 1;
    }
    assert!(seen >= 8, "read {seen} routes from src/admin/api.rs");
    for path in [
        "/hooks/smartsupp/{token}",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
}

#[tokio::test]
async fn it_is_served_behind_the_api_authentication_and_every_status_is_documented() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(&format!(
        "  archive:\n    kind: file\n    dir: \"{}\"\n",
        dir.path().display()
    ));
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n  max_body_bytes: 500\n");
    let app = TestApp::spawn(config).await;
    let client = reqwest::Client::new();

    let get = |path: &str, bearer: Option<&str>| {
        let mut request = client.get(app.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let path = path.to_string();
        async move { common::documented("GET", &path, request.send().await.unwrap()).await }
    };

    // The document, as JSON, behind the admin token.
    let served = get("/admin/api/openapi.json", Some(ADMIN)).await;
    assert_eq!(served.status(), 200);
    let served: Value = served.json().await.unwrap();
    assert_eq!(&served, api().root(), "the served document differs");
    let refused = get("/admin/api/openapi.json", None).await;
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");

    // Health, readiness, metrics.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(path, None).await.status(), 200, "{path}");
    }
    // Admin errors.
    assert_eq!(
        get("/admin/api/conversations?kind=chats", Some(ADMIN))
            .await
            .status(),
        400
    );
    assert_eq!(
        get("/admin/api/deliveries/12345", Some(ADMIN))
            .await
            .status(),
        404
    );
    assert_eq!(
        get("/admin/api/overview", Some("wrong")).await.status(),
        401
    );

    // Hook answers: accepted, duplicate, 400, 422, 413, 401 (then 429 once limited).
    let chat = common::sample("chat.json");
    let mut small = serde_json::json!({"accountId": 1, "channel": {"id": "small"}});
    assert_eq!(app.post_hook(small.to_string()).await.status(), 200);
    assert_eq!(app.post_hook(small.to_string()).await.status(), 200);
    small["channel"] = serde_json::json!({});
    assert_eq!(app.post_hook(small.to_string()).await.status(), 422);
    assert_eq!(app.post_hook("{not json").await.status(), 400);
    assert_eq!(app.post_hook(chat.to_string()).await.status(), 413);
    let mut last = 0;
    for _ in 0..50 {
        let path = "/hooks/smartsupp/not-the-token";
        let response = client.post(app.url(path)).body("{}").send().await.unwrap();
        let response = common::documented("POST", path, response).await;
        last = response.status().as_u16();
        if last == 429 {
            break;
        }
        assert_eq!(last, 401);
    }
    assert_eq!(last, 429, "wrong tokens are limited");
    let _ = TOKEN;
}

#[test]
fn answers_the_document_does_not_describe_are_refused() {
    let spec = api();
    // A field the schema does not name, a missing field, an undocumented status.
    let extra = br#"{"status":"ok","uptime":3}"#;
    assert!(!spec
        .response_errors("GET", "/healthz", 200, Some("application/json"), extra)
        .is_empty());
    assert!(!spec
        .response_errors("GET", "/readyz", 503, Some("application/json"), b"{}")
        .is_empty());
    assert!(!spec
        .response_errors("GET", "/healthz", 500, None, b"")
        .is_empty());
    assert!(!spec
        .response_errors("GET", "/metrics", 200, Some("application/json"), b"{}")
        .is_empty());
    assert_documented(
        "GET",
        "/healthz",
        200,
        Some("application/json"),
        br#"{"status":"ok"}"#,
    );
}
