//! The file destination: one file per delivery under its documented name, names that never
//! collide or outgrow the file system, owner-only files written through a temporary file that
//! is created exclusively and removed when the write fails.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{conversation, deliveries, eventually, sample, TestApp, TestConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn archive(dir: &Path) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  out:\n    kind: file\n    dir: \"{}\"\n",
        dir.display()
    ))
}

/// Waits until every delivery has `state`.
async fn all_in(app: &TestApp, n: usize, state: &str) {
    eventually(
        &format!("{n} deliveries {state}"),
        Duration::from_secs(10),
        || {
            let rows = deliveries(&app.db());
            let done = rows.len() == n && rows.iter().all(|d| d.state == state);
            async move { done }
        },
    )
    .await;
}

/// Names of the entries in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn with_channel(id: Value) -> Value {
    let mut c = sample("chat.json");
    c["channel"]["id"] = id;
    c
}

#[tokio::test]
async fn keys_that_differ_only_in_unusual_characters_get_their_own_files() {
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(archive(out.path())).await;
    let ids = ["a.b", "a_b", "a/b", "A_B", "a b", "x~1"];
    app.post_hook(sample("chat.json").to_string()).await;
    for id in ids {
        assert_eq!(
            app.post_hook(with_channel(json!(id)).to_string())
                .await
                .status(),
            200
        );
    }
    all_in(&app, ids.len() + 1, "done").await;
    let files = names(out.path());
    assert_eq!(files.len(), ids.len() + 1, "{files:?}");
    assert!(
        files.contains(&"208-55039-v1-out.json".to_string()),
        "an ordinary key keeps the documented name: {files:?}"
    );
    assert!(
        files.contains(&"208-a_b-v1-out.json".to_string()),
        "{files:?}"
    );
    for file in &files {
        let body: Value =
            serde_json::from_str(&std::fs::read_to_string(out.path().join(file)).unwrap()).unwrap();
        let key = body["conversation"].as_str().unwrap();
        assert!(
            file.starts_with(&key.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")),
            "{file} holds {key}"
        );
    }
}

#[tokio::test]
async fn a_long_key_is_shortened_below_the_file_name_limit() {
    let out = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(archive(out.path())).await;
    // Both ids at the longest accepted (128 characters): the key alone is 257.
    let account = format!("208{}", "0".repeat(125));
    let long = "x".repeat(128);
    let other = format!("{}y", "x".repeat(127));
    for id in [&long, &other] {
        let mut c = with_channel(json!(id));
        c["accountId"] = json!(account);
        app.post_hook(c.to_string()).await;
    }
    all_in(&app, 2, "done").await;
    let files = names(out.path());
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        assert!(file.len() <= 255, "{} bytes: {file}", file.len());
        assert!(
            file.starts_with("2080000") && file.ends_with("-v1-out.json"),
            "{file}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_owner_only_and_planted_symlinks_are_not_followed() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let out = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let victim = elsewhere.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    // Where the temporary file used to be, and where the file itself goes.
    symlink(&victim, out.path().join("208-55039-v1-out.json.tmp")).unwrap();
    symlink(&victim, out.path().join("208-3-v1-out.json")).unwrap();
    let app = TestApp::spawn(archive(out.path())).await;
    app.post_hook(sample("chat.json").to_string()).await;
    app.post_hook(conversation(3).to_string()).await;
    all_in(&app, 2, "done").await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    for name in ["208-55039-v1-out.json", "208-3-v1-out.json"] {
        let path: PathBuf = out.path().join(name);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "{name} is a regular file");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        assert!(std::fs::read_to_string(&path).unwrap().contains("208-"));
    }
}

#[tokio::test]
async fn a_failed_write_leaves_no_temporary_file() {
    let out = tempfile::tempdir().unwrap();
    // A folder where the file should go: the final rename fails.
    let blocker = out.path().join("208-55039-v1-out.json");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), "x").unwrap();
    let app = TestApp::spawn(archive(out.path())).await;
    app.post_hook(sample("chat.json").to_string()).await;
    eventually("two failed attempts", Duration::from_secs(10), || {
        let tried = deliveries(&app.db())
            .first()
            .is_some_and(|d| d.attempts >= 2 && d.last_error.is_some());
        async move { tried }
    })
    .await;
    let error = deliveries(&app.db())[0].last_error.clone().unwrap();
    assert!(error.starts_with("cannot write file"), "{error}");
    assert_eq!(names(out.path()), vec!["208-55039-v1-out.json"]);
}

#[test]
fn a_file_destination_name_must_leave_room_in_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(101);
    let path =
        TestConfig::with_destinations(&format!("  {name}:\n    kind: file\n    dir: \"out\"\n"))
            .write(dir.path());
    let error = deskbridge::config::load(&path).unwrap_err().to_string();
    assert!(
        error.contains(&format!("destinations.{name}: a file destination's name")),
        "{error}"
    );
}
