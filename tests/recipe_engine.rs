//! The recipe engine end to end (docs/RECIPES.md): steps run in order with their captures, a
//! retry resumes at the step that failed (also after a SIGKILL), `exists` continues, `when`
//! skips, `foreach` resumes mid-list with stable idempotency keys, and `check` names the
//! recipe file, line and key of a broken recipe.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::{run, Process};
use common::{deliveries, eventually, header, requests_at, sample, TestApp, TestConfig};
use serde_json::Value;
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A recipe of three steps: a contact, a ticket (its id from a header), a note (the ticket's
/// number read by a regex from the body of step two's answer).
const THREE_STEPS: &str = r#"
settings:
  base_url: { type: url }
  token: { type: string, secret: true }
auth: { kind: bearer, token: "{{secret.token}}" }
create:
  - id: contact
    url: "{{destination.base_url}}/contacts"
    body: t/contact.json.hbs
    capture:
      contact_id: { json: /data/id }
  - id: ticket
    url: "{{destination.base_url}}/contacts/{{captures.contact_id}}/tickets"
    body: t/ticket.json.hbs
    capture:
      ticket_id: { header: Resource-ID }
      number: { regex: "ticket #(\\d+)" }
  - id: note
    url: "{{destination.base_url}}/tickets/{{captures.ticket_id}}/notes"
    body: t/note.json.hbs
links:
  - { label: ticket, id: "{{captures.ticket_id}}", url: "{{destination.base_url}}/t/{{captures.ticket_id}}" }
"#;

const ADMIN: &str = "recipe-admin-token-0123456789";

fn three_steps(mock: &MockServer) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  desk:\n    kind: t\n    base_url: \"{}/api\"\n    token: \"sekrit\"\n",
        mock.uri()
    ))
    .template("t/recipe.yaml", THREE_STEPS)
    .template("t/contact.json.hbs", r#"{"name": "{{meta.visitorName}}"}"#)
    .template(
        "t/ticket.json.hbs",
        r#"{"contact": "{{captures.contact_id}}"}"#,
    )
    .template(
        "t/note.json.hbs",
        r#"{"ticket": "{{captures.ticket_id}}", "number": "{{captures.number}}"}"#,
    )
}

async fn mount_three_steps(mock: &MockServer, ticket_fails_first: bool) {
    Mock::given(method("POST"))
        .and(path("/api/contacts"))
        .respond_with(ResponseTemplate::new(201).set_body_string(r#"{"data":{"id":41}}"#))
        .mount(mock)
        .await;
    if ticket_fails_first {
        Mock::given(method("POST"))
            .and(path("/api/contacts/41/tickets"))
            .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(mock)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/api/contacts/41/tickets"))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("Resource-ID", "T-7")
                .set_body_string("created ticket #1234"),
        )
        .mount(mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/tickets/T-7/notes"))
        .respond_with(ResponseTemplate::new(201))
        .mount(mock)
        .await;
}

fn at(requests: &[Request], wanted: &str) -> Vec<Request> {
    requests
        .iter()
        .filter(|r| r.url.path() == wanted)
        .cloned()
        .collect()
}

async fn wait_done(app: &TestApp, n: usize) {
    eventually("deliveries done", Duration::from_secs(15), || async {
        let rows = deliveries(&app.db());
        rows.len() == n && rows.iter().all(|d| d.state == "done")
    })
    .await;
}

#[tokio::test]
async fn a_failed_second_step_is_retried_without_repeating_the_first() {
    let mock = MockServer::start().await;
    mount_three_steps(&mock, true).await;
    let mut config = three_steps(&mock);
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    let app = TestApp::spawn(config).await;
    assert_eq!(
        app.post_hook(sample("chat.json").to_string())
            .await
            .status(),
        200
    );
    wait_done(&app, 1).await;
    let all = mock.received_requests().await.unwrap();
    assert_eq!(
        at(&all, "/api/contacts").len(),
        1,
        "the contact is created once"
    );
    assert_eq!(
        at(&all, "/api/contacts/41/tickets").len(),
        2,
        "503, then 201"
    );
    let notes = at(&all, "/api/tickets/T-7/notes");
    assert_eq!(notes.len(), 1);
    let note: Value = serde_json::from_slice(&notes[0].body).unwrap();
    assert_eq!(
        note["ticket"], "T-7",
        "captured from the Resource-ID header"
    );
    assert_eq!(
        note["number"], "1234",
        "captured by the regex from the body"
    );
    assert_eq!(header(&notes[0], "authorization"), "Bearer sekrit");
    let rows = deliveries(&app.db());
    assert_eq!(rows[0].attempts, 2);
    // The dashboard links the ticket from the captures.
    let view: Value = app
        .client
        .get(app.url("/admin/api/conversations/208-55039"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["versions"][0]["deliveries"][0]["links"],
        serde_json::json!([{"label": "ticket", "id": "T-7", "url": format!("{}/api/t/T-7", mock.uri())}])
    );
}

#[tokio::test]
async fn exists_continues_with_the_captured_id_and_when_skips_a_step() {
    let mock = MockServer::start().await;
    let recipe = r#"
settings:
  base_url: { type: url }
create:
  - id: person
    url: "{{destination.base_url}}/persons"
    body: e/person.json.hbs
    capture:
      person_id: { json: /id }
    outcomes:
      - status: 409
        outcome: exists
        capture:
          person_id: { json: /error/existing_id }
  - id: mail
    when: "{{#if meta.hasEmail}}true{{/if}}"
    url: "{{destination.base_url}}/persons/{{captures.person_id}}/mail"
  - id: note
    url: "{{destination.base_url}}/persons/{{captures.person_id}}/notes"
"#;
    Mock::given(method("POST"))
        .and(path("/persons"))
        .respond_with(
            ResponseTemplate::new(409).set_body_string(r#"{"error":{"existing_id":"p-9"}}"#),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/persons/p-9/(mail|notes)$"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let config = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: e\n    base_url: \"{}\"\n",
        mock.uri()
    ))
    .template("e/recipe.yaml", recipe)
    .template("e/person.json.hbs", r#"{"name": "{{meta.visitorName}}"}"#);
    let app = TestApp::spawn(config).await;
    assert_eq!(
        app.post_hook(sample("anonymous.json").to_string())
            .await
            .status(),
        200
    );
    wait_done(&app, 1).await;
    let all = mock.received_requests().await.unwrap();
    assert_eq!(
        at(&all, "/persons/p-9/notes").len(),
        1,
        "exists went on to the note"
    );
    assert_eq!(
        at(&all, "/persons/p-9/mail").len(),
        0,
        "when skipped the mail step"
    );
    assert_eq!(deliveries(&app.db())[0].attempts, 1);
}

#[tokio::test]
async fn foreach_resumes_mid_list_with_stable_idempotency_keys() {
    let mock = MockServer::start().await;
    let recipe = r#"
settings:
  base_url: { type: url }
create:
  - id: lines
    foreach: messages
    url: "{{destination.base_url}}/lines"
    body: f/line.json.hbs
    idempotency_header: Idempotency-Key
"#;
    let conversation = sample("chat.json");
    let count = conversation["messages"].as_array().unwrap().len();
    assert!(count >= 3, "the sample has enough messages");
    Mock::given(method("POST"))
        .and(path("/lines"))
        .and(wiremock::matchers::body_string_contains("\"index\": 2,"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/lines"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&mock)
        .await;
    let config = TestConfig::with_destinations(&format!(
        "  lines:\n    kind: f\n    base_url: \"{}\"\n",
        mock.uri()
    ))
    .template("f/recipe.yaml", recipe)
    .template(
        "f/line.json.hbs",
        "{\"index\": {{index}}, \"text\": {{json item.content}}}",
    );
    let app = TestApp::spawn(config).await;
    assert_eq!(app.post_hook(conversation.to_string()).await.status(), 200);
    wait_done(&app, 1).await;
    let all = requests_at(&mock, count + 1).await;
    let indexes: Vec<i64> = all
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["index"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let mut expected: Vec<i64> = (0..count as i64).collect();
    expected.insert(3, 2);
    assert_eq!(
        indexes, expected,
        "items 0 and 1 are not sent again after item 2 failed"
    );
    let keys: Vec<String> = all.iter().map(|r| header(r, "idempotency-key")).collect();
    assert_eq!(keys[2], keys[3], "the retried item sends the same key");
    assert_ne!(keys[0], keys[1]);
    assert!(keys[0].ends_with("-lines-0"), "{}", keys[0]);
}

#[tokio::test]
async fn a_sigkill_between_steps_resumes_after_the_restart() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/contacts"))
        .respond_with(ResponseTemplate::new(201).set_body_string(r#"{"data":{"id":41}}"#))
        .mount(&mock)
        .await;
    // The first ticket request hangs until the process is killed.
    Mock::given(method("POST"))
        .and(path("/api/contacts/41/tickets"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    mount_three_steps(&mock, false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = three_steps(&mock)
        .delivery("  workers: 1\n  request_timeout: \"120s\"\n  retry_schedule: [\"100ms\"]\n");
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    let path_to = config.write(dir.path());
    let mut first = Process::start(&path_to);
    assert_eq!(first.post(sample("chat.json").to_string()).await, 200);
    eventually(
        "the ticket request is in flight",
        Duration::from_secs(15),
        || async {
            at(
                &mock.received_requests().await.unwrap(),
                "/api/contacts/41/tickets",
            )
            .len()
                == 1
        },
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = Process::start(&path_to);
    eventually(
        "the note after the restart",
        Duration::from_secs(20),
        || async {
            at(
                &mock.received_requests().await.unwrap(),
                "/api/tickets/T-7/notes",
            )
            .len()
                == 1
        },
    )
    .await;
    let all = mock.received_requests().await.unwrap();
    assert_eq!(
        at(&all, "/api/contacts").len(),
        1,
        "the contact kept from before the kill"
    );
    drop(second);
}

#[test]
fn check_names_the_recipe_file_line_and_key_of_a_broken_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let broken = r#"settings:
  base_url: { type: url }
create:
  - id: ticket
    url: "{{destination.base_url}}/tickets/{{captures.ticket_id}}"
    bodyy: b/ticket.json.hbs
"#;
    let config = TestConfig::with_destinations(
        "  desk:\n    kind: b\n    base_url: \"http://127.0.0.1:9\"\n",
    )
    .template("b/recipe.yaml", broken);
    let path_to = config.write(dir.path());
    let recipe = dir.path().join("templates/b/recipe.yaml");
    let out = run(&["check", "--config", path_to.to_str().unwrap()]);
    assert!(!out.ok());
    let wanted = format!(
        "{}:6: create[0].bodyy: unknown field `bodyy`",
        recipe.display()
    );
    assert!(out.stderr.contains(&wanted), "{wanted} in {}", out.stderr);

    let used_early = broken.replace("    bodyy: b/ticket.json.hbs\n", "");
    std::fs::write(&recipe, used_early).unwrap();
    let out = run(&["check", "--config", path_to.to_str().unwrap()]);
    assert!(!out.ok());
    let wanted = format!(
        "{}:5: create[0].url: uses captures.ticket_id, which no earlier step captures",
        recipe.display()
    );
    assert!(out.stderr.contains(&wanted), "{wanted} in {}", out.stderr);

    // A key the recipe does not take names the configuration's line.
    let fixed = "settings:\n  base_url: { type: url }\ncreate:\n  - id: ticket\n    url: \"{{destination.base_url}}/tickets\"\n";
    std::fs::write(&recipe, fixed).unwrap();
    let config = config_with(
        &path_to,
        "    base_url: \"http://127.0.0.1:9\"\n    colour: blue\n",
    );
    let out = run(&["check", "--config", config.to_str().unwrap()]);
    assert!(!out.ok());
    assert!(
        out.stderr.contains(
            "destinations.desk.colour: unknown key for the b recipe (it takes: base_url)"
        ),
        "{}",
        out.stderr
    );
}

/// The configuration at `path` with the destination's keys replaced by `keys`.
fn config_with(path: &std::path::Path, keys: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("    base_url:").unwrap();
    let changed = format!("{}{keys}", &text[..start]);
    let out = path.with_file_name("changed.yaml");
    std::fs::write(&out, changed).unwrap();
    out
}
