//! The shipped recipes (Slack, Teams, Freshdesk, Pipedrive, Help Scout): their templates
//! render bodies that hold to each service's request description (`tests/specs/<service>/`)
//! for every sample and for hostile visitor text, and each recipe, run by the real server
//! against a mock of its service on port 0, delivers a first version, an anonymous visitor
//! and a later version, waits out a 429 and dead-letters a permanent refusal with the
//! service's own words.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/openapi.rs"]
mod openapi;

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
    c["visitor"]["name"] = json!("Eve \"Q\" <b>Smith</b> <!channel> [x](https://evil.example) *bold* 😀");
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
        "freshdesk" => json!({"name": recipe, "domain": "acme", "base_url": "https://acme.freshdesk.com",
            "priority": {"chat": 1, "missed": 3, "offline": 2}, "ticket_type": "Question",
            "group_id": 7, "tags": ["vip"], "time_zone": tz}),
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
        let body = render(&r, "slack/message.json.hbs", &context(&hook, 1, "slack", json!({})));
        assert_schema("slack/message.schema.json", &body);
        let text = body.to_string();
        assert!(!text.contains("\"mrkdwn\""), "visitor text only as plain_text");
        if hook["channel"]["id"] == 66002 {
            let transcript = body["blocks"][2]["text"]["text"].as_str().unwrap();
            assert!(transcript.ends_with("(Cut here: Slack shows at most 3,000 characters.)"));
            assert!(transcript.contains("00280 "), "the last messages: {transcript}");
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
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        "Chat with Dusan Kmet"
    );
}

#[test]
fn teams_cards_are_adaptive_cards_without_markdown_from_visitors() {
    let r = renderer();
    for hook in conversations() {
        let body = render(&r, "teams/card.json.hbs", &context(&hook, 1, "teams", json!({})));
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
        assert_eq!((body["source"].clone(), body["status"].clone()), (json!(7), json!(2)));
        if hook["visitor"]["email"].is_null() {
            assert_eq!(body["unique_external_id"], "smartsupp-visitor-27671");
            assert_eq!(body["name"], "Visitor #27671");
            assert!(body.get("email").is_none());
        }
        let (v2, update) = later(&hook);
        let body = render(
            &r,
            "freshdesk/note.json.hbs",
            &context(&v2, 2, "freshdesk", json!({"previous": {"ticket_id": 101}, "update": update})),
        );
        assert_schema("freshdesk/note.schema.json", &body);
        assert!(body["body"].as_str().unwrap().contains("One more &lt;question&gt;"));
    }
    let missed = render(
        &r,
        "freshdesk/ticket.json.hbs",
        &context(&common::sample("missed.json"), 1, "freshdesk", json!({})),
    );
    assert_eq!(missed["priority"], 3);
    assert_eq!(missed["tags"], json!(["smartsupp", "missed", "vip"]));
}

#[test]
fn pipedrive_bodies_follow_its_openapi_description() {
    let r = renderer();
    for hook in conversations() {
        let ctx = context(&hook, 1, "pipedrive", json!({"captures": {"new_person_id": 11, "lead_id": "adf21080-0e10-11eb-879b-05d71fb426ec"}}));
        let person = render(&r, "pipedrive/person.json.hbs", &ctx);
        assert_schema("pipedrive/add-person.schema.json", &person);
        assert_eq!(person.get("emails").is_some(), !hook["visitor"]["email"].is_null());
        let lead = render(&r, "pipedrive/lead.json.hbs", &ctx);
        assert_schema("pipedrive/add-lead.schema.json", &lead);
        assert_eq!(lead["person_id"], 11);
        let note = render(&r, "pipedrive/note.json.hbs", &ctx);
        assert_schema("pipedrive/add-note.schema.json", &note);
        let found = context(&hook, 1, "pipedrive", json!({"captures": {"found_person_id": 9}}));
        assert_eq!(render(&r, "pipedrive/lead.json.hbs", &found)["person_id"], 9);
        let (v2, update) = later(&hook);
        let note = render(
            &r,
            "pipedrive/update.json.hbs",
            &context(&v2, 2, "pipedrive", json!({"previous": {"lead_id": "adf2"}, "update": update})),
        );
        assert_schema("pipedrive/add-note.schema.json", &note);
        assert_eq!(note["lead_id"], "adf2");
    }
}

#[test]
fn help_scout_conversations_name_a_customer_with_or_without_an_email() {
    let r = renderer();
    for hook in conversations() {
        let ctx = context(&hook, 1, "helpscout", json!({"captures": {"customer_id": "321"}}));
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
            &context(&v2, 2, "helpscout", json!({"previous": {"conversation_id": "7", "customer_id": "321"}, "update": update})),
        );
        assert_schema("helpscout/chat.schema.json", &chat);
        assert!(chat["text"].as_str().unwrap().contains("One more &lt;question&gt;"));
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
    let no_requester = json!({"subject": "s", "description": "d", "status": 2, "priority": 1, "source": 7});
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
