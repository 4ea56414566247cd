//! The admin dashboard end to end in headless Chromium (tests/browser/admin.e2e.mjs, driven by
//! playwright-core), on a store like a new admin's: 55 conversations (missed and offline ones,
//! an anonymous visitor, a chat of 300 messages) and three destinations: `crm` refuses two
//! conversations once (400), `helpdesk` refuses three (422) until they are retried, `archive`
//! is down (connection refused) and paused by its breaker. The browser signs in, reads the
//! overview, finds a conversation, reads what failed and why above its transcript, retries
//! from the conversation and the dead letters (one, a group, all), sends a delivered one
//! again, and checks layout and accessibility at 1280×900 and 390×844. Screenshots of every
//! page at both sizes go to `target/tmp/admin-e2e/`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci` in tests/browser (scripts/test.sh
//! runs it; .ci/run installs Chromium and Node.js). Without them the test says it is skipped;
//! under CI (`CI` set) their absence fails it.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN: &str = "browser-admin-token";

/// What the browser test needs, or `None` after saying why it is skipped; under CI a missing
/// part fails the test.
fn browser_or_skip() -> Option<(PathBuf, PathBuf)> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let dir = repo().join("tests/browser");
    let missing = if !chromium.exists() {
        Some(format!(
            "{} is missing: install Chromium (Debian package chromium) or set CHROMIUM",
            chromium.display()
        ))
    } else if !dir.join("node_modules/playwright-core").exists()
        || !dir.join("node_modules/axe-core").exists()
    {
        Some(
            "playwright-core or axe-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
                .into(),
        )
    } else {
        None
    };
    match missing {
        None => Some((chromium, dir)),
        Some(why) if std::env::var_os("CI").is_some() => panic!("CI must provide it: {why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// A port where nothing listens (connections are refused).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The 55 conversations; returns Dana's and the long chat's keys.
async fn conversations(app: &TestApp, message: &str) -> (String, String) {
    for channel in 1..=48 {
        let mut c = conversation(channel);
        c["visitor"]["name"] = json!(format!("Alex Novák {channel}"));
        c["visitor"]["email"] = json!(format!("visitor{channel}@example.com"));
        match channel % 10 {
            3 => c["channel"]["isMissed"] = json!(true),
            7 => c["channel"]["isOffline"] = json!(true),
            _ => {}
        }
        app.post_hook(c.to_string()).await;
    }
    let mut erik = conversation(78);
    erik["visitor"]["name"] = json!("Erik Berg");
    erik["visitor"]["email"] = json!("erik@example.com");
    app.post_hook(erik.to_string()).await;
    for channel in 81..=83 {
        let mut c = conversation(channel);
        c["visitor"]["name"] = json!(format!("Typo {channel}"));
        c["visitor"]["email"] = json!(format!("typo{channel}@invalid.example"));
        app.post_hook(c.to_string()).await;
    }
    let mut anonymous = conversation(84);
    anonymous["visitor"]["name"] = Value::Null;
    anonymous["visitor"]["email"] = Value::Null;
    app.post_hook(anonymous.to_string()).await;
    let mut long = conversation(85);
    long["visitor"]["name"] = json!("Long Talker");
    long["visitor"]["email"] = json!("long@example.com");
    let start = 1_427_470_439_703_i64;
    long["messages"] = (0..300)
        .map(|i| {
            let visitor = i % 2 == 0;
            json!({
                "type": if visitor { "visitor" } else { "agent" },
                "name": if visitor { "Long Talker" } else { "John Doe" },
                "from": if visitor { "visitor:1" } else { "agent:3" },
                "content": format!("message number {} of a long chat", i + 1),
                "sentAt": start + i * 5_000,
                "triggeredBy": null,
            })
        })
        .collect();
    long["endAt"] = json!(start + 300 * 5_000);
    app.post_hook(long.to_string()).await;
    let mut dana = conversation(77);
    dana["visitor"]["name"] = json!("Dana Svobodová");
    dana["visitor"]["email"] = json!("dana@example.com");
    dana["messages"][0]["content"] = json!(message);
    app.post_hook(dana.to_string()).await;
    ("208-77".into(), "208-85".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_sees_what_failed_and_replays_it_in_a_browser_on_a_laptop_and_a_phone() {
    let Some((chromium, browser)) = browser_or_skip() else {
        return;
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-e2e");
    let _ = std::fs::remove_dir_all(&shots);

    let crm = MockServer::start().await;
    for refused in ["dana@example.com", "erik@example.com"] {
        Mock::given(method("POST"))
            .and(body_string_contains(refused))
            .respond_with(
                ResponseTemplate::new(400).set_body_string("{\"error\":\"mailbox not set up\"}"),
            )
            .up_to_n_times(1)
            .expect(1)
            .mount(&crm)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&crm)
        .await;
    let helpdesk = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("@invalid.example"))
        .respond_with(
            ResponseTemplate::new(422)
                .set_body_string("{\"message\":\"requester email is invalid\"}"),
        )
        .up_to_n_times(3)
        .expect(3)
        .mount(&helpdesk)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&helpdesk)
        .await;
    let mut config = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: webhook\n    url: \"{}/in\"\n\
         \x20 helpdesk:\n    kind: webhook\n    url: \"{}/tickets\"\n\
         \x20 archive:\n    kind: webhook\n    url: \"http://127.0.0.1:{}/archive\"\n\
         \x20   breaker: {{failures: 2, cool_down: \"1h\"}}\n",
        crm.uri(),
        helpdesk.uri(),
        closed_port(),
    ));
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    let app = TestApp::spawn(config).await;

    let message = "My order #1042 never arrived <3";
    let (dana_key, long_key) = conversations(&app, message).await;
    let mut dana = 0;
    eventually(
        "the refused deliveries dead, the archive paused",
        Duration::from_secs(20),
        || {
            let rows = deliveries(&app.db());
            let dead = |destination: &str| {
                rows.iter()
                    .filter(|d| d.destination == destination && d.state == "dead")
                    .count()
            };
            dana = rows
                .iter()
                .find(|d| d.key == dana_key && d.destination == "crm" && d.state == "dead")
                .map_or(0, |d| d.id);
            let settled = dead("crm") == 2
                && dead("helpdesk") == 3
                && rows
                    .iter()
                    .filter(|d| d.destination != "archive")
                    .all(|d| d.state != "pending");
            async move { settled }
        },
    )
    .await;
    paused(&app, "archive").await;

    let output = tokio::process::Command::new("node")
        .arg("admin.e2e.mjs")
        .current_dir(&browser)
        .env("DESKBRIDGE_URL", app.url(""))
        .env("ADMIN_TOKEN", ADMIN)
        .env("VISITOR_EMAIL", "dana@example.com")
        .env("MESSAGE", message)
        .env("DELIVERY_ID", dana.to_string())
        .env("LONG_KEY", &long_key)
        .env("EXPECTED_GROUPS", "crm:2,helpdesk:3")
        .env("CONVERSATIONS", "55")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), output)
        .await
        .expect("the browser test finishes within 5 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What the browser saw is what happened: every crm and helpdesk delivery is done; Dana's
    // went three times (refused, retried, sent again), each replay recorded as the admin's.
    eventually("crm and helpdesk all done", Duration::from_secs(10), || {
        let done = deliveries(&app.db())
            .iter()
            .filter(|d| d.destination != "archive")
            .all(|d| d.state == "done");
        async move { done }
    })
    .await;
    assert_eq!(attempts(&app.db(), dana).len(), 3);
    let replays = texts(
        &app.db(),
        &format!("SELECT replayed_by FROM replays WHERE delivery_id = {dana} ORDER BY id"),
    );
    assert_eq!(replays, ["admin", "admin"]);
    let to_dana = crm
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("dana@example.com"))
        .count();
    assert_eq!(to_dana, 3);
    let mut names = Vec::new();
    for size in ["desktop", "phone"] {
        for page in [
            "01-login",
            "02-overview",
            "03-conversations",
            "04-conversations-search",
            "05-conversation-failed",
            "06-conversation-long",
            "07-dead-letters",
            "08-dead-letters-after-retry",
            "09-conversation-delivered",
            "10-not-found",
        ] {
            names.push(format!("{size}-{page}.png"));
        }
    }
    for name in &names {
        let size = std::fs::metadata(shots.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len();
        assert!(size > 5_000, "{name} is only {size} bytes");
    }
    println!("{} screenshots in {}", names.len(), shots.display());
    app.stop().await;
}
