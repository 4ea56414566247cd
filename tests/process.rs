//! deskbridge as a process: crash recovery after SIGKILL, draining on SIGTERM, and the
//! `check` and `render` commands.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{conversation, deliveries, eventually, TestConfig};
use std::path::Path;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::process::{run, Process};

fn config_for(mock: &MockServer) -> TestConfig {
    let mut config = TestConfig::with_destinations(&format!(
        "  target:\n    kind: webhook\n    url: \"{}/hook\"\n",
        mock.uri()
    ))
    .delivery("  workers: 4\n  request_timeout: \"10s\"\n  retry_schedule: [\"100ms\"]\n  shutdown_grace: \"8s\"\n");
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    config
}

async fn slow_mock(delay: Duration) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay))
        .mount(&mock)
        .await;
    mock
}

#[tokio::test]
async fn deliveries_pending_at_a_crash_are_delivered_after_restart() {
    let mock = slow_mock(Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_for(&mock).write(dir.path());
    let first = Process::start(&path);
    for i in 0..20 {
        assert_eq!(first.post(conversation(100 + i).to_string()).await, 200);
    }
    eventually(
        "four deliveries in flight",
        Duration::from_secs(10),
        || async { mock.received_requests().await.unwrap_or_default().len() >= 4 },
    )
    .await;
    drop(first); // SIGKILL
    let in_flight = mock.received_requests().await.unwrap_or_default();
    mock.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;

    let _second = Process::start(&path);
    let db = common::Db::Sqlite(dir.path().join("db.sqlite"));
    eventually(
        "all 20 deliveries done after restart",
        Duration::from_secs(20),
        || async {
            let rows = deliveries(&db);
            rows.len() == 20 && rows.iter().all(|d| d.state == "done")
        },
    )
    .await;
    let delivered = mock.received_requests().await.unwrap();
    let mut ids: Vec<String> = delivered
        .iter()
        .map(|r| {
            r.headers
                .get("webhook-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        20,
        "every conversation reached the destination after the restart"
    );
    // Anything repeated was in flight at the kill, and kept its idempotency key.
    for r in &in_flight {
        let id = r.headers.get("webhook-id").unwrap().to_str().unwrap();
        assert!(ids.iter().any(|x| x == id));
    }
}

#[tokio::test]
async fn sigterm_finishes_deliveries_in_flight_and_exits_zero() {
    let mock = slow_mock(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_for(&mock).write(dir.path());
    let mut process = Process::start(&path);
    for i in 0..3 {
        assert_eq!(process.post(conversation(i).to_string()).await, 200);
    }
    eventually(
        "three deliveries in flight",
        Duration::from_secs(10),
        || async { mock.received_requests().await.unwrap_or_default().len() >= 3 },
    )
    .await;
    process.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let status = process.child.wait().unwrap();
        drop(process);
        status
    })
    .await
    .unwrap();
    assert!(status.success(), "exit status {status:?}");
    let rows = deliveries(&common::Db::Sqlite(dir.path().join("db.sqlite")));
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|d| d.state == "done" && d.attempts == 1),
        "{rows:?}"
    );
}

fn check(config: &Path) -> (bool, String) {
    let out = run(&[
        std::ffi::OsStr::new("check"),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    (out.ok(), format!("{}{}", out.stdout, out.stderr))
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = run(&["check"]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(out.stdout.contains("config/deskbridge.yaml: ok"));
}

#[test]
fn check_names_file_line_and_key_of_an_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let path =
        TestConfig::with_destinations("  archive:\n    kind: webhook\n    urll: \"http://x\"\n")
            .write(dir.path());
    let (ok, text) = check(&path);
    assert!(!ok);
    let text = text.trim();
    let line = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .position(|l| l.contains("urll"))
        .unwrap()
        + 1;
    let expected = format!(
        "{}:{line}: destinations.archive.urll: unknown field `urll`",
        path.display()
    );
    assert!(
        text.starts_with(&expected),
        "{text}\nexpected it to start with {expected}"
    );
}

#[test]
fn check_refuses_a_short_admin_token_and_an_unknown_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        TestConfig::with_destinations("  archive:\n    kind: file\n    dir: \"out\"\n");
    config.server_extra = "  admin_token: \"short\"\n  admin_time_zone: \"Mars/Olympus\"\n".into();
    let path = config.write(dir.path());
    let (ok, text) = check(&path);
    assert!(!ok);
    let line_of = |needle: &str| {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    for expected in [
        format!(
            "{}:{}: server.admin_token: must be at least 12 characters",
            path.display(),
            line_of("admin_token")
        ),
        format!(
            "{}:{}: server.admin_time_zone: \"Mars/Olympus\" is not an IANA time zone",
            path.display(),
            line_of("admin_time_zone")
        ),
    ] {
        assert!(text.contains(&expected), "{text}\nexpected {expected}");
    }
}

#[test]
fn check_names_a_bad_template_and_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let broken = TestConfig::with_destinations(
        "  archive:\n    kind: file\n    dir: \"out\"\n    template: \"broken.json.hbs\"\n",
    )
    .template(
        "broken.json.hbs",
        "{\n  \"a\": \"{{#if visitor.name}}\"\n}\n",
    );
    let (ok, text) = check(&broken.write(dir.path()));
    assert!(!ok);
    assert!(
        text.contains("template broken.json.hbs does not compile"),
        "{text}"
    );
    assert!(text.contains("\"broken.json.hbs\":4:1"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let misspelt = TestConfig::with_destinations(
        "  archive:\n    kind: file\n    dir: \"out\"\n    template: \"typo.json.hbs\"\n",
    )
    .template("typo.json.hbs", "{\"name\": \"{{visitor.nmae}}\"}");
    let (ok, text) = check(&misspelt.write(dir.path()));
    assert!(!ok);
    assert!(
        text.contains(
            "destinations.archive: sample chat.json: template typo.json.hbs failed to render"
        ),
        "{text}"
    );
    assert!(text.contains("visitor.nmae"), "{text}");
}

#[test]
fn render_prints_the_request_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = TestConfig::with_destinations(
        "  archive:\n    kind: webhook\n    url: \"https://example.com/in\"\n    headers: { X-Api-Key: \"very-secret-key\" }\n    signing_secret: \"whsec_c2VjcmV0LXNpZ25pbmcta2V5\"\n",
    )
    .write(dir.path());
    let sample = common::repo().join("samples/chat.json");
    let out = run(&[
        "render".as_ref(),
        "--destination".as_ref(),
        std::ffi::OsStr::new("archive"),
        sample.as_os_str(),
        "--config".as_ref(),
        path.as_os_str(),
    ]);
    let text = &out.stdout;
    assert!(out.ok(), "{}", out.stderr);
    assert!(text.starts_with("POST https://example.com/in\n"), "{text}");
    assert!(text.contains("X-Api-Key: ***"), "{text}");
    assert!(text.contains("webhook-signature: v1,"), "{text}");
    assert!(
        !text.contains("very-secret-key") && !text.contains("c2VjcmV0"),
        "{text}"
    );
    let body_start = text.find("\n\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(text[body_start..].trim()).unwrap();
    assert_eq!(body["conversation"], "208-55039");
}

#[test]
fn check_and_render_work_on_the_example_configs() {
    for (config, destination, target, requests) in [
        (
            "config/examples/zendesk.yaml",
            "helpdesk",
            "POST https://",
            1,
        ),
        ("config/examples/hubspot.yaml", "crm", "POST https://", 3),
        ("config/examples/email.yaml", "helpdesk", "SEND smtp://", 1),
    ] {
        let out = run(&["check", "--config", config]);
        assert!(out.ok(), "{config}: {}", out.stderr);
        let out = run(&[
            "render",
            "--destination",
            destination,
            "samples/chat.json",
            "--config",
            config,
        ]);
        assert!(out.ok(), "{config}: {}", out.stderr);
        let text = &out.stdout;
        assert_eq!(text.matches(target).count(), requests, "{text}");
        if target.starts_with("POST") {
            assert!(text.contains("authorization: ***"), "{text}");
        } else {
            // The whole message, both parts, as a mail client receives it.
            assert!(
                text.contains("Message-ID: <208-55039-v1@example.com>"),
                "{text}"
            );
            assert!(
                text.contains("Content-Type: text/plain; charset=utf-8"),
                "{text}"
            );
            assert!(
                text.contains("Content-Type: text/html; charset=utf-8"),
                "{text}"
            );
        }
        assert!(!text.contains("not-set"), "a secret leaked: {text}");
    }
}

#[tokio::test]
async fn sighup_reloads_a_valid_config_and_keeps_the_running_one_when_invalid() {
    let first = slow_mock(Duration::ZERO).await;
    let second = slow_mock(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let destination = |name: &str, mock: &MockServer| {
        format!(
            "  {name}:\n    kind: webhook\n    url: \"{}/hook\"\n",
            mock.uri()
        )
    };
    let mut config = config_for(&first);
    config.destinations = destination("first", &first);
    let path = config.write(dir.path());
    let process = Process::start(&path);
    assert_eq!(process.post(conversation(1).to_string()).await, 200);
    common::requests_at(&first, 1).await;

    let overview = |token: &'static str| {
        let url = format!("http://127.0.0.1:{}/admin/api/overview", process.port);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        overview("admin-token-from-file").await.status(),
        404,
        "the dashboard is off"
    );

    // A valid new configuration: a second destination, and the dashboard on with its token
    // from a file.
    let admin_token = dir.path().join("admin_token");
    std::fs::write(&admin_token, "admin-token-from-file\n").unwrap();
    config.server_extra = format!("  admin_token_file: \"{}\"\n", admin_token.display());
    config.destinations = format!(
        "{}{}",
        destination("first", &first),
        destination("second", &second)
    );
    config.write(dir.path());
    process.signal("HUP");
    process.wait_for_log("configuration reloaded");
    assert_eq!(process.post(conversation(2).to_string()).await, 200);
    common::requests_at(&first, 2).await;
    common::requests_at(&second, 1).await;
    let answer = overview("admin-token-from-file").await;
    assert_eq!(answer.status(), 200);
    let names: Vec<String> = answer.json::<serde_json::Value>().await.unwrap()["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["first", "second"]);

    // An invalid one: reported, and the running configuration stays.
    config.destinations = format!("{}    urll: \"x\"\n", destination("first", &first));
    config.write(dir.path());
    process.signal("HUP");
    let refused = process.wait_for_log("reload refused");
    assert!(refused.contains("destinations.first.urll"), "{refused}");
    assert_eq!(process.post(conversation(3).to_string()).await, 200);
    common::requests_at(&first, 3).await;
    common::requests_at(&second, 2).await;
}

#[tokio::test]
async fn secrets_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "from-a-file\nsecond-token\n").unwrap();
    let mock = slow_mock(Duration::ZERO).await;
    let whsec = dir.path().join("whsec");
    std::fs::write(&whsec, "whsec_c2VjcmV0LXNpZ25pbmcta2V5\n").unwrap();
    let mut config = config_for(&mock);
    config.destinations = format!(
        "  archive:\n    kind: webhook\n    url: \"{}/hook\"\n    signing_secret_file: \"{}\"\n",
        mock.uri(),
        whsec.display()
    );
    config.server_extra = format!("  hook_tokens_file: \"{}\"\n", token_file.display());
    let path = config.write(dir.path());
    // The harness also writes hook_tokens inline: giving both is refused, naming both.
    let (ok, text) = check(&path);
    assert!(
        !ok && text.contains("give either hook_tokens or hook_tokens_file"),
        "{text}"
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("  hook_tokens: [\"test-token\"]\n", "");
    std::fs::write(&path, text).unwrap();
    let process = Process::start(&path);
    let post = |token: &'static str| {
        let url = format!("http://127.0.0.1:{}/hooks/smartsupp/{token}", process.port);
        async move {
            reqwest::Client::new()
                .post(url)
                .body(conversation(1).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("test-token").await, 401, "the inline token is gone");
    assert_eq!(
        post("second-token").await,
        200,
        "every line of the file is a token"
    );
    let r = &common::requests_at(&mock, 1).await[0];
    assert!(
        common::header(r, "webhook-signature").starts_with("v1,"),
        "signed with the secret from its file"
    );
}
