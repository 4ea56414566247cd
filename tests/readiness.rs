//! Readiness follows whether a conversation can be committed: while the disk under SQLite is
//! full every hook is answered 503 and so is `/readyz`, and both recover by themselves once
//! writes succeed again.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{conversation, eventually, TestConfig};
use std::time::Duration;

async fn ready(client: &reqwest::Client, port: u16) -> u16 {
    client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_full_disk_makes_the_instance_unready_until_writes_succeed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(
        "  archive:\n    kind: file\n    dir: \"out\"\n    when: \"{{eq channel.id -1}}\"\n",
    );
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    let path = config.write(dir.path());
    // 4 MiB per file: the store's files reach it after a few dozen large conversations.
    let process = Process::start_with_file_limit(&path, 8192);
    let client = reqwest::Client::new();
    assert_eq!(ready(&client, process.port).await, 200);
    let mut refused = None;
    for id in 1..=400 {
        let mut body = conversation(id);
        body["variables"] = serde_json::json!({ "padding": "p".repeat(64 * 1024) });
        let status = process.post(body.to_string()).await;
        if status != 200 {
            refused = Some((id, status));
            break;
        }
    }
    let (id, status) = refused.expect("the file limit was reached");
    assert_eq!(status, 503, "a commit that fails is answered 503");
    assert_eq!(
        ready(&client, process.port).await,
        503,
        "an instance that cannot commit is not ready"
    );
    let lifted = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &process.child.id().to_string(),
            "--fsize=unlimited:",
        ])
        .status()
        .unwrap();
    assert!(lifted.success());
    eventually("ready again", Duration::from_secs(10), || async {
        ready(&client, process.port).await == 200
    })
    .await;
    let mut body = conversation(id);
    body["variables"] = serde_json::json!({ "padding": "p".repeat(64 * 1024) });
    assert_eq!(process.post(body.to_string()).await, 200);
}
