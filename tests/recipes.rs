//! The shipped recipes (Slack, Teams, Freshdesk, Pipedrive, Help Scout): their templates
//! render bodies that hold to each service's request description (`tests/specs/<service>/`)
//! for every sample and for hostile visitor text, and each recipe, run by the real server
//! against a mock of its service on port 0, delivers a first version, an anonymous visitor
//! and a later version, waits out a 429 and dead-letters a permanent refusal with the
//! service's own words.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::openapi;

use deskbridge::render::Renderer;
use deskbridge::smartsupp::{self, Stored};
use serde_json::{json, Value};

/// The JSON Schema `tests/specs/{file}`.
fn spec(file: &str) -> openapi::Spec {
    openapi::Spec::load_json(&common::repo().join("tests/specs").join(file))
}

/// Fails unless `body` holds to `tests/specs/{file}` (no undescribed properties).
fn assert_schema(file: &str, body: &Value) {
    let spec = spec(file);
    let errors = spec.check(spec.root(), body, true);
    assert!(
        errors.is_empty(),
        "body breaks {file}: {errors:#?}\n{body:#}"
    );
}

/// A visitor whose every field tries to break out of JSON, HTML, Slack mrkdwn or Markdown.
fn hostile() -> Value {
    let mut c = common::sample("chat.json");
    c["channel"]["id"] = json!(66001);
    c["channel"]["ratingDesc"] = json!("\"great\" </script> <!channel>");
    c["visitor"]["name"] =
        json!("Eve \"Q\" <b>Smith</b> <!channel> [x](https://evil.example) *bold* 😀");
    c["visitor"]["email"] = json!("eve@example.com");
    c["visitor"]["note"] = json!("Line 1\nC:\\temp & <script>\u{7}");
    c["messages"].as_array_mut().unwrap().push(json!({
        "type": "visitor", "content": "<@U123> <!here> [click](javascript:alert(1)) {{x}} \"q\" \\ \u{1}",
        "sentAt": 1427470480000_i64
    }));
    c
}

/// The documented example with `n` messages of 300 characters each.
fn long_chat(n: usize) -> Value {
    let mut c = common::sample("chat.json");
    c["channel"]["id"] = json!(66002);
    c["messages"] = (0..n)
        .map(|i| {
            json!({"type": if i % 2 == 0 { "visitor" } else { "agent" }, "name": "Dusan Kmet",
                "content": format!("{i:05} {}", "ž".repeat(294)), "sentAt": 1427470439703_i64 + i as i64 * 1000})
        })
        .collect();
    c
}

/// Every conversation the template checks render: the five samples, a hostile visitor and
/// a chat far longer than any message limit.
fn conversations() -> Vec<Value> {
    let mut all: Vec<Value> = ["chat.json", "missed.json", "offline.json", "anonymous.json"]
        .iter()
        .map(|s| common::sample(s))
        .collect();
    let mut old = common::sample("chat-2015-format.json");
    old["channel"]["id"] = json!(66000);
    all.extend([old, hostile(), long_chat(300)]);
    all
}

/// The settings each recipe's templates see as `destination` (non-secret ones only).
fn destination(recipe: &str) -> Value {
    let tz = "Europe/Prague";
    match recipe {
        "slack" | "teams" => json!({"name": recipe, "dashboard_url": "https://bridge.example",
            "last_messages": 20, "time_zone": tz}),
        "freshdesk" => {
            json!({"name": recipe, "domain": "acme", "base_url": "https://acme.freshdesk.com",
            "priority": {"chat": 1, "missed": 3, "offline": 2}, "ticket_type": "Question",
            "group_id": 7, "tags": ["vip"], "time_zone": tz})
        }
        "pipedrive" => json!({"name": recipe, "base_url": "https://api.pipedrive.com",
            "app_url": "https://app.pipedrive.com", "owner_id": 5, "time_zone": tz}),
        "helpscout" => json!({"name": recipe, "base_url": "https://api.helpscout.net",
            "app_url": "https://secure.helpscout.net", "mailbox_id": 85, "status": "active",
            "assign_to": null, "tags": ["vip"], "time_zone": tz}),
        other => panic!("no recipe {other}"),
    }
}

/// The template context of `hook` as version `version`, with `extra` keys (captures,
/// previous, update) beside the documented ones.
fn context(hook: &Value, version: i64, recipe: &str, extra: Value) -> handlebars::Context {
    let stored = Stored {
        key: format!(
            "{}-{}",
            hook["accountId"].as_i64().unwrap_or(0),
            hook["channel"]["id"]
        ),
        version,
        received_at: 1_764_000_000_000,
    };
    let mut ctx = smartsupp::context(hook.to_string().as_bytes(), &stored).unwrap();
    ctx["destination"] = destination(recipe);
    for (k, v) in extra.as_object().unwrap() {
        ctx[k] = v.clone();
    }
    handlebars::Context::from(ctx)
}

fn render(r: &Renderer, name: &str, ctx: &handlebars::Context) -> Value {
    let text = r
        .render(name, ctx)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
}

fn renderer() -> Renderer {
    Renderer::load(&common::repo().join("templates")).unwrap()
}

/// For a later version: the previous version's last message and one new message.
fn later(hook: &Value) -> (Value, Value) {
    let mut v2 = hook.clone();
    let new = json!({"type": "visitor", "name": "Dusan Kmet", "content": "One more <question> & \"quote\"", "sentAt": 1427470600000_i64});
    v2["messages"].as_array_mut().unwrap().push(new.clone());
    (v2, json!({"messages": [new]}))
}

#[test]
fn slack_messages_stay_within_block_kit_limits() {
    let r = renderer();
    for hook in conversations() {
        let body = render(
            &r,
            "slack/message.json.hbs",
            &context(&hook, 1, "slack", json!({})),
        );
        assert_schema("slack/message.schema.json", &body);
        let text = body.to_string();
        assert!(
            !text.contains("\"mrkdwn\""),
            "visitor text only as plain_text"
        );
        if hook["channel"]["id"] == 66002 {
            let transcript = body["blocks"][2]["text"]["text"].as_str().unwrap();
            assert!(transcript.ends_with("(Cut here: Slack shows at most 3,000 characters.)"));
            assert!(
                transcript.contains("00280 "),
                "the last messages: {transcript}"
            );
            assert!(!transcript.contains("00279 "), "only the last 20 messages");
            assert!(text.contains("Showing the last 20 of 300 messages."));
        }
        let (v2, update) = later(&hook);
        let body = render(
            &r,
            "slack/update.json.hbs",
            &context(&v2, 2, "slack", json!({"update": update})),
        );
        assert_schema("slack/message.schema.json", &body);
        let transcript = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(transcript.contains("One more <question>"), "{transcript}");
        assert!(!transcript.contains("Hello"), "only the new messages");
    }
    let body = render(
        &r,
        "slack/message.json.hbs",
        &context(&common::sample("chat.json"), 1, "slack", json!({})),
    );
    let actions = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap();
    assert_eq!(
        actions["elements"][0]["url"],
        "https://bridge.example/admin/conversations/208-55039"
    );
    assert_eq!(body["blocks"][0]["text"]["text"], "Chat with Dusan Kmet");
}

#[test]
fn teams_cards_are_adaptive_cards_without_markdown_from_visitors() {
    let r = renderer();
    for hook in conversations() {
        let body = render(
            &r,
            "teams/card.json.hbs",
            &context(&hook, 1, "teams", json!({})),
        );
        assert_schema("teams/message.schema.json", &body);
        assert!(
            body.to_string().len() < 28 * 1024,
            "within Teams' 28 KB: {}",
            body.to_string().len()
        );
        let card = &body["attachments"][0]["content"];
        for element in card["body"].as_array().unwrap() {
            if element["type"] == "TextBlock" {
                let text = element["text"].as_str().unwrap();
                assert!(
                    !text.contains("evil") && !text.contains("Eve"),
                    "visitor text in a Markdown TextBlock: {text}"
                );
            }
        }
        let (v2, update) = later(&hook);
        let body = render(
            &r,
            "teams/update.json.hbs",
            &context(&v2, 2, "teams", json!({"update": update})),
        );
        assert_schema("teams/message.schema.json", &body);
        assert!(body.to_string().contains("One more <question>"));
    }
}

#[test]
fn freshdesk_tickets_have_a_requester_with_or_without_an_email() {
    let r = renderer();
    for hook in conversations() {
        let body = render(
            &r,
            "freshdesk/ticket.json.hbs",
            &context(&hook, 1, "freshdesk", json!({})),
        );
        assert_schema("freshdesk/ticket.schema.json", &body);
        assert_eq!(
            (body["source"].clone(), body["status"].clone()),
            (json!(7), json!(2))
        );
        if hook["visitor"]["email"].is_null() {
            assert_eq!(body["unique_external_id"], "smartsupp-visitor-27671");
            assert_eq!(body["name"], "Visitor #27671");
            assert!(body.get("email").is_none());
        }
        let (v2, update) = later(&hook);
        let body = render(
            &r,
            "freshdesk/note.json.hbs",
            &context(
                &v2,
                2,
                "freshdesk",
                json!({"previous": {"ticket_id": 101}, "update": update}),
            ),
        );
        assert_schema("freshdesk/note.schema.json", &body);
        assert!(body["body"]
            .as_str()
            .unwrap()
            .contains("One more &lt;question&gt;"));
    }
    let missed = render(
        &r,
        "freshdesk/ticket.json.hbs",
        &context(&common::sample("missed.json"), 1, "freshdesk", json!({})),
    );
    assert_eq!(missed["priority"], 3);
    let description = missed["description"].as_str().unwrap();
    assert!(
        description.contains("<strong>Started:</strong> 2015-03-27 16:33 CET"),
        "the context's times in the time_zone setting: {description}"
    );
    assert_eq!(missed["tags"], json!(["smartsupp", "missed", "vip"]));
}

#[test]
fn pipedrive_bodies_follow_its_openapi_description() {
    let r = renderer();
    for hook in conversations() {
        let ctx = context(
            &hook,
            1,
            "pipedrive",
            json!({"captures": {"new_person_id": 11, "lead_id": "adf21080-0e10-11eb-879b-05d71fb426ec"}}),
        );
        let person = render(&r, "pipedrive/person.json.hbs", &ctx);
        assert_schema("pipedrive/add-person.schema.json", &person);
        assert_eq!(
            person.get("emails").is_some(),
            !hook["visitor"]["email"].is_null()
        );
        let lead = render(&r, "pipedrive/lead.json.hbs", &ctx);
        assert_schema("pipedrive/add-lead.schema.json", &lead);
        assert_eq!(lead["person_id"], 11);
        let note = render(&r, "pipedrive/note.json.hbs", &ctx);
        assert_schema("pipedrive/add-note.schema.json", &note);
        let found = context(
            &hook,
            1,
            "pipedrive",
            json!({"captures": {"found_person_id": 9}}),
        );
        assert_eq!(
            render(&r, "pipedrive/lead.json.hbs", &found)["person_id"],
            9
        );
        let (v2, update) = later(&hook);
        let note = render(
            &r,
            "pipedrive/update.json.hbs",
            &context(
                &v2,
                2,
                "pipedrive",
                json!({"previous": {"lead_id": "adf2"}, "update": update}),
            ),
        );
        assert_schema("pipedrive/add-note.schema.json", &note);
        assert_eq!(note["lead_id"], "adf2");
    }
}

#[test]
fn help_scout_conversations_name_a_customer_with_or_without_an_email() {
    let r = renderer();
    for hook in conversations() {
        let ctx = context(
            &hook,
            1,
            "helpscout",
            json!({"captures": {"customer_id": "321"}}),
        );
        let customer = render(&r, "helpscout/customer.json.hbs", &ctx);
        assert_schema("helpscout/customer.schema.json", &customer);
        let body = render(&r, "helpscout/conversation.json.hbs", &ctx);
        assert_schema("helpscout/conversation.schema.json", &body);
        assert_eq!(
            (body["type"].clone(), body["imported"].clone()),
            (json!("chat"), json!(true))
        );
        assert_eq!(body["threads"][0]["type"], "chat");
        if hook["visitor"]["email"].is_null() {
            assert_eq!(body["customer"], json!({"id": 321}));
        } else {
            assert!(body["customer"]["email"].is_string());
        }
        let (v2, update) = later(&hook);
        let chat = render(
            &r,
            "helpscout/chat.json.hbs",
            &context(
                &v2,
                2,
                "helpscout",
                json!({"previous": {"conversation_id": "7", "customer_id": "321"}, "update": update}),
            ),
        );
        assert_schema("helpscout/chat.schema.json", &chat);
        assert!(chat["text"]
            .as_str()
            .unwrap()
            .contains("One more &lt;question&gt;"));
    }
}

#[test]
fn the_schemas_refuse_what_the_services_refuse() {
    let slack = json!({"text": "x", "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "a".repeat(3001)}}]});
    let s = spec("slack/message.schema.json");
    assert!(!s.check(s.root(), &slack, true).is_empty());
    let blocks: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
    assert!(!s
        .check(s.root(), &json!({"text": "x", "blocks": blocks}), true)
        .is_empty());
    let s = spec("freshdesk/ticket.schema.json");
    let no_requester =
        json!({"subject": "s", "description": "d", "status": 2, "priority": 1, "source": 7});
    assert!(!s.check(s.root(), &no_requester, true).is_empty());
    let s = spec("helpscout/conversation.schema.json");
    let long_name = json!({"subject": "s", "mailboxId": 1, "type": "chat", "status": "active",
        "customer": {"email": "a@b.example", "firstName": "x".repeat(41)},
        "threads": [{"type": "chat", "text": "t"}]});
    assert!(!s.check(s.root(), &long_name, true).is_empty());
    let s = spec("pipedrive/add-lead.schema.json");
    assert!(!s.check(s.root(), &json!({"title": "t"}), true).is_empty());
    assert!(!s
        .check(s.root(), &json!({"title": "t", "person_id": "11"}), true)
        .is_empty());
}

// ---------------------------------------------------------------------------------------
// Contract tests: each shipped recipe run by the real server against a mock of its service.
// ---------------------------------------------------------------------------------------

use common::{attempts, deliveries, eventually, header, requests_at, sample, TestApp, TestConfig};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Answers with each response in turn (the last repeats), recording when each request came.
#[derive(Clone)]
struct Sequence(Vec<ResponseTemplate>, Arc<Mutex<Vec<Instant>>>);

impl Sequence {
    fn new(list: Vec<ResponseTemplate>) -> Self {
        Self(list, Arc::new(Mutex::new(Vec::new())))
    }

    fn times(&self) -> Vec<Instant> {
        self.1.lock().unwrap().clone()
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.1.lock().unwrap();
        seen.push(Instant::now());
        self.0[(seen.len() - 1).min(self.0.len() - 1)].clone()
    }
}

/// Mounts `responder` for `verb` requests whose path matches the regular expression `at`.
async fn answer(mock: &MockServer, verb: &str, at: &str, responder: impl Respond + 'static) {
    Mock::given(method(verb))
        .and(path_regex(at))
        .respond_with(responder)
        .mount(mock)
        .await;
}

/// A destination named `desk` of the given YAML (indented under it).
fn desk(yaml: &str) -> TestConfig {
    TestConfig::with_destinations(&format!("  desk:\n{yaml}"))
}

/// Waits until the store holds `n` deliveries, all in `state`.
async fn all_in(app: &TestApp, n: usize, state: &'static str) -> Vec<common::DeliveryRow> {
    eventually(
        &format!("{n} deliveries {state}"),
        Duration::from_secs(20),
        || async {
            let rows = deliveries(&app.db());
            rows.len() == n && rows.iter().all(|d| d.state == state)
        },
    )
    .await;
    deliveries(&app.db())
}

/// The requests the mock received for `verb` on `at` (an exact path).
async fn received(mock: &MockServer, verb: &str, at: &str) -> Vec<Request> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == at)
        .collect()
}

/// The JSON body of `r`, checked against `tests/specs/{schema}`.
fn valid_body(r: &Request, schema: &str) -> Value {
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{} {}: body is not JSON: {e}", r.method, r.url));
    assert_schema(schema, &body);
    assert!(
        header(r, "content-type").starts_with("application/json"),
        "{}",
        header(r, "content-type")
    );
    body
}

/// The documented example as a later version: one more message from the visitor.
fn second_version(hook: &Value) -> Value {
    later(hook).0
}

/// Fails unless the dead delivery's record quotes `words` (its last error and its attempt log).
fn assert_dead_with(app: &TestApp, row: &common::DeliveryRow, words: &str) {
    let error = row.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(words),
        "last error {error:?} lacks {words:?}"
    );
    let log = attempts(&app.db(), row.id);
    assert!(
        log.iter()
            .any(|(_, _, e)| e.as_deref().unwrap_or("").contains(words)),
        "attempt log {log:?} lacks {words:?}"
    );
}

/// Posts the documented conversation, whose first answer asks to wait (`header`, a second or
/// more): delivered on the second attempt, no sooner than the wait.
async fn waits_out_the_first_answer(app: &TestApp, answers: &Sequence, header: &str) {
    app.post_hook(sample("chat.json").to_string()).await;
    let done = all_in(app, 1, "done").await.remove(0);
    assert_eq!(done.attempts, 2);
    let times = answers.times();
    assert!(
        times[1] - times[0] >= Duration::from_secs(1),
        "{header} not honoured"
    );
}

/// Posts the sample `file`, which the destination refuses for good: the delivery is dead and
/// its record quotes `words`.
async fn dead_with(app: &TestApp, file: &str, words: &str) -> common::DeliveryRow {
    app.post_hook(sample(file).to_string()).await;
    eventually(
        "the refused delivery dead",
        Duration::from_secs(20),
        || async { deliveries(&app.db()).iter().any(|d| d.state == "dead") },
    )
    .await;
    let dead = deliveries(&app.db())
        .into_iter()
        .find(|d| d.state == "dead")
        .unwrap();
    assert_dead_with(app, &dead, words);
    dead
}

// --- Slack -------------------------------------------------------------------------------

fn slack(mock: &MockServer) -> TestConfig {
    desk(&format!(
        "    kind: slack\n    url: \"{}/services/T1/B2/secret\"\n    time_zone: \"Europe/Prague\"\n    dashboard_url: \"https://bridge.example\"\n",
        mock.uri()
    ))
}

#[tokio::test]
async fn slack_posts_a_message_per_version_and_one_without_an_email() {
    let mock = MockServer::start().await;
    answer(
        &mock,
        "POST",
        "^/services/T1/B2/secret$",
        ResponseTemplate::new(200).set_body_string("ok"),
    )
    .await;
    let app = TestApp::spawn(slack(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    all_in(&app, 2, "done").await;
    let first = requests_at(&mock, 2).await;
    let mut headers = Vec::new();
    for r in &first {
        let body = valid_body(r, "slack/message.schema.json");
        headers.push(
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    headers.sort();
    assert_eq!(
        headers,
        ["Chat with Dusan Kmet", "Chat with Visitor #27671"]
    );

    app.post_hook(second_version(&sample("chat.json")).to_string())
        .await;
    all_in(&app, 3, "done").await;
    let all = requests_at(&mock, 3).await;
    let update = valid_body(&all[2], "slack/message.schema.json");
    let text = update.to_string();
    assert!(
        text.contains("came back") && text.contains("One more <question>"),
        "{text}"
    );
}

#[tokio::test]
async fn slack_waits_out_a_429_and_dead_letters_invalid_blocks() {
    let mock = MockServer::start().await;
    let seq = Sequence::new(vec![
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_string("rate_limited"),
        ResponseTemplate::new(200).set_body_string("ok"),
        ResponseTemplate::new(400).set_body_string("invalid_blocks"),
    ]);
    answer(&mock, "POST", "^/services/", seq.clone()).await;
    let app = TestApp::spawn(slack(&mock)).await;
    waits_out_the_first_answer(&app, &seq, "Retry-After").await;

    let dead = dead_with(&app, "missed.json", "invalid_blocks").await;
    assert_eq!(dead.attempts, 1);
}

// --- Teams -------------------------------------------------------------------------------

fn teams(mock: &MockServer) -> TestConfig {
    desk(&format!(
        "    kind: teams\n    url: \"{}/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=s3cr3t\"\n    time_zone: \"Europe/Prague\"\n",
        mock.uri()
    ))
}

#[tokio::test]
async fn teams_posts_an_adaptive_card_per_version_and_one_without_an_email() {
    let mock = MockServer::start().await;
    answer(
        &mock,
        "POST",
        "^/workflows/abc/triggers/manual/paths/invoke$",
        ResponseTemplate::new(202),
    )
    .await;
    let app = TestApp::spawn(teams(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    all_in(&app, 2, "done").await;
    for r in requests_at(&mock, 2).await {
        assert_eq!(r.url.query(), Some("api-version=2016-06-01&sig=s3cr3t"));
        let body = valid_body(&r, "teams/message.schema.json");
        assert_eq!(body["attachments"][0]["content"]["version"], "1.4");
    }
    app.post_hook(second_version(&sample("chat.json")).to_string())
        .await;
    all_in(&app, 3, "done").await;
    let update = valid_body(&requests_at(&mock, 3).await[2], "teams/message.schema.json");
    assert!(update.to_string().contains("The visitor came back"));
}

#[tokio::test]
async fn teams_waits_out_a_429_and_dead_letters_a_refused_card() {
    let mock = MockServer::start().await;
    let seq = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        ResponseTemplate::new(202),
        ResponseTemplate::new(400).set_body_json(json!({"error": {"code": "InvalidRequestContent", "message": "The request content is not valid and could not be deserialized"}})),
    ]);
    answer(&mock, "POST", "^/workflows/", seq.clone()).await;
    let app = TestApp::spawn(teams(&mock)).await;
    waits_out_the_first_answer(&app, &seq, "Retry-After").await;
    dead_with(&app, "offline.json", "could not be deserialized").await;
}

// --- Freshdesk ---------------------------------------------------------------------------

fn freshdesk(mock: &MockServer) -> TestConfig {
    desk(&format!(
        "    kind: freshdesk\n    base_url: \"{}\"\n    api_key: \"fd-key\"\n    time_zone: \"Europe/Prague\"\n    tags: [\"web\"]\n",
        mock.uri()
    ))
}

fn ticket(id: i64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"id": id, "status": 2, "source": 7}))
}

#[tokio::test]
async fn freshdesk_creates_tickets_with_or_without_an_email_and_notes_later_versions() {
    let mock = MockServer::start().await;
    answer(
        &mock,
        "POST",
        "^/api/v2/tickets$",
        Sequence::new(vec![ticket(101), ticket(102)]),
    )
    .await;
    answer(
        &mock,
        "POST",
        "^/api/v2/tickets/101/notes$",
        ResponseTemplate::new(201).set_body_json(json!({"id": 9001, "private": true})),
    )
    .await;
    let app = TestApp::spawn(freshdesk(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    all_in(&app, 1, "done").await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    all_in(&app, 2, "done").await;
    let tickets = received(&mock, "POST", "/api/v2/tickets").await;
    let basic = format!("Basic {}", base64("fd-key:X"));
    let first = valid_body(&tickets[0], "freshdesk/ticket.schema.json");
    assert_eq!(header(&tickets[0], "authorization"), basic);
    assert_eq!(first["email"], "dusan@domain.com");
    assert_eq!(
        (
            first["source"].clone(),
            first["status"].clone(),
            first["priority"].clone()
        ),
        (json!(7), json!(2), json!(1))
    );
    assert_eq!(
        first["tags"],
        json!(["smartsupp", "chat", "rating_5", "web"])
    );
    let anonymous = valid_body(&tickets[1], "freshdesk/ticket.schema.json");
    assert_eq!(anonymous["unique_external_id"], "smartsupp-visitor-27671");
    assert_eq!(anonymous["name"], "Visitor #27671");

    app.post_hook(second_version(&sample("chat.json")).to_string())
        .await;
    all_in(&app, 3, "done").await;
    let notes = received(&mock, "POST", "/api/v2/tickets/101/notes").await;
    assert_eq!(notes.len(), 1);
    let note = valid_body(&notes[0], "freshdesk/note.schema.json");
    assert_eq!(note["private"], true);
    assert!(note["body"]
        .as_str()
        .unwrap()
        .contains("One more &lt;question&gt;"));
    assert_eq!(
        received(&mock, "POST", "/api/v2/tickets").await.len(),
        2,
        "no second ticket"
    );
}

#[tokio::test]
async fn freshdesk_waits_out_a_429_and_dead_letters_validation_errors_with_its_words() {
    let mock = MockServer::start().await;
    let seq = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({"message": "You have exceeded the limit of requests per minute"})),
        ticket(201),
        ResponseTemplate::new(400).set_body_json(json!({"description": "Validation failed", "errors": [
            {"field": "group_id", "message": "There is no group matching the given group_id", "code": "invalid_value"}]})),
    ]);
    answer(&mock, "POST", "^/api/v2/tickets$", seq.clone()).await;
    let app = TestApp::spawn(freshdesk(&mock)).await;
    waits_out_the_first_answer(&app, &seq, "Retry-After").await;
    let dead = dead_with(
        &app,
        "missed.json",
        "There is no group matching the given group_id",
    )
    .await;
    assert_eq!(dead.attempts, 1);
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

// --- Pipedrive ---------------------------------------------------------------------------

fn pipedrive(mock: &MockServer) -> TestConfig {
    desk(&format!(
        "    kind: pipedrive\n    base_url: \"{}\"\n    api_token: \"pd-token\"\n    time_zone: \"Europe/Prague\"\n",
        mock.uri()
    ))
}

const LEAD: &str = "adf21080-0e10-11eb-879b-05d71fb426ec";

fn pd(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({"success": true, "data": data}))
}

/// A Pipedrive that knows no person, and creates persons, leads and notes.
async fn pipedrive_mock(lead: Sequence) -> MockServer {
    let mock = MockServer::start().await;
    answer(&mock, "GET", "^/api/v2/persons/search$", ResponseTemplate::new(200).set_body_json(
        json!({"success": true, "data": {"items": []}, "additional_data": {"next_cursor": null}}))).await;
    answer(
        &mock,
        "POST",
        "^/api/v2/persons$",
        pd(json!({"id": 11, "name": "Dusan Kmet"})),
    )
    .await;
    answer(&mock, "POST", "^/api/v1/leads$", lead).await;
    answer(
        &mock,
        "POST",
        "^/api/v1/notes$",
        pd(json!({"id": 31, "lead_id": LEAD})),
    )
    .await;
    mock
}

fn query(r: &Request) -> Value {
    Value::Object(
        r.url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    )
}

#[tokio::test]
async fn pipedrive_finds_or_creates_the_person_then_a_lead_and_notes() {
    let mock = pipedrive_mock(Sequence::new(vec![pd(
        json!({"id": LEAD, "title": "Chat"}),
    )]))
    .await;
    // A person Pipedrive knows already.
    Mock::given(method("GET"))
        .and(path("/api/v2/persons/search"))
        .and(wiremock::matchers::query_param("term", "jane@example.com"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true, "data": {"items": [
            {"result_score": 1.0, "item": {"id": 77, "type": "person", "name": "Jane Roe", "emails": ["jane@example.com"]}}]}})))
        .with_priority(1)
        .mount(&mock)
        .await;
    let app = TestApp::spawn(pipedrive(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    all_in(&app, 1, "done").await;
    let searches = received(&mock, "GET", "/api/v2/persons/search").await;
    assert_eq!(searches.len(), 1);
    assert_schema(
        "pipedrive/search-persons.query.schema.json",
        &query(&searches[0]),
    );
    assert_eq!(query(&searches[0])["term"], "dusan@domain.com");
    assert_eq!(header(&searches[0], "x-api-token"), "pd-token");
    let persons = received(&mock, "POST", "/api/v2/persons").await;
    let person = valid_body(&persons[0], "pipedrive/add-person.schema.json");
    assert_eq!(person["emails"][0]["value"], "dusan@domain.com");
    let lead = valid_body(
        &received(&mock, "POST", "/api/v1/leads").await[0],
        "pipedrive/add-lead.schema.json",
    );
    assert_eq!(lead["person_id"], 11);
    let note = valid_body(
        &received(&mock, "POST", "/api/v1/notes").await[0],
        "pipedrive/add-note.schema.json",
    );
    assert_eq!(note["lead_id"], LEAD);

    // A known person is not created again; an anonymous visitor is not searched for.
    let mut known = sample("offline.json");
    known["visitor"]["email"] = json!("jane@example.com");
    app.post_hook(known.to_string()).await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    all_in(&app, 3, "done").await;
    assert_eq!(
        received(&mock, "GET", "/api/v2/persons/search").await.len(),
        2
    );
    let persons = received(&mock, "POST", "/api/v2/persons").await;
    assert_eq!(persons.len(), 2, "only the anonymous visitor is created");
    let anonymous = valid_body(&persons[1], "pipedrive/add-person.schema.json");
    assert_eq!(anonymous, json!({"name": "Visitor #27671"}));
    let leads = received(&mock, "POST", "/api/v1/leads").await;
    let person_ids: Vec<Value> = leads
        .iter()
        .map(|r| valid_body(r, "pipedrive/add-lead.schema.json")["person_id"].clone())
        .collect();
    assert!(person_ids.contains(&json!(77)), "{person_ids:?}");

    // A later version: one more note on the same lead, nothing else.
    app.post_hook(second_version(&sample("chat.json")).to_string())
        .await;
    all_in(&app, 4, "done").await;
    let notes = received(&mock, "POST", "/api/v1/notes").await;
    assert_eq!(notes.len(), 4);
    let update = valid_body(&notes[3], "pipedrive/add-note.schema.json");
    assert_eq!(update["lead_id"], LEAD);
    assert!(update["content"]
        .as_str()
        .unwrap()
        .contains("One more &lt;question&gt;"));
    assert_eq!(received(&mock, "POST", "/api/v1/leads").await.len(), 3);
}

#[tokio::test]
async fn pipedrive_resumes_at_the_lead_after_a_429_and_reports_its_error() {
    let lead = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(json!({"success": false, "error": "Request over limit"})),
        pd(json!({"id": LEAD})),
        ResponseTemplate::new(400).set_body_json(json!({"success": false, "error": "The owner_id is not a user of this company", "error_info": "Please check developers.pipedrive.com", "data": null, "additional_data": null})),
    ]);
    let mock = pipedrive_mock(lead.clone()).await;
    let app = TestApp::spawn(pipedrive(&mock)).await;
    waits_out_the_first_answer(&app, &lead, "Retry-After").await;
    assert_eq!(
        received(&mock, "POST", "/api/v2/persons").await.len(),
        1,
        "the person created before the 429 is not created again"
    );
    dead_with(
        &app,
        "missed.json",
        "The owner_id is not a user of this company",
    )
    .await;
}

// --- Help Scout --------------------------------------------------------------------------

fn helpscout(mock: &MockServer) -> TestConfig {
    desk(&format!(
        "    kind: helpscout\n    base_url: \"{}\"\n    client_id: \"hs-app\"\n    client_secret: \"hs-secret\"\n    mailbox_id: 85\n    time_zone: \"Europe/Prague\"\n",
        mock.uri()
    ))
}

fn created(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201)
        .insert_header("Resource-ID", id)
        .insert_header(
            "Location",
            format!("https://api.helpscout.net/v2/conversations/{id}").as_str(),
        )
}

/// A Help Scout whose token endpoint issues `hs-token` and whose API creates conversations
/// (from 7001), customers (from 501) and chat threads.
async fn helpscout_mock(conversations: Sequence) -> MockServer {
    let mock = MockServer::start().await;
    answer(
        &mock,
        "POST",
        "^/v2/oauth2/token$",
        ResponseTemplate::new(200).set_body_json(
            json!({"token_type": "bearer", "access_token": "hs-token", "expires_in": 172800}),
        ),
    )
    .await;
    answer(&mock, "POST", "^/v2/conversations$", conversations).await;
    answer(&mock, "POST", "^/v2/customers$", created("501")).await;
    answer(
        &mock,
        "POST",
        "^/v2/conversations/7001/chats$",
        created("88"),
    )
    .await;
    mock
}

#[tokio::test]
async fn help_scout_imports_chats_with_or_without_an_email_and_adds_later_versions() {
    let mock = helpscout_mock(Sequence::new(vec![created("7001"), created("7002")])).await;
    let app = TestApp::spawn(helpscout(&mock)).await;
    app.post_hook(sample("chat.json").to_string()).await;
    all_in(&app, 1, "done").await;
    app.post_hook(sample("anonymous.json").to_string()).await;
    all_in(&app, 2, "done").await;

    let tokens = received(&mock, "POST", "/v2/oauth2/token").await;
    assert_eq!(tokens.len(), 1, "one token for both conversations");
    let form: Vec<(String, String)> = String::from_utf8_lossy(&tokens[0].body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        header(&tokens[0], "content-type").starts_with("application/x-www-form-urlencoded"),
        "the token request is a form (RFC 6749, Help Scout's reference)"
    );
    for pair in [
        ("grant_type", "client_credentials"),
        ("client_id", "hs-app"),
        ("client_secret", "hs-secret"),
    ] {
        assert!(
            form.contains(&(pair.0.into(), pair.1.into())),
            "token request {form:?}"
        );
    }
    let conversations = received(&mock, "POST", "/v2/conversations").await;
    for r in &conversations {
        assert_eq!(header(r, "authorization"), "Bearer hs-token");
    }
    let first = valid_body(&conversations[0], "helpscout/conversation.schema.json");
    assert_eq!(
        (
            first["type"].clone(),
            first["imported"].clone(),
            first["mailboxId"].clone()
        ),
        (json!("chat"), json!(true), json!(85))
    );
    assert_eq!(first["customer"]["email"], "dusan@domain.com");
    assert_eq!(first["threads"][0]["type"], "chat");
    let customers = received(&mock, "POST", "/v2/customers").await;
    assert_eq!(
        customers.len(),
        1,
        "a customer only for the visitor without an email"
    );
    let customer = valid_body(&customers[0], "helpscout/customer.schema.json");
    assert_eq!(customer["firstName"], "Visitor #27671");
    let anonymous = valid_body(&conversations[1], "helpscout/conversation.schema.json");
    assert_eq!(anonymous["customer"], json!({"id": 501}));

    app.post_hook(second_version(&sample("chat.json")).to_string())
        .await;
    all_in(&app, 3, "done").await;
    let chats = received(&mock, "POST", "/v2/conversations/7001/chats").await;
    assert_eq!(
        chats.len(),
        1,
        "the later version is a chat thread on the captured conversation"
    );
    let chat = valid_body(&chats[0], "helpscout/chat.schema.json");
    assert!(chat["text"]
        .as_str()
        .unwrap()
        .contains("One more &lt;question&gt;"));
    assert_eq!(received(&mock, "POST", "/v2/conversations").await.len(), 2);
}

#[tokio::test]
async fn help_scout_honours_its_retry_header_and_dead_letters_validation_errors() {
    let seq = Sequence::new(vec![
        ResponseTemplate::new(429).insert_header("X-RateLimit-Retry-After", "1"),
        created("7001"),
        ResponseTemplate::new(400).set_body_json(json!({"logRef": "ab12", "message": "Bad request",
            "_embedded": {"errors": [{"path": "mailboxId", "message": "Mailbox not found", "source": "BODY"}]}})),
    ]);
    let mock = helpscout_mock(seq.clone()).await;
    let app = TestApp::spawn(helpscout(&mock)).await;
    waits_out_the_first_answer(&app, &seq, "X-RateLimit-Retry-After").await;
    dead_with(&app, "missed.json", "Mailbox not found").await;
}

#[tokio::test]
async fn a_refused_freshdesk_key_pauses_the_destination_instead_of_dead_lettering() {
    let mock = MockServer::start().await;
    let seq = Sequence::new(vec![
        ResponseTemplate::new(401).set_body_json(json!({"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})),
        ticket(301),
    ]);
    answer(&mock, "POST", "^/api/v2/tickets$", seq).await;
    // A short pause, so that the probe after it finds the key fixed.
    let app = TestApp::spawn(desk(&format!(
        "    kind: freshdesk\n    base_url: \"{}\"\n    api_key: \"fd-key\"\n    breaker: {{ failures: 10, cool_down: \"1s\" }}\n",
        mock.uri()
    )))
    .await;
    app.post_hook(sample("chat.json").to_string()).await;
    let done = all_in(&app, 1, "done").await.remove(0);
    let log = attempts(&app.db(), done.id);
    assert!(
        log[0]
            .2
            .as_deref()
            .unwrap_or("")
            .contains("Freshdesk refused the API key"),
        "{log:?}"
    );
    assert_eq!(done.attempts, 1, "the refusal spent no attempt: {log:?}");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            "deskbridge_delivery_attempts_total{destination=\"desk\",outcome=\"deferred\"} 1"
        ),
        "the refusal deferred the delivery:\n{metrics}"
    );
}
