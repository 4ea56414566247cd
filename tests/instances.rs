//! Several `deskbridge` processes on one PostgreSQL database: a shared queue, no double
//! delivery, survival of a killed instance, race-free duplicates across instances.
//! Needs `DESKBRIDGE_TEST_PG_URL` (scripts/pg-test-server.sh start); skipped without it
//! outside CI.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{conversation, count, eventually, fresh_pg_database, pg_admin_url, Db, TestConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Counts requests by `webhook-id`, answering 200 after `delay`.
struct Counter {
    seen: Arc<Mutex<HashMap<String, usize>>>,
    delay: Duration,
}

impl Respond for Counter {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let id = r
            .headers
            .get("webhook-id")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        *self.seen.lock().unwrap().entry(id).or_default() += 1;
        ResponseTemplate::new(200).set_delay(self.delay)
    }
}

async fn counting_mock(delay: Duration) -> (MockServer, Arc<Mutex<HashMap<String, usize>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Counter {
            seen: seen.clone(),
            delay,
        })
        .mount(&server)
        .await;
    (server, seen)
}

/// `n` instances on one new database, each with its own folder and config.
fn start(n: usize, mock: &MockServer, url: &str) -> (Vec<Process>, Vec<tempfile::TempDir>) {
    let mut processes = Vec::new();
    let mut dirs = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TestConfig::with_destinations(&format!(
            "  target:\n    kind: webhook\n    url: \"{}/hook\"\n",
            mock.uri()
        ))
        .delivery("  workers: 8\n  request_timeout: \"2s\"\n  lease: \"8s\"\n  retry_schedule: [\"200ms\", \"200ms\", \"200ms\", \"1s\", \"1s\"]\n  shutdown_grace: \"2s\"\n");
        config.store_url = Some(url.to_string());
        config.log = "  level: \"info\"\n  format: \"json\"\n".into();
        let path = config.write(dir.path());
        processes.push(Process::start(&path));
        dirs.push(dir);
    }
    (processes, dirs)
}

/// Posts conversations `ids` to the live instances in turn, 32 at a time; returns the ids
/// that were acknowledged with 200.
async fn post_round_robin(ports: &[u16], ids: std::ops::Range<i64>) -> Vec<i64> {
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(32) {
        let mut tasks = Vec::new();
        for id in chunk {
            let port = ports[*id as usize % ports.len()];
            let client = client.clone();
            let body = conversation(*id).to_string();
            let id = *id;
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(format!(
                        "http://127.0.0.1:{port}/hooks/smartsupp/{}",
                        common::TOKEN
                    ))
                    .body(body)
                    .send()
                    .await;
                (id, r.map(|r| r.status().as_u16()).unwrap_or(0))
            }));
        }
        for t in tasks {
            let (id, status) = t.await.unwrap();
            if status == 200 {
                acknowledged.push(id);
            }
        }
    }
    acknowledged
}

async fn all_done(db: &Db, n: i64, limit: Duration) {
    let db = db.clone();
    eventually(&format!("{n} deliveries done"), limit, || {
        let db = db.clone();
        async move { count(&db, "SELECT COUNT(*) FROM deliveries WHERE state = 'done'") == n }
    })
    .await;
}

fn webhook_id(key: &str) -> String {
    deskbridge::destinations::idempotency_key(
        &deskbridge::smartsupp::Stored {
            key: key.to_string(),
            version: 1,
            received_at: 0,
        },
        "target",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_every_conversation_once() {
    let Some(admin) = pg_admin_url() else { return };
    let url = fresh_pg_database(&admin);
    let (mock, seen) = counting_mock(Duration::ZERO).await;
    let (processes, _dirs) = start(3, &mock, &url);
    let ports: Vec<u16> = processes.iter().map(|p| p.port).collect();
    let acknowledged = post_round_robin(&ports, 0..3000).await;
    assert_eq!(acknowledged.len(), 3000);
    all_done(&Db::Postgres(url.clone()), 3000, Duration::from_secs(90)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3000, "every conversation delivered");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_nothing() {
    let Some(admin) = pg_admin_url() else { return };
    let url = fresh_pg_database(&admin);
    let (mock, seen) = counting_mock(Duration::from_millis(30)).await;
    let (mut processes, _dirs) = start(3, &mock, &url);
    let ports: Vec<u16> = processes.iter().map(|p| p.port).collect();
    let mut acknowledged = post_round_robin(&ports, 0..1500).await;
    let killed = processes.remove(1); // SIGKILL when dropped, deliveries in flight
    drop(killed);
    let survivors: Vec<u16> = processes.iter().map(|p| p.port).collect();
    acknowledged.extend(post_round_robin(&survivors, 1500..3000).await);
    assert_eq!(acknowledged.len(), 3000);
    all_done(&Db::Postgres(url.clone()), 3000, Duration::from_secs(120)).await;
    let seen = seen.lock().unwrap().clone();
    for id in &acknowledged {
        let key = format!("208-{id}");
        assert!(
            seen.contains_key(&webhook_id(&key)),
            "{key} was acknowledged but not delivered"
        );
    }
    // A repeat can only be a delivery the killed instance had claimed (at most its workers
    // plus one claim ahead), sent again with the same webhook-id.
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= 16, "{repeats} repeated deliveries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_conversation_at_two_instances_is_stored_and_delivered_once() {
    let Some(admin) = pg_admin_url() else { return };
    let url = fresh_pg_database(&admin);
    let (mock, seen) = counting_mock(Duration::ZERO).await;
    let (processes, _dirs) = start(2, &mock, &url);
    let client = reqwest::Client::new();
    for id in 0..50 {
        let body = conversation(id).to_string();
        let send = |port: u16| {
            client
                .post(format!(
                    "http://127.0.0.1:{port}/hooks/smartsupp/{}",
                    common::TOKEN
                ))
                .body(body.clone())
                .send()
        };
        let (a, b) = tokio::join!(send(processes[0].port), send(processes[1].port));
        let mut statuses = [
            a.unwrap().json::<serde_json::Value>().await.unwrap()["status"].clone(),
            b.unwrap().json::<serde_json::Value>().await.unwrap()["status"].clone(),
        ];
        statuses.sort_by_key(|s| s.to_string());
        assert_eq!(
            statuses,
            [
                serde_json::json!("accepted"),
                serde_json::json!("duplicate")
            ]
        );
    }
    let db = Db::Postgres(url.clone());
    all_done(&db, 50, Duration::from_secs(30)).await;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM conversations"), 50);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM deliveries"), 50);
    assert_eq!(seen.lock().unwrap().values().sum::<usize>(), 50);
}
