//! `deskbridge import smartsupp` against a mock REST API: three pages of search results,
//! interrupted and resumed from the stored cursor, with one conversation already received by
//! hook; the imported conversations reach a mock Zendesk through the running server.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::events::{helpdesk, zendesk};
use common::process::run;
use common::{deliveries, eventually, TestApp};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn item(id: &str) -> Value {
    json!({
        "id": id, "status": "closed", "contact_id": null, "visitor_id": format!("v-{id}"),
        "channel": {"type": "chat"}, "is_offline": false,
        "contact_name": format!("Visitor {id}"), "contact_email": format!("{id}@example.com"),
        "created_at": "2026-05-15T10:00:00Z", "finished_at": "2026-05-15T10:10:00Z",
        "variables": {}, "tags": []
    })
}

/// Three pages: c1 c2 | c3 | c4. The third fails twice with 400 (an interruption).
struct Search {
    seen: Arc<Mutex<Vec<Value>>>,
    fail_third: AtomicUsize,
}

impl Respond for Search {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let after = body.get("after").cloned().unwrap_or(Value::Null);
        self.seen.lock().unwrap().push(after.clone());
        let page = |items: Vec<Value>, next: Value| {
            ResponseTemplate::new(200)
                .set_body_json(json!({"total": 4, "items": items, "after": next}))
        };
        match after.to_string().as_str() {
            "null" => page(vec![item("c1"), item("c2")], json!(["p2"])),
            r#"["p2"]"# => page(vec![item("c3")], json!(["p3"])),
            _ if self
                .fail_third
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok() =>
            {
                ResponseTemplate::new(400).set_body_json(json!({"error": "bad request"}))
            }
            _ => page(vec![item("c4")], Value::Null),
        }
    }
}

/// The REST API: the search pages (the third failing `failures` times), each conversation's
/// messages, the agents.
async fn api(seen: Arc<Mutex<Vec<Value>>>, failures: usize) -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/conversations/search"))
        .respond_with(Search {
            seen,
            fail_third: AtomicUsize::new(failures),
        })
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/conversations/c\d/messages$"))
        .respond_with(|r: &Request| {
            let id = r.url.path().split('/').nth(3).unwrap().to_string();
            ResponseTemplate::new(200).set_body_json(json!({"items": [
                {"id": format!("{id}-m2"), "sub_type": "agent", "agent_id": "a1", "content": {"type": "text", "text": format!("Answer in {id}")}, "created_at": "2026-05-15T10:02:00Z"},
                {"id": format!("{id}-m1"), "sub_type": "contact", "content": format!("Question in {id}"), "created_at": "2026-05-15T10:01:00Z"}
            ], "after": null}))
        })
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/agents"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"agents": [{"id": "a1", "name": "Petr"}]})),
        )
        .mount(&api)
        .await;
    api
}

fn import(config: &std::path::Path, extra: &[&str]) -> common::process::Run {
    let mut args = vec!["import", "smartsupp", "--account-id", "acc", "--config"];
    let config = config.to_str().unwrap().to_string();
    args.push(&config);
    args.extend_from_slice(extra);
    run(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_import_resumes_and_skips_what_came_by_hook() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = api(seen.clone(), 2).await;
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, common::events::api_yaml(&api))).await;
    let config = app.dir.path().join("deskbridge.yaml");
    // c2 came by the legacy hook already.
    let mut hook = common::conversation(1);
    hook["accountId"] = json!("acc");
    hook["channel"]["id"] = json!("c2");
    assert_eq!(app.post_hook(hook.to_string()).await.status(), 200);

    // A dry run stores nothing.
    let dry = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || import(&config, &["--dry-run", "--since", "400d"]))
            .await
            .unwrap()
    };
    assert!(
        !dry.ok(),
        "the dry run meets the interruption too: {}",
        dry.stderr
    );
    assert_eq!(deliveries(&app.db()).len(), 1);

    let first = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || import(&config, &["--since", "400d"]))
            .await
            .unwrap()
    };
    assert!(!first.ok(), "the third page fails: {}", first.stdout);
    assert!(first.stderr.contains("HTTP 400"), "{}", first.stderr);
    let second = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || import(&config, &["--since", "400d"]))
            .await
            .unwrap()
    };
    assert!(second.ok(), "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("resuming the import"),
        "{}",
        second.stderr
    );
    assert!(
        second
            .stdout
            .contains("3 conversation(s) imported, 1 skipped"),
        "{}",
        second.stdout
    );
    // Pages: the dry run 1, 2, 3 (failed); the first run 1, 2, 3 (failed); the resumed run
    // starts at page 3.
    let afters: Vec<String> = seen.lock().unwrap().iter().map(Value::to_string).collect();
    assert_eq!(afters.last().unwrap(), r#"["p3"]"#);
    assert_eq!(
        afters.iter().filter(|a| *a == "null").count(),
        2,
        "{afters:?}"
    );

    let mut keys: Vec<(String, i64)> = deliveries(&app.db())
        .iter()
        .map(|d| (d.key.clone(), d.version))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ("acc-c1".into(), 1),
            ("acc-c2".into(), 1),
            ("acc-c3".into(), 1),
            ("acc-c4".into(), 1)
        ]
    );
    // Imported conversations reach Zendesk like any other, with their messages.
    eventually("four tickets", Duration::from_secs(20), || async {
        mock.received_requests().await.unwrap_or_default().len() >= 4
    })
    .await;
    let bodies: Vec<String> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    let c3 = bodies.iter().find(|b| b.contains("acc-c3")).unwrap();
    assert!(
        c3.contains("Question in c3") && c3.contains("Answer in c3") && c3.contains("Petr"),
        "{c3}"
    );
    assert!(c3.contains("c3@example.com"), "{c3}");
    // Run again: everything is known, nothing new.
    let again = tokio::task::spawn_blocking(move || import(&config, &["--since", "400d"]))
        .await
        .unwrap();
    assert!(
        again
            .stdout
            .contains("0 conversation(s) imported, 4 skipped"),
        "{}",
        again.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_conversations_go_to_zendesks_ticket_import_with_their_own_times() {
    let api = api(Arc::default(), 0).await;
    let mock = zendesk().await;
    let mut config = common::TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n    mode: import\n",
        mock.uri()
    ));
    config.smartsupp = common::events::api_yaml(&api);
    let app = TestApp::spawn(config).await;
    let config = app.dir.path().join("deskbridge.yaml");
    let out = tokio::task::spawn_blocking(move || import(&config, &["--since", "400d"]))
        .await
        .unwrap();
    assert!(out.ok(), "{}\n{}", out.stdout, out.stderr);
    eventually("four imported tickets", Duration::from_secs(20), || async {
        mock.received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/api/v2/imports/tickets")
            .count()
            == 4
    })
    .await;
    let requests = mock.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.url.path() != "/api/v2/tickets"),
        "no live tickets in import mode"
    );
    let c1: Value = requests
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .find(|b| b["ticket"]["external_id"] == "acc-c1")
        .unwrap();
    let ticket = &c1["ticket"];
    assert!(
        ticket["created_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-05-15T10:0")),
        "the chat's own start: {ticket}"
    );
    let comments = ticket["comments"].as_array().unwrap();
    assert!(
        comments.iter().any(|c| c["created_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-05-15T10:01"))),
        "each message at its own time: {comments:?}"
    );
}
