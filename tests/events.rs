//! Smartsupp's Webhooks API end to end: signed events posted to the real server, stored,
//! assembled after the settle time into the hook's model, and delivered to a mock Zendesk;
//! enrichment from a mock REST API.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::events::*;
use common::{count, deliveries, eventually, json_body, requests_at, TestApp, TestConfig};
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(15);

/// The first ticket the app sent to Zendesk.
async fn first_ticket(mock: &MockServer) -> Value {
    let all = requests_at(mock, 1).await;
    let create = all
        .iter()
        .find(|r| r.url.path() == "/api/v2/tickets")
        .expect("a ticket was created");
    json_body(create)
}

#[tokio::test]
async fn signatures_are_checked_before_anything_else() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    let body = fixture("conversation_opened").to_string();
    let body = body.as_bytes();
    let good = sign(SECRET, body);
    let mut changed = body.to_vec();
    let at = changed.len() / 2;
    changed[at] = if changed[at] == b' ' { b'\t' } else { b' ' };
    let cases: Vec<(&str, Vec<u8>, Option<String>, u16)> = vec![
        ("valid", body.to_vec(), Some(good.clone()), 200),
        (
            "uppercase hex",
            body.to_vec(),
            Some(good.to_uppercase()),
            200,
        ),
        (
            "the older secret of a rotation",
            body.to_vec(),
            Some(sign(OLD_SECRET, body)),
            200,
        ),
        (
            "wrong secret",
            body.to_vec(),
            Some(sign("guess", body)),
            401,
        ),
        ("missing header", body.to_vec(), None, 401),
        ("not hex", body.to_vec(), Some("xyz".into()), 401),
        ("body changed by one byte", changed, Some(good.clone()), 401),
    ];
    for (what, body, sig, expected) in cases {
        let r = post_raw(&app, &body, sig.as_deref()).await;
        assert_eq!(r.status().as_u16(), expected, "{what}");
        if expected == 401 {
            assert_eq!(r.text().await.unwrap(), "", "{what}: no detail");
        }
    }
    // A wrong token is refused before the signature is read.
    let r = app
        .client
        .post(app.url("/hooks/smartsupp/events/wrong-token"))
        .header("X-Smartsupp-Hmac", good)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let stored = count(&app.db(), "SELECT COUNT(*) FROM smartsupp_events");
    assert_eq!(stored, 1, "the valid body, then duplicates of it");
}

#[tokio::test]
async fn bodies_that_are_not_events_say_why() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "not valid JSON"),
        ("[1]", 400, "must be a JSON object"),
        (r#"{"data":{}}"#, 422, "event is missing"),
        (r#"{"event":"conversation.closed"}"#, 422, "data is missing"),
        (
            r#"{"event":"conversation.closed","data":"x"}"#,
            422,
            "data must be an object",
        ),
    ];
    for (body, status, message) in cases {
        let r = post_raw(&app, body.as_bytes(), Some(&sign(SECRET, body.as_bytes()))).await;
        assert_eq!(r.status().as_u16(), *status, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    // Over the size limit: 413 before the signature is even computed.
    let big = vec![b' '; 6 * 1024 * 1024];
    assert_eq!(post_raw(&app, &big, None).await.status(), 413);
}

#[tokio::test]
async fn without_secrets_the_route_is_not_there() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, String::new())).await;
    let body = fixture("conversation_opened").to_string();
    let r = post_raw(&app, body.as_bytes(), Some(&sign(SECRET, body.as_bytes()))).await;
    assert_eq!(r.status(), 404);
    // The legacy hook still answers.
    assert_eq!(
        app.post_hook(common::conversation(5).to_string())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn unused_and_unknown_events_are_answered_and_counted_not_stored() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    for event in ["visitor.connected", "visitor.typing", "something.new"] {
        let e = json!({"event": event, "account_id": "a", "data": {"visitor": {"id": "v"}}});
        let (status, answer) = post_event(&app, &e).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("ignored")),
            "{event}"
        );
    }
    // An undocumented conversation event is kept (conversation.* is stored) and harms nothing.
    let e = json!({"event": "conversation.transferred", "account_id": "a", "data": {"conversation": {"id": "c"}}});
    assert_eq!(post_event(&app, &e).await.1["status"], "accepted");
    assert_eq!(count(&app.db(), "SELECT COUNT(*) FROM smartsupp_events"), 1);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("deskbridge_events_received_total{outcome=\"ignored\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("deskbridge_events_received_total{outcome=\"accepted\"} 1"));
}

#[tokio::test]
async fn concurrent_shuffled_events_become_one_ticket_with_every_message_in_order() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    let mut events = conversation_events();
    // Shuffled, the close first, and one event twice.
    events.reverse();
    events.swap(2, 5);
    events.push(fixture("conversation_contact_replied"));
    let answers = futures_util::future::join_all(events.iter().map(|e| post_event(&app, e))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    let duplicates = answers
        .iter()
        .filter(|(_, a)| a["status"] == "duplicate")
        .count();
    assert_eq!(duplicates, 1, "{answers:?}");
    let ticket = first_ticket(&mock).await;
    let html = ticket["ticket"]["comment"]["html_body"]
        .as_str()
        .unwrap()
        .to_string();
    let order = [
        "Vítejte! Jak vám mohu pomoci?",
        "Dobrý den, mám dotaz na produkt.",
        "Anela Support joined",
        "Dobrý den, rádi vám pomůžeme!",
        "Anela Support closed the chat",
    ];
    let mut last = 0;
    for text in order {
        let at = html[last..]
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} after {last} in {html}"));
        last += at + text.len();
    }
    assert_eq!(ticket["ticket"]["external_id"], KEY);
    assert_eq!(
        ticket["ticket"]["requester"]["email"],
        "jana.novakova@example.com"
    );
    // Without an API token the ticket says what could not be known.
    assert!(
        html.contains("Not known (assembled from Smartsupp events)"),
        "{html}"
    );
    assert!(html.contains("messages not received as events"), "{html}");
    // Exactly one delivery, and no assembly left waiting.
    eventually("no assembly waiting", WAIT, || async {
        app.metrics().await.contains("deskbridge_events_pending 0")
    })
    .await;
    let rows = deliveries(&app.db());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].key.as_str(), rows[0].version), (KEY, 1));
}

#[tokio::test]
async fn a_rating_after_the_close_is_a_new_version() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    for e in conversation_events() {
        assert_eq!(post_event(&app, &e).await.0, 200);
    }
    first_ticket(&mock).await;
    let (status, answer) = post_event(&app, &fixture("conversation_rated")).await;
    assert_eq!(
        (status, answer["assembly"].as_str()),
        (200, Some("scheduled"))
    );
    let all = requests_at(&mock, 2).await;
    // An update of the same ticket, as for a legacy resend with other changes.
    let update = all
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .expect("an update");
    assert_eq!(update.url.path(), "/api/v2/tickets/101");
    let versions: Vec<i64> = deliveries(&app.db()).iter().map(|d| d.version).collect();
    assert_eq!(versions, vec![1, 2]);
    // The same rating again is a duplicate event: no third version.
    assert_eq!(
        post_event(&app, &fixture("conversation_rated")).await.1["status"],
        "duplicate"
    );
    // A message delivery receipt after the close schedules nothing.
    let (_, answer) = post_event(&app, &fixture("conversation_message_delivery_failed")).await;
    assert_eq!(answer["assembly"], "waiting");
}

#[tokio::test]
async fn events_before_a_close_wait_and_a_reopened_conversation_is_not_assembled() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    let events = conversation_events();
    for e in &events[..events.len() - 1] {
        assert_eq!(post_event(&app, e).await.1["assembly"], "waiting");
    }
    assert_eq!(
        count(&app.db(), "SELECT COUNT(*) FROM smartsupp_assemblies"),
        0
    );
    // Closed, then at once reopened (a later opened event): nothing is sent.
    let mut reopened = fixture("conversation_opened");
    reopened["timestamp"] = json!("2026-05-15T11:00:01Z");
    assert_eq!(
        post_event(&app, events.last().unwrap()).await.1["assembly"],
        "scheduled"
    );
    assert_eq!(post_event(&app, &reopened).await.0, 200);
    eventually("the assembly ran", WAIT, || async {
        count(&app.db(), "SELECT COUNT(*) FROM smartsupp_assemblies") == 0
    })
    .await;
    assert!(deliveries(&app.db()).is_empty());
    // The second close assembles it.
    let mut closed = fixture("conversation_closed");
    closed["timestamp"] = json!("2026-05-15T11:30:00Z");
    closed["data"]["conversation"]["finished_at"] = json!("2026-05-15T11:30:00Z");
    post_event(&app, &closed).await;
    first_ticket(&mock).await;
}

#[tokio::test]
async fn enrichment_fills_what_events_lack_through_429_and_a_missing_contact() {
    // The contact's email comes from the API: the events carry no contact details.
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/conversations/conv-001"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    mount_api(
        &api,
        ResponseTemplate::new(200).set_body_json(api_contact()),
    )
    .await;
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, api_yaml(&api))).await;
    let started = std::time::Instant::now();
    for mut e in conversation_events() {
        if let Some(c) = e["data"]["conversation"].as_object_mut() {
            c.remove("contact_name");
            c.remove("contact_email");
        }
        if e["event"] == "conversation.agent_replied" {
            continue; // the API has it
        }
        assert_eq!(post_event(&app, &e).await.0, 200);
    }
    let ticket = first_ticket(&mock).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(
        ticket["ticket"]["requester"]["email"],
        "jana.novakova@example.com"
    );
    assert_eq!(ticket["ticket"]["requester"]["name"], "Jana Nováková");
    let html = ticket["ticket"]["comment"]["html_body"].as_str().unwrap();
    assert!(
        html.contains("Dobrý den, rádi vám pomůžeme!"),
        "the API's message: {html}"
    );
    assert!(!html.contains("Not known"), "{html}");
    let calls = api.received_requests().await.unwrap();
    assert!(calls
        .iter()
        .all(|r| r.headers.get("authorization").unwrap() == "Bearer api-tok"));
    assert_eq!(
        calls
            .iter()
            .filter(|r| r.url.path() == "/v2/conversations/conv-001")
            .count(),
        2,
        "429, then 200"
    );
}

#[tokio::test]
async fn a_contact_smartsupp_no_longer_knows_still_gives_a_ticket() {
    let api = MockServer::start().await;
    mount_api(
        &api,
        ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})),
    )
    .await;
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, api_yaml(&api))).await;
    for e in conversation_events() {
        post_event(&app, &e).await;
    }
    let ticket = first_ticket(&mock).await;
    let html = ticket["ticket"]["comment"]["html_body"].as_str().unwrap();
    assert!(
        html.contains("the contact&#x27;s details") || html.contains("the contact's details"),
        "{html}"
    );
    // The conversation's own contact fields still name the requester.
    assert_eq!(
        ticket["ticket"]["requester"]["email"],
        "jana.novakova@example.com"
    );
}

/// The acceptance check: the fixture conversation posted as Webhooks API events (completed
/// from the REST API) and the same conversation posted as a legacy hook give the same ticket.
#[tokio::test]
async fn events_and_the_legacy_hook_give_the_same_tickets() {
    let api = MockServer::start().await;
    mount_api(
        &api,
        ResponseTemplate::new(200).set_body_json(api_contact()),
    )
    .await;
    let by_events = zendesk().await;
    let events_app = TestApp::spawn(helpdesk(&by_events, api_yaml(&api))).await;
    let by_hook = zendesk().await;
    let hook_app = TestApp::spawn(helpdesk(&by_hook, api_yaml(&api))).await;
    for e in conversation_events() {
        assert_eq!(post_event(&events_app, &e).await.0, 200);
    }
    let answer = hook_app.post_hook(legacy_hook().to_string()).await;
    assert_eq!(answer.status(), 200);
    let from_events = requests_at(&by_events, 1).await;
    let from_hook = requests_at(&by_hook, 1).await;
    assert_eq!(from_events.len(), from_hook.len());
    for (e, h) in from_events.iter().zip(&from_hook) {
        assert_eq!(
            (e.method.as_str(), e.url.path()),
            (h.method.as_str(), h.url.path())
        );
        assert_eq!(
            e.headers.get("idempotency-key"),
            h.headers.get("idempotency-key")
        );
        let (e, h) = (json_body(e), json_body(h));
        assert_eq!(e, h, "events:\n{e:#}\nhook:\n{h:#}");
    }
    // A rating: both interfaces update the ticket the same way.
    post_event(&events_app, &fixture("conversation_rated")).await;
    let mut rated = legacy_hook();
    rated["channel"]["rating"] = json!(5);
    rated["channel"]["ratingDesc"] = json!("Skvělá pomoc!");
    hook_app.post_hook(rated.to_string()).await;
    let from_events = requests_at(&by_events, 2).await;
    let from_hook = requests_at(&by_hook, 2).await;
    assert_eq!(json_body(&from_events[1]), json_body(&from_hook[1]));
}

#[tokio::test]
async fn templates_see_where_a_conversation_came_from() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let mut config = TestConfig::with_destinations(&format!(
        "  hook:\n    kind: webhook\n    url: \"{}/in\"\n    template: \"source.json.hbs\"\n",
        mock.uri()
    ))
    .template(
        "source.json.hbs",
        "{\"source\": \"{{meta.source}}\", \"unknown\": {{json meta.unknown}}}",
    );
    config.smartsupp = smartsupp_yaml("");
    let app = TestApp::spawn(config).await;
    app.post_hook(common::conversation(9).to_string()).await;
    for e in conversation_events() {
        post_event(&app, &e).await;
    }
    let all = requests_at(&mock, 2).await;
    let mut sources: Vec<String> = all
        .iter()
        .map(|r| json_body(r)["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, vec!["events", "hook"]);
    let hook = all
        .iter()
        .find(|r| json_body(r)["source"] == "hook")
        .unwrap();
    assert_eq!(json_body(hook)["unknown"], json!([]));
}

/// POSTs a signed event to a `deskbridge serve` process.
async fn post_to(process: &common::process::Process, event: &Value) -> u16 {
    let body = event.to_string();
    reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/hooks/smartsupp/events/{}",
            process.port,
            common::TOKEN
        ))
        .header("X-Smartsupp-Hmac", sign(SECRET, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A SIGKILL between the events and the close, and another between the close and its
/// assembly, lose nothing: the assembly is driven from the store.
#[tokio::test]
async fn a_sigkill_between_events_and_close_loses_nothing() {
    use common::process::Process;
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(&format!(
        "  target:\n    kind: webhook\n    url: \"{}/hook\"\n",
        mock.uri()
    ));
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    config.smartsupp = format!("  webhook_secrets: [\"{SECRET}\"]\n  settle: \"2s\"\n");
    let path = config.write(dir.path());
    let events = conversation_events();
    let (close, before) = events.split_last().unwrap();

    let first = Process::start(&path);
    for e in before {
        assert_eq!(post_to(&first, e).await, 200);
    }
    drop(first); // SIGKILL

    let second = Process::start(&path);
    assert_eq!(post_to(&second, close).await, 200);
    drop(second); // SIGKILL within the settle time
    assert!(mock.received_requests().await.unwrap().is_empty());

    let _third = Process::start(&path);
    let all = requests_at(&mock, 1).await;
    let body = json_body(&all[0]);
    let texts: Vec<&str> = body["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![
            "Vítejte! Jak vám mohu pomoci?",
            "Dobrý den, mám dotaz na produkt.",
            "agent.join",
            "Dobrý den, rádi vám pomůžeme!",
            "close.agentClose"
        ]
    );
    assert_eq!(body["data"]["meta"]["source"], "events");
    let db = common::Db::Sqlite(dir.path().join("db.sqlite"));
    eventually("no assembly left", WAIT, || async {
        count(&db, "SELECT COUNT(*) FROM smartsupp_assemblies") == 0
    })
    .await;
    assert_eq!(deliveries(&db).len(), 1);
}

#[test]
fn render_and_check_accept_a_sequence_of_events() {
    use common::process::run;
    let dir = tempfile::tempdir().unwrap();
    let mock_url = "http://127.0.0.1:9/unused";
    let config = TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{mock_url}\"\n    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n"
    ));
    let path = config.write(dir.path());
    let ndjson: String = conversation_events()
        .iter()
        .map(|e| format!("{e}\n"))
        .collect();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, ndjson).unwrap();
    let (path, events) = (path.to_str().unwrap(), events.to_str().unwrap());
    let out = run(&[
        "render",
        "--destination",
        "helpdesk",
        "--config",
        path,
        events,
    ]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("# conversation test-account-id-conv-001"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("POST"), "{}", out.stdout);
    assert!(
        out.stdout.contains("jana.novakova@example.com"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("tok-123"), "secrets stay masked");
    let out = run(&["check", "--config", path, events]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(
        out.stdout.contains("1 conversation(s) render"),
        "{}",
        out.stdout
    );
    // check says why the events route answers 404.
    assert!(
        out.stdout
            .contains("note: smartsupp.webhook_secrets is empty"),
        "{}",
        out.stdout
    );
    // An unclosed conversation and a line that is no event say so.
    std::fs::write(dir.path().join("bad.ndjson"), "{\"event\":\"x\"}\n").unwrap();
    let bad = dir.path().join("bad.ndjson");
    let out = run(&["check", "--config", path, bad.to_str().unwrap()]);
    assert!(!out.ok());
    assert!(
        out.stderr.contains("line 1") && out.stderr.contains("data is missing"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_dashboard_shows_a_conversations_events_and_origin() {
    let mock = zendesk().await;
    let mut config = helpdesk(&mock, smartsupp_yaml(""));
    let admin = "admin-token-for-events-1234";
    config.server_extra = format!("  admin_token: \"{admin}\"\n");
    let app = TestApp::spawn(config).await;
    for e in conversation_events() {
        post_event(&app, &e).await;
    }
    first_ticket(&mock).await;
    let page = app
        .client
        .get(app.url(&format!("/admin/conversations/{KEY}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Assembled from Smartsupp Webhooks API events"),
        "{html}"
    );
    assert!(html.contains("<code>conversation.closed</code>"), "{html}");
    assert!(html.contains("messages not received as events"), "{html}");
}

#[tokio::test]
async fn erasing_a_conversation_erases_its_events_and_retention_removes_old_ones() {
    let mock = zendesk().await;
    let app = TestApp::spawn(helpdesk(&mock, smartsupp_yaml(""))).await;
    for event in conversation_events() {
        assert_eq!(post_event(&app, &event).await.0, 200);
    }
    // The visitor's contact record, and another conversation that never closed.
    assert_eq!(post_event(&app, &fixture("contact_created")).await.0, 200);
    let mut other = fixture("conversation_opened");
    other["data"]["conversation"]["id"] = json!("conv-002");
    other["data"]["conversation"]["contact_id"] = json!("contact-002");
    assert_eq!(post_event(&app, &other).await.0, 200);
    eventually("the conversation delivered", WAIT, || async {
        deliveries(&app.db()).iter().any(|d| d.state == "done")
    })
    .await;
    let db = app.db();
    let events = |sql: &str| {
        count(
            &db,
            &format!("SELECT COUNT(*) FROM smartsupp_events WHERE {sql}"),
        )
    };
    assert!(events(&format!("conversation = '{KEY}'")) > 0);
    assert!(events("contact LIKE '%contact-001'") > 0);
    let dir = app.stop().await;
    let config = dir.path().join("deskbridge.yaml");
    let cli = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        all.extend(["--config".as_ref(), config.as_os_str()]);
        common::process::run(&all)
    };
    let erased = cli(&["conversations", "delete", KEY]);
    assert!(erased.ok(), "{}", erased.stderr);
    assert_eq!(
        events(&format!("conversation = '{KEY}'")),
        0,
        "the conversation's events"
    );
    assert_eq!(
        events("contact LIKE '%contact-001'"),
        0,
        "its visitor's contact events"
    );
    assert_eq!(
        events("conversation LIKE '%conv-002'"),
        1,
        "another conversation's stay"
    );
    let dry = cli(&["purge", "--older-than", "0ms", "--dry-run", "--json"]);
    let said: Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(said["events"], 1, "{}", dry.stdout);
    assert_eq!(events("1 = 1"), 1, "a dry run deletes nothing");
    assert!(cli(&["purge", "--older-than", "0ms", "--json"]).ok());
    assert_eq!(events("1 = 1"), 0, "retention removes old events");
}
