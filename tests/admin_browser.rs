//! The admin dashboard end to end in headless Chromium (tests/browser/admin.e2e.mjs, driven by
//! playwright-core): a real deskbridge, a mock destination that refuses one conversation once,
//! and a browser that signs in, finds it by email, reads the transcript, retries the dead
//! delivery and watches it turn done. Screenshots go to `target/tmp/admin-e2e/`.
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`) and `npm ci` in tests/browser (scripts/test.sh
//! runs it; .ci/run installs Chromium and Node.js). Without them the test says it is skipped;
//! under CI (`CI` set) their absence fails it.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use serde_json::json;
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
    } else if !dir.join("node_modules/playwright-core").exists() {
        Some(
            "playwright-core is missing: run `npm ci` in tests/browser (scripts/test.sh does)"
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

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_finds_a_conversation_and_replays_its_dead_delivery_in_a_browser() {
    let Some((chromium, browser)) = browser_or_skip() else {
        return;
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-e2e");
    let _ = std::fs::remove_dir_all(&shots);

    let mock = MockServer::start().await;
    for refused in ["dana@example.com", "erik@example.com"] {
        Mock::given(method("POST"))
            .and(body_string_contains(refused))
            .respond_with(
                ResponseTemplate::new(400).set_body_string("{\"error\":\"mailbox not set up\"}"),
            )
            .up_to_n_times(1)
            .expect(1)
            .mount(&mock)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&mock)
        .await;
    let mut config = TestConfig::with_destinations(&format!(
        "  crm:\n    kind: webhook\n    url: \"{}/in\"\n",
        mock.uri()
    ));
    config.server_extra = format!("  admin_token: \"{ADMIN}\"\n");
    let app = TestApp::spawn(config).await;

    // A few conversations; Dana's and Erik's are refused once and die (400 is permanent).
    let mut erik = conversation(78);
    erik["visitor"]["email"] = json!("erik@example.com");
    app.post_hook(erik.to_string()).await;
    for channel in 1..=4 {
        let mut c = conversation(channel);
        c["visitor"]["email"] = json!(format!("visitor{channel}@example.com"));
        app.post_hook(c.to_string()).await;
    }
    let message = "My order #1042 never arrived <3";
    let mut dana = conversation(77);
    dana["visitor"]["name"] = json!("Dana Svobodová");
    dana["visitor"]["email"] = json!("dana@example.com");
    dana["messages"][0]["content"] = json!(message);
    app.post_hook(dana.to_string()).await;
    let mut dead = 0;
    eventually(
        "Dana's and Erik's deliveries dead",
        Duration::from_secs(10),
        || {
            let rows = deliveries(&app.db());
            let dead_key = |key: &str| {
                rows.iter()
                    .find(|d| d.key == key && d.state == "dead")
                    .map(|d| d.id)
            };
            dead = dead_key("208-77").unwrap_or(0);
            let both = dead != 0 && dead_key("208-78").is_some();
            async move { both }
        },
    )
    .await;

    let output = tokio::process::Command::new("node")
        .arg("admin.e2e.mjs")
        .current_dir(&browser)
        .env("DESKBRIDGE_URL", app.url(""))
        .env("ADMIN_TOKEN", ADMIN)
        .env("VISITOR_EMAIL", "dana@example.com")
        .env("MESSAGE", message)
        .env("DELIVERY_ID", dead.to_string())
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the browser test finishes within 2 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What the browser saw is what happened: both deliveries are done, each sent twice.
    eventually("Erik's delivery done", Duration::from_secs(10), || {
        let done = deliveries(&app.db())
            .iter()
            .any(|d| d.key == "208-78" && d.state == "done");
        async move { done }
    })
    .await;
    let row = deliveries(&app.db())
        .into_iter()
        .find(|d| d.id == dead)
        .unwrap();
    assert_eq!(row.state, "done");
    assert_eq!(attempts(&app.db(), dead).len(), 2);
    let to_dana = mock
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("dana@example.com"))
        .count();
    assert_eq!(to_dana, 2);
    for name in [
        "01-login.png",
        "02-overview.png",
        "03-conversations-search.png",
        "04-conversation.png",
        "05-dead-letters.png",
        "06-conversation-done.png",
        "07-phone-overview.png",
        "08-phone-conversation.png",
    ] {
        let size = std::fs::metadata(shots.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len();
        assert!(size > 5_000, "{name} is only {size} bytes");
    }
    println!("screenshots in {}", shots.display());
    app.stop().await;
}
