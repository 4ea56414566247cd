//! Smartsupp Webhooks API helpers: the fixture events, signing, posting, and a mock Zendesk
//! and Smartsupp REST API.

use super::{TestApp, TestConfig, TOKEN};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const SECRET: &str = "app-secret-1";
pub const OLD_SECRET: &str = "app-secret-0";
pub const KEY: &str = "test-account-id-conv-001";

/// A fixture event (tests/fixtures/smartsupp-webhooks/NAME.json).
pub fn fixture(name: &str) -> Value {
    let path = super::repo()
        .join("tests/fixtures/smartsupp-webhooks")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture conversation as Smartsupp posts it: opened, a bot greeting, the contact's
/// question, an agent assigned, joined and replying, closed.
pub fn conversation_events() -> Vec<Value> {
    [
        "conversation_opened",
        "conversation_bot_replied",
        "conversation_contact_replied",
        "conversation_agent_assigned",
        "conversation_agent_joined",
        "conversation_agent_replied",
        "conversation_message_delivered",
        "conversation_closed",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    deskbridge::smartsupp::events::signature::sign(secret, body)
}

/// The `smartsupp:` keys of a test: two secrets (a rotation), a short settle.
pub fn smartsupp_yaml(extra: &str) -> String {
    format!("  webhook_secrets: [\"{OLD_SECRET}\", \"{SECRET}\"]\n  settle: \"300ms\"\n{extra}")
}

/// The `smartsupp:` keys that point the REST API at `api`.
pub fn api_yaml(api: &MockServer) -> String {
    smartsupp_yaml(&format!(
        "  api_token: \"api-tok\"\n  api_base_url: \"{}/v2\"\n  api_rate_limit: \"100/1s\"\n  api_retry_schedule: [\"100ms\", \"100ms\"]\n",
        api.uri()
    ))
}

/// A Zendesk destination at `mock` with `smartsupp` keys.
pub fn helpdesk(mock: &MockServer, smartsupp: String) -> TestConfig {
    let mut c = TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n",
        mock.uri()
    ));
    c.smartsupp = smartsupp;
    c
}

/// POSTs raw `body` to the events URL with `signature` (none when `None`).
pub async fn post_raw(app: &TestApp, body: &[u8], signature: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/hooks/smartsupp/events/{TOKEN}")))
        .body(body.to_vec());
    if let Some(sig) = signature {
        request = request.header("X-Smartsupp-Hmac", sig);
    }
    let response = request.send().await.unwrap();
    super::documented("post", "/hooks/smartsupp/events/{token}", response).await
}

/// POSTs an event signed with [`SECRET`]; returns status and JSON answer.
pub async fn post_event(app: &TestApp, event: &Value) -> (u16, Value) {
    let body = event.to_string();
    let r = post_raw(app, body.as_bytes(), Some(&sign(SECRET, body.as_bytes()))).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Answers ticket creation with 201 and a new id each time.
pub struct Created(pub AtomicI64);

impl Respond for Created {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let id = self.0.fetch_add(1, Ordering::SeqCst);
        ResponseTemplate::new(201).set_body_json(json!({"ticket": {"id": id, "status": "new"}}))
    }
}

/// A mock Zendesk: tickets created, imported and updated.
pub async fn zendesk() -> MockServer {
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

/// What the REST API says about the fixture conversation.
pub fn api_conversation() -> Value {
    let mut c = fixture("conversation_opened")["data"]["conversation"].clone();
    c["status"] = json!("closed");
    c["finished_at"] = json!("2026-05-15T11:00:00Z");
    c
}

/// The fixture conversation's messages, newest first as the API answers.
pub fn api_messages() -> Vec<Value> {
    let mut m: Vec<Value> = [
        "conversation_bot_replied",
        "conversation_contact_replied",
        "conversation_agent_replied",
    ]
    .iter()
    .map(|n| fixture(n)["data"]["message"].clone())
    .collect();
    m.reverse();
    m
}

/// The fixture contact.
pub fn api_contact() -> Value {
    fixture("contact_created")["data"]["contact"].clone()
}

/// Mounts the REST API's answers for the fixture conversation on `api`.
pub async fn mount_api(api: &MockServer, contact: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/v2/conversations/conv-001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(api_conversation()))
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/conversations/conv-001/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"items": api_messages(), "after": null})),
        )
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/contacts/contact-001"))
        .respond_with(contact)
        .mount(api)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/agents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"agents": [{"id": "agent-001", "name": "Anela Support", "email": "a@anela.cz"}]}),
        ))
        .mount(api)
        .await;
}

/// The same conversation as the legacy POST hook carries it.
pub fn legacy_hook() -> Value {
    let ms = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    json!({
        "accountId": "test-account-id",
        "beginAt": ms("2026-05-15T10:00:00Z"),
        "endAt": ms("2026-05-15T11:00:00Z"),
        "channel": {
            "id": "conv-001", "isChat": true, "isMissed": false, "isTriggered": true,
            "isOffline": false, "isCompleted": true, "isDropped": false, "duration": 3600,
            "avgResponse": 120, "firstResponse": 120, "messagesCount": 3, "wordsCount": 16,
            "rating": null, "ratingDesc": null
        },
        "visitor": {
            "id": "visitor-001", "name": "Jana Nováková", "email": "jana.novakova@example.com",
            "note": null, "group": null, "ipAddress": "1.2.3.4", "city": "Praha",
            "countryCode": "CZ", "country": "CZ", "userAgent": null, "platform": null,
            "referer": "https://www.anela.cz/", "variables": {}
        },
        "paths": [
            {"url": "https://www.anela.cz/", "title": null},
            {"url": "https://www.anela.cz/produkt/krem", "title": null}
        ],
        "messages": [
            {"type": "agent", "name": "", "from": "system", "content": "Vítejte! Jak vám mohu pomoci?",
             "sentAt": ms("2026-05-15T10:00:30Z"), "triggeredBy": "welcome-trigger"},
            {"type": "visitor", "name": null, "from": "visitor:visitor-001",
             "content": "Dobrý den, mám dotaz na produkt.", "sentAt": ms("2026-05-15T10:01:00Z"), "triggeredBy": null},
            {"type": "system", "name": "Anela Support", "from": "agent:agent-001", "content": "agent.join",
             "sentAt": ms("2026-05-15T10:03:00Z"), "triggeredBy": null},
            {"type": "agent", "name": "Anela Support", "from": "agent:agent-001",
             "content": "Dobrý den, rádi vám pomůžeme!", "sentAt": ms("2026-05-15T10:03:00Z"), "triggeredBy": null},
            {"type": "system", "name": "Anela Support", "from": "agent:agent-001", "content": "close.agentClose",
             "sentAt": ms("2026-05-15T11:00:00Z"), "triggeredBy": null}
        ]
    })
}
