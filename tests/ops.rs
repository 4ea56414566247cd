//! Operator commands (`deliveries`, `conversations`, `purge`) run as the real binary against a
//! store prepared by a running deskbridge, and retention deleting exactly what it may.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::run;
use common::{conversation, deliveries, eventually, TestApp, TestConfig};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn answering(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(status).set_body_string(format!("answer {status}")))
        .mount(&server)
        .await;
    server
}

/// Runs `deskbridge ARGS --config CONFIG`; returns exit code and stdout.
fn cli(config: &Path, args: &[&str]) -> (i32, String) {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend(["--config".as_ref(), config.as_os_str()]);
    let out = run(&all);
    (out.code, out.stdout)
}

fn json(config: &Path, args: &[&str]) -> Value {
    let (code, out) = cli(config, args);
    assert_eq!(code, 0, "{args:?}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_inspect_replay_erase_and_purge() {
    let (good, bad, flaky) = (
        answering(200).await,
        answering(400).await,
        answering(503).await,
    );
    let not_four = "    when: \"{{not (eq channel.id 4)}}\"\n";
    let destinations = format!(
        "  good:\n    kind: webhook\n    url: \"{}/in\"\n  bad:\n    kind: webhook\n    url: \"{}/in\"\n{not_four}  flaky:\n    kind: webhook\n    url: \"{}/in\"\n{not_four}",
        good.uri(),
        bad.uri(),
        flaky.uri()
    );
    let app = TestApp::spawn(
        TestConfig::with_destinations(&destinations)
            .delivery("  workers: 2\n  request_timeout: \"2s\"\n  retry_schedule: [\"1h\"]\n"),
    )
    .await;
    let config = app.dir.path().join("deskbridge.yaml");
    for id in 1..=4 {
        assert_eq!(
            app.post_hook(conversation(id).to_string()).await.status(),
            200
        );
    }
    let db = app.db();
    eventually(
        "every delivery attempted once",
        Duration::from_secs(15),
        || {
            let db = db.clone();
            async move {
                let rows = deliveries(&db);
                rows.len() == 10 && rows.iter().all(|d| d.attempts == 1)
            }
        },
    )
    .await;

    // list, with and without filters
    let all = json(&config, &["deliveries", "list", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 10);
    let dead = json(
        &config,
        &[
            "deliveries",
            "list",
            "--state",
            "dead",
            "--since",
            "1h",
            "--json",
        ],
    );
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(
        |d| d["destination"] == "bad" && d["last_error"].as_str().unwrap().contains("HTTP 400")
    ));
    let good_rows = json(
        &config,
        &["deliveries", "list", "--destination", "good", "--json"],
    );
    assert_eq!(good_rows.as_array().unwrap().len(), 4);
    let (code, table) = cli(&config, &["deliveries", "list", "--state", "pending"]);
    assert_eq!(code, 0);
    assert!(
        table.starts_with("      ID  CONVERSATION") && table.matches("flaky").count() == 3,
        "{table}"
    );

    // show: attempts and the request as rendered now
    let id = dead[0]["id"].as_i64().unwrap().to_string();
    let shown = json(&config, &["deliveries", "show", &id, "--json"]);
    assert_eq!(shown["attempts"][0]["status"], 400);
    assert_eq!(shown["attempts"][0]["excerpt"], "answer 400");
    assert!(shown["request"]
        .as_str()
        .unwrap()
        .starts_with(&format!("POST {}/in\n", bad.uri())));
    assert_eq!(
        cli(&config, &["deliveries", "show", "999999"]).0,
        3,
        "unknown id"
    );

    // conversations show, and erase refused while a delivery is pending
    let versions = json(&config, &["conversations", "show", "208-1", "--json"]);
    assert_eq!(versions[0]["deliveries"].as_array().unwrap().len(), 3);
    assert_eq!(versions[0]["body"]["channel"]["id"], 1);
    assert_eq!(
        cli(&config, &["conversations", "delete", "208-1"]).0,
        4,
        "refused: flaky is pending"
    );
    assert_eq!(cli(&config, &["conversations", "show", "208-77"]).0, 3);

    // retention: only conversation 4 (all done) may go; pending and dead ones stay
    let dry = json(
        &config,
        &["purge", "--older-than", "0ms", "--dry-run", "--json"],
    );
    assert_eq!(
        (dry["conversations"].as_i64(), dry["deliveries"].as_i64()),
        (Some(1), Some(1))
    );
    let purged = json(&config, &["purge", "--older-than", "0ms", "--json"]);
    assert_eq!(purged["conversations"], 1);
    assert_eq!(
        cli(&config, &["conversations", "show", "208-4"]).0,
        3,
        "purged"
    );
    assert_eq!(
        deliveries(&app.db()).len(),
        9,
        "pending and dead deliveries untouched"
    );
    let kept = json(&config, &["purge", "--json"]);
    assert_eq!(
        kept["conversations"], 0,
        "nothing younger than store.retention goes"
    );

    // replay the dead ones once the destination is fixed
    bad.reset().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&bad)
        .await;
    let replayed = json(
        &config,
        &[
            "deliveries",
            "retry",
            "--dead",
            "--destination",
            "bad",
            "--json",
        ],
    );
    assert_eq!(replayed["replayed"], 3);
    let db = app.db();
    eventually("replayed deliveries done", Duration::from_secs(15), || {
        let db = db.clone();
        async move {
            deliveries(&db)
                .iter()
                .filter(|d| d.destination == "bad")
                .all(|d| d.state == "done")
        }
    })
    .await;
    assert_eq!(bad.received_requests().await.unwrap().len(), 3);
}
