//! The Zendesk destination against a mock Zendesk on port 0; every body it sends is checked
//! against Zendesk's published API description (tests/specs/zendesk).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
use common::openapi;

use common::{
    attempts, conversation, deliveries, eventually, header, json_body, requests_at, sample,
    TestApp, TestConfig,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn spec() -> openapi::Spec {
    openapi::Spec::load(
        &common::repo().join("tests/specs/zendesk/zendesk-tickets-users.patched.oas.yaml"),
    )
}

/// Checks a request body against the spec: create and update strictly (no undescribed
/// properties), import loosely (the description lists only some of its properties).
fn assert_valid(spec: &openapi::Spec, r: &Request) {
    let body: Value = serde_json::from_slice(&r.body).expect("the body is JSON");
    let (schema, strict) = match (r.method.as_str(), r.url.path()) {
        ("POST", "/api/v2/tickets") => (spec.request_schema("/api/v2/tickets", "post"), true),
        ("POST", "/api/v2/imports/tickets") => (
            spec.request_schema("/api/v2/imports/tickets", "post"),
            false,
        ),
        ("PUT", _) => (
            spec.request_schema("/api/v2/tickets/{ticket_id}", "put"),
            true,
        ),
        other => panic!("unexpected request {other:?}"),
    };
    let errors = spec.check(schema, &body, strict);
    assert!(
        errors.is_empty(),
        "{} {} breaks the spec: {errors:#?}\n{body:#}",
        r.method,
        r.url.path()
    );
}

/// Answers ticket creation with 201 and a new id each time.
struct Created(AtomicI64);

impl Respond for Created {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let id = self.0.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(201).set_body_json(json!({"ticket": {"id": id, "status": "new"}}))
    }
}

async fn zendesk() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(Created(AtomicI64::new(101)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v2/imports/tickets"))
        .respond_with(Created(AtomicI64::new(901)))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ticket": {"id": 101}})))
        .mount(&server)
        .await;
    server
}

fn helpdesk(mock: &MockServer, extra: &str) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    time_zone: \"Europe/Prague\"\n{}",
        mock.uri(),
        if extra.contains("oauth_token") {
            extra.to_string()
        } else {
            format!("    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n{extra}")
        }
    ))
}

#[tokio::test]
async fn each_kind_becomes_a_valid_ticket_with_basic_auth() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let mut old_format = sample("chat-2015-format.json");
    old_format["channel"]["id"] = json!(66);
    for c in [
        sample("chat.json"),
        sample("missed.json"),
        sample("offline.json"),
        sample("anonymous.json"),
        old_format,
    ] {
        assert_eq!(app.post_hook(c.to_string()).await.status(), 200);
    }
    let all = requests_at(&mock, 5).await;
    let spec = spec();
    let basic = format!(
        "Basic {}",
        base64_encode("agent@acme.example/token:tok-123")
    );
    let mut subjects = Vec::new();
    for r in &all {
        assert_eq!(r.url.path(), "/api/v2/tickets");
        assert_eq!(header(r, "authorization"), basic);
        assert!(header(r, "idempotency-key").starts_with("msg_"));
        assert_valid(&spec, r);
        let t = &json_body(r)["ticket"];
        subjects.push(t["subject"].as_str().unwrap().to_string());
        assert_eq!(t["comment"]["public"], false);
        assert!(t["tags"].as_array().unwrap().contains(&json!("smartsupp")));
        let html = t["comment"]["html_body"].as_str().unwrap();
        assert!(
            html.contains("<h3>Visitor</h3>"),
            "context is part of the internal comment"
        );
        match t["external_id"].as_str().unwrap() {
            "208-55039" => {
                assert_eq!(
                    t["requester"],
                    json!({"name": "Dusan Kmet", "email": "dusan@domain.com"})
                );
                assert_eq!(t["priority"], "normal");
                assert!(t["tags"].as_array().unwrap().contains(&json!("rating_5")));
                assert!(html.contains("<em>John Doe joined</em>"), "{html}");
                assert!(html.contains("<em>Visitor closed the chat</em>"), "{html}");
                assert!(html.contains("trigger &quot;Test Trigger&quot;"), "{html}");
                assert!(
                    html.contains("<small>16:33:59</small>"),
                    "times in the configured zone: {html}"
                );
                assert!(html.contains("POST Hook · Smartsupp"), "{html}");
            }
            "208-55040" => {
                assert_eq!(t["priority"], "high");
                assert!(t["tags"].as_array().unwrap().contains(&json!("missed")));
            }
            "208-55042" => {
                assert!(
                    t.get("requester").is_none(),
                    "no requester without an email: {t:#}"
                );
                assert!(html.contains("Visitor #27671"));
            }
            _ => {}
        }
    }
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "Chat with Dusan Kmet",
            "Chat with Dusan Kmet",
            "Chat with Visitor #27671",
            "Missed chat from Dusan Kmet",
            "Offline message from Jane Roe",
        ]
    );
    eventually("all done", Duration::from_secs(5), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;
    let results = common::texts(&app.db(), "SELECT result FROM deliveries");
    for result in results {
        let r: Value = serde_json::from_str(&result).unwrap();
        let id = r["ticket_id"].as_i64().unwrap();
        assert_eq!(r["url"], format!("{}/agent/tickets/{id}", mock.uri()));
    }
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn an_oauth_token_is_sent_as_bearer() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "    oauth_token: \"oauth-xyz\"\n")).await;
    app.post_hook(conversation(1).to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    assert_eq!(header(r, "authorization"), "Bearer oauth-xyz");
}

#[tokio::test]
async fn a_five_thousand_message_chat_is_one_valid_ticket() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let mut c = conversation(5000);
    c["messages"] = Value::Array(
        (0..5000)
            .map(|i| json!({"type": "visitor", "name": "Dusan Kmet", "from": "v", "content": format!("line {i}"), "sentAt": 1427470439703_i64 + i, "triggeredBy": null}))
            .collect(),
    );
    app.post_hook(c.to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    assert_valid(&spec(), r);
    let html = json_body(r)["ticket"]["comment"]["html_body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(html.contains("line 0</p>") && html.contains("line 4999</p>"));
}

/// Answers with each template in turn (the last repeats), recording when each request came.
struct Sequence(Vec<ResponseTemplate>, Arc<Mutex<Vec<Instant>>>);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.1.lock().unwrap();
        seen.push(Instant::now());
        self.0[(seen.len() - 1).min(self.0.len() - 1)].clone()
    }
}

async fn sequence(list: Vec<ResponseTemplate>) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(Sequence(list, seen.clone()))
        .mount(&server)
        .await;
    (server, seen)
}

fn created(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"ticket": {"id": id}}))
}

async fn state_of_first(app: &TestApp, state: &'static str) -> common::DeliveryRow {
    eventually(
        &format!("delivery {state}"),
        Duration::from_secs(15),
        || async {
            deliveries(&app.db())
                .first()
                .is_some_and(|d| d.state == state)
        },
    )
    .await;
    deliveries(&app.db()).remove(0)
}

#[tokio::test]
async fn retries_keep_the_idempotency_key() {
    let (mock, _) = sequence(vec![
        ResponseTemplate::new(503),
        ResponseTemplate::new(500),
        created(7),
    ])
    .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    let done = state_of_first(&app, "done").await;
    assert_eq!(done.attempts, 3);
    let keys: Vec<String> = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| header(r, "idempotency-key"))
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
        "{keys:?}"
    );
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after_or_back_off_without_it() {
    let (mock, seen) = sequence(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_string("Too Many Requests"),
        ResponseTemplate::new(429).set_body_string("Too Many Requests"),
        created(8),
    ])
    .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    let done = state_of_first(&app, "done").await;
    assert_eq!(done.attempts, 3);
    let times = seen.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    let log = attempts(&app.db(), done.id);
    assert_eq!(log[0].1, Some(429));
    assert!(log[0].2.as_deref().unwrap().contains("rate limit"));
}

#[tokio::test]
async fn the_destination_pauses_while_no_requests_remain() {
    let (mock, seen) = sequence(vec![
        created(1)
            .insert_header("X-Rate-Limit-Remaining", "0")
            .insert_header("Retry-After", "1"),
        created(2),
    ])
    .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    requests_at(&mock, 1).await;
    app.post_hook(conversation(2).to_string()).await;
    requests_at(&mock, 2).await;
    let times = seen.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "the second ticket did not wait"
    );
}

#[tokio::test]
async fn validation_errors_are_dead_with_zendesk_details() {
    let details = json!({"error": "RecordInvalid", "description": "Record validation errors",
        "details": {"requester": [{"description": "Requester: Email is invalid", "error": "InvalidValue"}]}});
    let (mock, _) = sequence(vec![ResponseTemplate::new(422).set_body_json(details)]).await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    let dead = state_of_first(&app, "dead").await;
    assert_eq!(dead.attempts, 1);
    let error = dead.last_error.unwrap();
    assert!(
        error.contains("422") && error.contains("requester: Requester: Email is invalid"),
        "{error}"
    );
}

#[tokio::test]
async fn a_permission_failure_says_what_to_check() {
    let (mock, _) = sequence(vec![
        ResponseTemplate::new(403).set_body_json(json!({"error": "Forbidden"}))
    ])
    .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    let dead = state_of_first(&app, "dead").await;
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("denied permission"),
        "{:?}",
        dead.last_error
    );
}

#[tokio::test]
async fn refused_credentials_pause_the_destination_without_spending_attempts() {
    let (mock, _) = sequence(vec![
        ResponseTemplate::new(401).set_body_json(json!({"error": "Couldn't authenticate you"}))
    ])
    .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    app.post_hook(conversation(1).to_string()).await;
    common::paused(&app, "helpdesk").await;
    // The breaker hears the outcome before it is committed: wait for the record too.
    eventually("the refusal recorded", Duration::from_secs(10), || async {
        deliveries(&app.db())[0].last_error.is_some()
    })
    .await;
    let d = deliveries(&app.db()).remove(0);
    assert_eq!((d.state.as_str(), d.attempts), ("pending", 0), "{d:?}");
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("check auth (OAuth), or email and api_token"),
        "{:?}",
        d.last_error
    );
}

#[tokio::test]
async fn a_new_version_comments_and_a_closed_ticket_gets_a_follow_up() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(Created(AtomicI64::new(101)))
        .mount(&mock)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v2/tickets/101"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ticket": {"id": 101}})))
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v2/tickets/101"))
        .respond_with(ResponseTemplate::new(422).set_body_json(
            json!({"error": "RecordInvalid", "description": "Record validation errors",
            "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}),
        ))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let spec = spec();
    let v1 = sample("chat.json");
    app.post_hook(v1.to_string()).await;
    requests_at(&mock, 1).await;
    eventually("v1 done", Duration::from_secs(5), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;

    let mut v2 = v1.clone();
    v2["messages"].as_array_mut().unwrap().push(json!({"type": "visitor", "name": "Dusan Kmet", "content": "One more <question>", "sentAt": 1427470600000_i64}));
    app.post_hook(v2.to_string()).await;
    let all = requests_at(&mock, 2).await;
    let put = &all[1];
    assert_eq!(
        (put.method.as_str(), put.url.path()),
        ("PUT", "/api/v2/tickets/101")
    );
    assert_valid(&spec, put);
    let html = json_body(put)["ticket"]["comment"]["html_body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(html.contains("One more &lt;question&gt;"), "{html}");
    assert!(!html.contains("Hello"), "only the new messages: {html}");

    let mut v3 = v2.clone();
    v3["messages"].as_array_mut().unwrap().push(json!({"type": "visitor", "name": "Dusan Kmet", "content": "Still there?", "sentAt": 1427470700000_i64}));
    app.post_hook(v3.to_string()).await;
    let all = requests_at(&mock, 4).await;
    let follow_up = all
        .iter()
        .rev()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    assert_valid(&spec, follow_up);
    let t = &json_body(follow_up)["ticket"];
    assert_eq!(t["via_followup_source_id"], 101);
    assert_eq!(t["external_id"], "208-55039");
    eventually("v3 done", Duration::from_secs(5), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;
}

#[tokio::test]
async fn import_mode_keeps_the_chat_times_and_one_comment_per_message() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "    mode: import\n")).await;
    app.post_hook(sample("chat.json").to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    assert_eq!(r.url.path(), "/api/v2/imports/tickets");
    assert_valid(&spec(), r);
    let t = &json_body(r)["ticket"];
    assert_eq!(t["created_at"], "2015-03-27T15:33:59.703Z");
    let comments = t["comments"].as_array().unwrap();
    assert_eq!(comments.len(), 6 + 1, "one per message, then the context");
    assert_eq!(comments[0]["created_at"], "2015-03-27T15:33:59+00:00");
    assert!(comments[1]["html_body"]
        .as_str()
        .unwrap()
        .contains("John Doe joined"));
    assert_eq!(comments[6]["public"], false);
}

#[tokio::test]
async fn an_unknown_outcome_past_the_window_is_looked_up_before_creating_again() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(created(555).set_delay(Duration::from_secs(4)))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/tickets"))
        .and(query_param("external_id", "208-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"tickets": [{"id": 555}], "count": 1})),
        )
        .mount(&mock)
        .await;
    let app = TestApp::spawn(helpdesk(&mock, "    idempotency_window: \"0ms\"\n")).await;
    app.post_hook(conversation(1).to_string()).await;
    let done = state_of_first(&app, "done").await;
    assert_eq!(done.attempts, 2);
    let all = mock.received_requests().await.unwrap();
    assert_eq!(
        all.iter().filter(|r| r.method.as_str() == "POST").count(),
        1,
        "no second create"
    );
    let result = common::texts(&app.db(), "SELECT result FROM deliveries").remove(0);
    assert_eq!(
        serde_json::from_str::<Value>(&result).unwrap()["ticket_id"],
        555
    );
}

#[test]
fn the_spec_check_refuses_invalid_bodies() {
    let spec = spec();
    let schema = spec.request_schema("/api/v2/tickets", "post");
    let good = json!({"ticket": {"subject": "s", "comment": {"html_body": "<p>x</p>", "public": false}, "tags": ["a"]}});
    assert!(spec.check(schema, &good, true).is_empty());
    for bad in [
        json!({"ticket": {"subject": "s"}}),
        json!({"ticket": {"comment": {"body": "x"}, "priority": "soon"}}),
        json!({"ticket": {"comment": {"body": "x"}, "tags": "a,b"}}),
        json!({"ticket": {"comment": {"body": "x"}, "requester": {"name": "no email"}}}),
        json!({"ticket": {"comment": {"body": "x"}, "extrnal_id": "k"}}),
        json!({"tickets": {}}),
    ] {
        assert!(!spec.check(schema, &bad, true).is_empty(), "accepted {bad}");
    }
}

#[tokio::test]
async fn odd_visitor_data_still_makes_a_ticket() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let mut c = conversation(3);
    c["paths"] = json!([{"url": "https://shop.example/cart"}, {"title": null, "url": "https://shop.example/"}]);
    c["visitor"]["email"] = json!("not an email");
    c["visitor"]["variables"] = json!({"plan": "gold", "seats": {"value": 3}});
    app.post_hook(c.to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    assert_valid(&spec(), r);
    let t = &json_body(r)["ticket"];
    assert!(
        t.get("requester").is_none(),
        "an unusable email makes no requester"
    );
    let html = t["comment"]["html_body"].as_str().unwrap();
    assert!(
        html.contains(r#"<a href="https://shop.example/cart">https://shop.example/cart</a>"#),
        "{html}"
    );
    assert!(
        html.contains("<strong>plan:</strong> gold") && html.contains("<strong>seats:</strong> 3"),
        "{html}"
    );
}

#[tokio::test]
async fn versions_reach_zendesk_in_order() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2/tickets"))
        .respond_with(created(101).set_delay(Duration::from_millis(800)))
        .mount(&mock)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/v2/tickets/101"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ticket": {"id": 101}})))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let v1 = conversation(4);
    let mut v2 = v1.clone();
    v2["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "visitor", "content": "again", "sentAt": 1427470999000_i64}));
    app.post_hook(v1.to_string()).await;
    app.post_hook(v2.to_string()).await;
    let all = requests_at(&mock, 2).await;
    eventually("both done", Duration::from_secs(10), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;
    let methods: Vec<String> = all.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(
        methods,
        ["POST", "PUT"],
        "the second version waited for the first"
    );
}

#[tokio::test]
async fn only_web_addresses_of_pages_visited_become_links() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, "")).await;
    let mut c = conversation(4);
    c["paths"] = json!([
        {"url": "https://shop.example/cart?a=1&b=2", "title": "Cart"},
        {"url": "HTTP://Shop.Example/up"},
        {"url": "javascript:alert(1)", "title": "Offer"},
        {"url": " JavaScript:alert(2)"},
        {"url": "java\tscript:alert(3)"},
        {"url": "data:text/html,<script>alert(4)</script>"},
        {"url": "//evil.example/protocol-relative"},
        {"url": "/relative/path"},
        {"url": "vbscript:msgbox(5)"},
    ]);
    app.post_hook(c.to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    let t = &json_body(r)["ticket"];
    let html = t["comment"]["html_body"].as_str().unwrap();
    let hrefs: Vec<String> = html
        .split("href=\"")
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap()
                .replace("&#x3D;", "=")
                .replace("&amp;", "&")
        })
        .collect();
    assert_eq!(
        hrefs,
        vec![
            "https://shop.example/cart?a=1&b=2",
            "http://shop.example/up"
        ],
        "{html}"
    );
    for shown in [
        "Offer: javascript:alert(1)",
        "JavaScript:alert(2)",
        "data:text/html,&lt;script&gt;alert(4)&lt;/script&gt;",
        "//evil.example/protocol-relative",
        "/relative/path",
        "vbscript:msgbox(5)",
    ] {
        assert!(html.contains(shown), "{shown} is shown as text:\n{html}");
    }
    assert!(!html.contains("<script>"), "{html}");
}
