//! What the hook accepts, the worker can read: bodies the full parse would refuse are refused at
//! the hook with the reason, ids longer than 128 characters are refused naming the field, and
//! conversation keys cannot forge lines in text logs.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{conversation, count, TestApp, TestConfig};
use serde_json::Value;

/// Every conversation to a file under the test's folder.
fn config(dir: &std::path::Path) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  outbox:\n    kind: file\n    dir: \"{}\"\n",
        dir.join("outbox").display()
    ))
}

/// The documented example with the JSON text `raw` in place of `"duration": 36`.
fn with_duration(raw: &str) -> Vec<u8> {
    let body = conversation(1).to_string();
    assert!(body.contains("\"duration\":36"));
    body.replacen("\"duration\":36", &format!("\"duration\":{raw}"), 1)
        .into_bytes()
}

#[tokio::test]
async fn bodies_the_worker_could_not_read_are_refused_at_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(config(dir.path())).await;
    let mut invalid_utf8 = conversation(1).to_string().into_bytes();
    let at = invalid_utf8.windows(5).position(|w| w == b"Hello").unwrap();
    invalid_utf8[at] = 0xff;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with_duration("1e400"), "number out of range"),
        (with_duration("-1e400"), "number out of range"),
        (
            with_duration(&format!("1{}", "0".repeat(400))),
            "number out of range",
        ),
        (with_duration(r#""\ud800""#), "hex escape"),
        (invalid_utf8, "invalid unicode code point"),
        (with_duration(&deep), "recursion limit exceeded"),
    ];
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(80)
            .collect::<String>();
        let response = app.post_hook(body).await;
        assert_eq!(response.status(), 400, "{shown}");
        let answer: Value = response.json().await.unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with("body is not valid JSON: "), "{error}");
        assert!(error.contains(expected), "{shown}: {error}");
    }
    // Within range, the same body is a conversation.
    let response = app.post_hook(with_duration("1e300")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        count(&app.db(), "SELECT COUNT(*) FROM conversations"),
        1,
        "only the readable body is stored"
    );
}

#[tokio::test]
async fn ids_longer_than_128_characters_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(config(dir.path())).await;
    let long = "x".repeat(129);
    let mut long_channel = conversation(1);
    long_channel["channel"]["id"] = long.clone().into();
    let mut long_account = conversation(1);
    long_account["accountId"] = long.clone().into();
    let mut long_number = conversation(1);
    long_number["channel"]["id"] = Value::Null;
    let long_number =
        long_number
            .to_string()
            .replacen("\"id\":null", &format!("\"id\":{}", "9".repeat(129)), 1);
    let cases = [
        (
            long_channel.to_string(),
            "channel.id is longer than 128 characters",
        ),
        (
            long_account.to_string(),
            "accountId is longer than 128 characters",
        ),
        (long_number, "channel.id is longer than 128 characters"),
    ];
    for (body, expected) in cases {
        let response = app.post_hook(body).await;
        assert_eq!(response.status(), 422);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], expected);
    }
    let mut at_limit = conversation(1);
    at_limit["accountId"] = "a".repeat(128).into();
    at_limit["channel"]["id"] = "c".repeat(128).into();
    let response = app.post_hook(at_limit.to_string()).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["conversation"],
        format!("{}-{}", "a".repeat(128), "c".repeat(128))
    );
}

#[tokio::test]
async fn keys_cannot_forge_lines_in_text_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.log = "  level: \"warn,deskbridge=debug\"\n  format: \"text\"\n".into();
    let path = config.write(dir.path());
    let server = Process::start(&path);
    let mut body = conversation(1);
    body["accountId"] = "208\u{1b}[2J".into();
    body["channel"]["id"] = "1\n2030-01-01T00:00:00.000000Z  INFO deskbridge: forged".into();
    assert_eq!(server.post(body.to_string()).await, 200);
    let line = server.wait_for_log("hook accepted");
    assert!(
        line.contains(
            r"conversation=208\u{1b}[2J-1\n2030-01-01T00:00:00.000000Z  INFO deskbridge: forged"
        ),
        "{line}"
    );
    let logs = server.logs.lock().unwrap().clone();
    assert!(
        logs.iter()
            .all(|l| !l.starts_with("2030") && !l.contains('\u{1b}')),
        "{logs:#?}"
    );
}
