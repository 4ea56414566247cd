//! The HubSpot destination against a mock HubSpot on port 0.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{
    attempts, conversation, deliveries, eventually, json_body, requests_at, sample, TestApp,
    TestConfig,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const V: &str = "/crm/objects/2026-03";

/// Answers creations with new string ids (tickets from 601, notes from 701) and records
/// request times.
struct Objects {
    tickets: AtomicU32,
    notes: AtomicU32,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Objects {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        self.times.lock().unwrap().push(Instant::now());
        if r.url.path().ends_with("/batch/upsert") {
            return ResponseTemplate::new(200).set_body_json(json!({"status": "COMPLETE", "results": [{"id": "501", "new": true, "properties": {}}]}));
        }
        if r.url.path().ends_with("/tickets") {
            let id = self.tickets.fetch_add(1, Ordering::SeqCst);
            return ResponseTemplate::new(201)
                .set_body_json(json!({"id": id.to_string(), "properties": {}}));
        }
        let id = self.notes.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(201).set_body_json(json!({"id": id.to_string(), "properties": {}}))
    }
}

async fn hubspot() -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(Objects {
            tickets: AtomicU32::new(601),
            notes: AtomicU32::new(701),
            times: times.clone(),
        })
        .mount(&server)
        .await;
    (server, times)
}

/// Mounts `template` for the first `n` requests to `object_path`, ahead of the default mock.
async fn fail_first(server: &MockServer, object_path: &str, template: ResponseTemplate, n: u64) {
    Mock::given(method("POST"))
        .and(path(object_path.to_string()))
        .respond_with(template)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(server)
        .await;
}

fn crm(mock: &MockServer, extra: &str) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  crm:\n    kind: hubspot\n    base_url: \"{}\"\n    access_token: \"pat-test-1\"\n    time_zone: \"Europe/Prague\"\n{extra}",
        mock.uri()
    ))
}

fn assoc(id: &str, type_id: u32) -> Value {
    json!({"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]})
}

fn assert_all_strings(properties: &Value) {
    for (k, v) in properties.as_object().unwrap() {
        assert!(v.is_string(), "property {k} is not a string: {v}");
    }
}

async fn all_done(app: &TestApp) {
    eventually("deliveries done", Duration::from_secs(15), || async {
        let rows = deliveries(&app.db());
        !rows.is_empty() && rows.iter().all(|d| d.state == "done")
    })
    .await;
}

#[tokio::test]
async fn writes_contact_ticket_and_note_with_associations() {
    let (mock, _) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    app.post_hook(sample("chat.json").to_string()).await;
    let all = requests_at(&mock, 3).await;
    all_done(&app).await;
    let paths: Vec<&str> = all.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        vec![
            format!("{V}/contacts/batch/upsert"),
            format!("{V}/tickets"),
            format!("{V}/notes")
        ]
    );
    for r in &all {
        assert_eq!(r.headers.get("authorization").unwrap(), "Bearer pat-test-1");
    }
    let contact = json_body(&all[0]);
    let input = &contact["inputs"][0];
    assert_eq!(input["idProperty"], "email");
    assert_eq!(input["id"], "dusan@domain.com");
    assert_eq!(input["properties"]["firstname"], "Dusan");
    assert_eq!(input["properties"]["lastname"], "Kmet");
    assert_all_strings(&input["properties"]);

    let ticket = json_body(&all[1]);
    assert_all_strings(&ticket["properties"]);
    assert_eq!(ticket["properties"]["subject"], "Chat with Dusan Kmet");
    assert_eq!(ticket["properties"]["hs_pipeline"], "0");
    assert_eq!(ticket["properties"]["hs_pipeline_stage"], "1");
    assert!(ticket["properties"]["content"]
        .as_str()
        .unwrap()
        .contains("John Doe: Hi, how can i help you ?"));
    assert_eq!(ticket["associations"], json!([assoc("501", 16)]));

    let note = json_body(&all[2]);
    assert_all_strings(&note["properties"]);
    assert_eq!(
        note["properties"]["hs_timestamp"],
        "2015-03-27T15:34:36.687Z"
    );
    assert!(note["properties"]["hs_note_body"]
        .as_str()
        .unwrap()
        .contains("<em>John Doe joined</em>"));
    assert_eq!(
        note["associations"],
        json!([assoc("501", 202), assoc("601", 228)])
    );

    let result = common::texts(&app.db(), "SELECT result FROM deliveries").remove(0);
    let result: Value = serde_json::from_str(&result).unwrap();
    assert_eq!(
        (
            result["contact_id"].as_str(),
            result["ticket_id"].as_str(),
            result["note_id"].as_str()
        ),
        (Some("501"), Some("601"), Some("701"))
    );
}

#[tokio::test]
async fn the_legacy_v3_paths_are_used_when_configured() {
    let (mock, _) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "    api_version: \"v3\"\n")).await;
    app.post_hook(sample("chat.json").to_string()).await;
    let all = requests_at(&mock, 3).await;
    let paths: Vec<&str> = all.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        vec![
            "/crm/v3/objects/contacts/batch/upsert",
            "/crm/v3/objects/tickets",
            "/crm/v3/objects/notes"
        ]
    );
}

#[tokio::test]
async fn a_visitor_without_email_gets_a_ticket_and_a_note_on_it() {
    let (mock, _) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    let all = requests_at(&mock, 2).await;
    all_done(&app).await;
    assert_eq!(all.len(), 2, "no contact without an email");
    assert_eq!(all[0].url.path(), format!("{V}/tickets"));
    assert_eq!(json_body(&all[0])["associations"], json!([]));
    assert_eq!(
        json_body(&all[0])["properties"]["subject"],
        "Chat with Visitor #27671"
    );
    assert_eq!(
        json_body(&all[1])["associations"],
        json!([assoc("601", 228)])
    );
}

#[tokio::test]
async fn a_failure_between_steps_resumes_after_the_last_completed_step() {
    let (mock, _) = hubspot().await;
    fail_first(
        &mock,
        &format!("{V}/tickets"),
        ResponseTemplate::new(503),
        1,
    )
    .await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app).await;
    let all = mock.received_requests().await.unwrap();
    let count = |suffix: &str| {
        all.iter()
            .filter(|r| r.url.path().ends_with(suffix))
            .count()
    };
    assert_eq!(
        count("/batch/upsert"),
        1,
        "the contact is not upserted again"
    );
    assert_eq!(count("/tickets"), 2, "the ticket: 503, then 201");
    assert_eq!(count("/notes"), 1);
    let d = &deliveries(&app.db())[0];
    assert_eq!(d.attempts, 2);
}

#[tokio::test]
async fn ten_secondly_and_secondly_limits_wait_before_retrying() {
    let (mock, times) = hubspot().await;
    fail_first(
        &mock,
        &format!("{V}/notes"),
        ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "policyName": "TEN_SECONDLY_ROLLING"})),
        1,
    )
    .await;
    fail_first(
        &mock,
        &format!("{V}/tickets"),
        ResponseTemplate::new(429).set_body_json(json!({"status": "error", "message": "You have reached your secondly limit.", "policyName": "SECONDLY"})),
        1,
    )
    .await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    let started = Instant::now();
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app).await;
    // upsert, ticket 429 (SECONDLY: 1 s), ticket, note 429 (Retry-After: 1 s), note.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "did not wait: {:?}",
        started.elapsed()
    );
    assert_eq!(deliveries(&app.db())[0].attempts, 3);
    assert_eq!(
        times.lock().unwrap().len(),
        3,
        "the 429s were answered by the failing mocks"
    );
}

#[tokio::test]
async fn the_daily_limit_parks_the_destination_without_spending_attempts() {
    let (mock, _) = hubspot().await;
    fail_first(
        &mock,
        &format!("{V}/contacts/batch/upsert"),
        ResponseTemplate::new(429).set_body_json(json!({"status": "error", "message": "You have reached your daily limit.", "policyName": "DAILY"})),
        1,
    )
    .await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    requests_at(&mock, 1).await;
    eventually("a deferred attempt", Duration::from_secs(10), || async {
        let rows = deliveries(&app.db());
        !rows.is_empty() && !attempts(&app.db(), rows[0].id).is_empty()
    })
    .await;
    app.post_hook(conversation(2).to_string()).await;
    eventually(
        "the second conversation deferred too",
        Duration::from_secs(10),
        || async {
            let rows = deliveries(&app.db());
            rows.len() == 2 && !attempts(&app.db(), rows[1].id).is_empty()
        },
    )
    .await;
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        1,
        "a parked destination sends nothing"
    );
    for d in deliveries(&app.db()) {
        assert_eq!((d.state.as_str(), d.attempts), ("pending", 0), "{d:?}");
        assert!(d.last_error.unwrap().contains("daily"));
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "deskbridge_delivery_attempts_total{destination=\"crm\",outcome=\"deferred\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn validation_and_scope_errors_are_dead_with_hubspot_messages() {
    let cases = [
        (
            ResponseTemplate::new(400).set_body_json(json!({"status": "error", "category": "VALIDATION_ERROR",
                "message": "Property values were not valid: [{\"isValid\":false,\"message\":\"9 was not one of the allowed options\",\"error\":\"INVALID_OPTION\",\"name\":\"hs_pipeline_stage\"}]"})),
            "INVALID_OPTION",
        ),
        (
            ResponseTemplate::new(403).set_body_json(json!({"status": "error", "category": "MISSING_SCOPES",
                "message": "This app hasn't been granted all required scopes to make this call.",
                "context": {"requiredGranularScopes": ["tickets"]}})),
            "missing scopes: tickets",
        ),
    ];
    for (answer, words) in cases {
        let (mock, _) = hubspot().await;
        fail_first(&mock, &format!("{V}/tickets"), answer, 10).await;
        let app = TestApp::spawn(crm(&mock, "")).await;
        app.post_hook(conversation(1).to_string()).await;
        eventually("dead", Duration::from_secs(10), || async {
            deliveries(&app.db())
                .first()
                .is_some_and(|d| d.state == "dead")
        })
        .await;
        let d = &deliveries(&app.db())[0];
        assert_eq!(d.attempts, 1);
        assert!(
            d.last_error.as_deref().unwrap().contains(words),
            "{:?}",
            d.last_error
        );
        let log = attempts(&app.db(), d.id);
        assert!(log[0].2.as_deref().unwrap().contains(words));
    }
}

#[tokio::test]
async fn a_new_version_adds_a_note_to_the_same_contact_and_ticket() {
    let (mock, _) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    let v1 = sample("chat.json");
    app.post_hook(v1.to_string()).await;
    requests_at(&mock, 3).await;
    all_done(&app).await;
    let mut v2 = v1.clone();
    v2["messages"].as_array_mut().unwrap().push(json!({"type": "visitor", "name": "Dusan Kmet", "content": "Back again", "sentAt": 1427470900000_i64}));
    app.post_hook(v2.to_string()).await;
    let all = requests_at(&mock, 4).await;
    all_done(&app).await;
    assert_eq!(all.len(), 4, "only a note for the new version");
    let note = json_body(&all[3]);
    assert_eq!(all[3].url.path(), format!("{V}/notes"));
    assert_eq!(
        note["associations"],
        json!([assoc("501", 202), assoc("601", 228)])
    );
    let html = note["properties"]["hs_note_body"].as_str().unwrap();
    assert!(
        html.contains("The visitor came back") && html.contains("Back again"),
        "{html}"
    );
    assert!(!html.contains("Hello"), "only the new messages: {html}");
}

#[tokio::test]
async fn transcripts_over_the_note_limit_are_cut_with_a_notice() {
    let (mock, _) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "")).await;
    let mut c = conversation(9);
    c["messages"] = Value::Array(
        (0..5000)
            .map(|i| json!({"type": "visitor", "name": "Dusan Kmet", "from": "v", "content": format!("message {i} {}", "x".repeat(40)), "sentAt": 1427470439703_i64 + i, "triggeredBy": null}))
            .collect(),
    );
    app.post_hook(c.to_string()).await;
    let all = requests_at(&mock, 3).await;
    let html = json_body(&all[2])["properties"]["hs_note_body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        html.chars().count() <= 65_536,
        "{} characters",
        html.chars().count()
    );
    assert!(html.contains("the rest was cut"));
    assert!(html.contains("message 0 "));
}

#[tokio::test]
async fn requests_are_paced_under_the_configured_rate() {
    let (mock, times) = hubspot().await;
    let app = TestApp::spawn(crm(&mock, "    rate_limit: \"5/1s\"\n")).await;
    for i in 0..4 {
        app.post_hook(conversation(i).to_string()).await;
    }
    requests_at(&mock, 12).await;
    let mut times = times.lock().unwrap().clone();
    times.sort();
    // Requests are counted where the mock receives them, a little after the pacer let them
    // go: allow that much jitter (unpaced, all twelve would arrive within milliseconds).
    common::assert_at_most_per_window(&times, 5, Duration::from_millis(800));
    assert!(times[11].duration_since(times[0]) >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_ticket_with_an_unknown_outcome_is_searched_before_it_is_created_again() {
    let (mock, _) = hubspot().await;
    fail_first(
        &mock,
        &format!("{V}/tickets"),
        ResponseTemplate::new(201)
            .set_body_json(json!({"id": "999"}))
            .set_delay(Duration::from_secs(4)),
        1,
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/tickets/search")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total": 1, "results": [{"id": "999"}]})),
        )
        .with_priority(1)
        .mount(&mock)
        .await;
    let app = TestApp::spawn(crm(
        &mock,
        "    conversation_key_property: \"smartsupp_conversation\"\n",
    ))
    .await;
    app.post_hook(conversation(1).to_string()).await;
    all_done(&app).await;
    let all = mock.received_requests().await.unwrap();
    let creates: Vec<&Request> = all
        .iter()
        .filter(|r| r.url.path() == format!("{V}/tickets"))
        .collect();
    assert_eq!(creates.len(), 1, "the ticket was found, not created twice");
    assert_eq!(
        json_body(creates[0])["properties"]["smartsupp_conversation"],
        "208-1"
    );
    let search = all
        .iter()
        .find(|r| r.url.path().ends_with("/tickets/search"))
        .unwrap();
    assert_eq!(
        json_body(search)["filterGroups"][0]["filters"][0],
        json!({"propertyName": "smartsupp_conversation", "operator": "EQ", "value": "208-1"})
    );
    let note = all
        .iter()
        .find(|r| r.url.path().ends_with("/notes"))
        .unwrap();
    assert_eq!(json_body(note)["associations"][1], assoc("999", 228));
}

/// `render` and delivery come from one description of the sequence: the requests previewed
/// for a conversation are the ones sent, with the ids of earlier steps filled in.
#[tokio::test]
async fn the_preview_is_what_delivery_sends() {
    let (mock, _) = hubspot().await;
    let config = crm(&mock, "");
    let dir = tempfile::tempdir().unwrap();
    let path = config.write(dir.path());
    let (settings, text) = deskbridge::config::load(&path).unwrap();
    let prepared = deskbridge::app::prepare(settings, &path, &text).unwrap();
    let raw = sample("chat.json").to_string();
    let previewed =
        deskbridge::destinations::preview(prepared.destinations[0].as_ref(), raw.as_bytes(), None)
            .unwrap();

    let app = TestApp::spawn(config).await;
    app.post_hook(raw).await;
    let sent = requests_at(&mock, 3).await;
    all_done(&app).await;
    assert_eq!(previewed.len(), sent.len());
    for (preview, sent) in previewed.iter().zip(&sent) {
        assert_eq!(preview.method, sent.method.as_str());
        assert_eq!(preview.url, format!("{}{}", mock.uri(), sent.url.path()));
        let filled = preview
            .body
            .replace("<contact id>", "501")
            .replace("<ticket id>", "601");
        let filled: Value = serde_json::from_str(&filled).unwrap();
        assert_eq!(filled, json_body(sent), "{}", preview.url);
    }
}
