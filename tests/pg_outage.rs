//! PostgreSQL stops under load and comes back: hooks during the outage get 503 (never 200),
//! readiness fails, and every hook that got 200 is delivered once the database is back, with
//! no restart. Stops the test server itself, so it needs `DESKBRIDGE_TEST_PG_RESTARTABLE=1`
//! (set by scripts/test.sh and CI, which started the server with scripts/pg-test-server.sh).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{conversation, count, eventually, fresh_pg_database, pg_admin_url, Db, TestConfig};
use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

struct Seen(Arc<Mutex<HashSet<String>>>);

impl Respond for Seen {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        self.0
            .lock()
            .unwrap()
            .insert(body["conversation"].as_str().unwrap().to_string());
        ResponseTemplate::new(200)
    }
}

fn pg_server(action: &str) {
    let status = Command::new(common::repo().join("scripts/pg-test-server.sh"))
        .arg(action)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "pg-test-server.sh {action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_during_a_database_outage_get_503_and_nothing_acknowledged_is_lost() {
    let Some(admin) = pg_admin_url() else { return };
    if std::env::var("DESKBRIDGE_TEST_PG_RESTARTABLE").as_deref() != Ok("1") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set DESKBRIDGE_TEST_PG_RESTARTABLE=1"
        );
        eprintln!(
            "skipped: set DESKBRIDGE_TEST_PG_RESTARTABLE=1 to let this test stop the test server"
        );
        return;
    }
    let url = fresh_pg_database(&admin);
    let mock = MockServer::start().await;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Seen(seen.clone()))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = TestConfig::with_destinations(&format!("  target:\n    kind: webhook\n    url: \"{}/hook\"\n", mock.uri()))
        .delivery("  workers: 8\n  request_timeout: \"2s\"\n  lease: \"8s\"\n  retry_schedule: [\"200ms\", \"500ms\", \"1s\"]\n");
    config.store_url = Some(url.clone());
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    let process = Process::start(&config.write(dir.path()));
    let port = process.port;

    // A steady load of new conversations, each answer recorded with when it was sent.
    let results: Arc<Mutex<Vec<(i64, Instant, u16)>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let (results, running) = (results.clone(), running.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut id = 0;
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                let sent = Instant::now();
                let status = client
                    .post(format!(
                        "http://127.0.0.1:{port}/hooks/smartsupp/{}",
                        common::TOKEN
                    ))
                    .body(conversation(id).to_string())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                results.lock().unwrap().push((id, sent, status));
                id += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::spawn_blocking(|| pg_server("stop"))
        .await
        .unwrap();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap()
        .status();
    let up = Instant::now();
    tokio::task::spawn_blocking(|| pg_server("start"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(ready, 503, "readiness fails while the database is down");

    let results = results.lock().unwrap().clone();
    let during: Vec<_> = results
        .iter()
        .filter(|(_, sent, _)| *sent >= down && *sent < up)
        .collect();
    assert!(!during.is_empty(), "no hook was sent during the outage");
    assert!(
        during.iter().all(|(_, _, status)| *status == 503),
        "during the outage: {during:?}"
    );
    let acknowledged: Vec<i64> = results
        .iter()
        .filter(|(_, _, s)| *s == 200)
        .map(|(id, _, _)| *id)
        .collect();
    assert!(
        results.iter().any(|(_, sent, s)| *sent >= up && *s == 200),
        "hooks are accepted again without a restart"
    );

    let db = Db::Postgres(url);
    eventually(
        "every acknowledged conversation delivered",
        Duration::from_secs(60),
        || {
            let seen = seen.clone();
            let acknowledged = acknowledged.clone();
            async move {
                let seen = seen.lock().unwrap();
                acknowledged
                    .iter()
                    .all(|id| seen.contains(&format!("208-{id}")))
            }
        },
    )
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM conversations") as usize,
        acknowledged.len()
    );
    drop(process);
}
