//! The worker's decisions end to end: refusals of single conversations never pause a
//! destination, a deferred probe does not stall its lane, an absurd `Retry-After` is clamped
//! instead of stopping the attempt, shutdown hands back what was claimed but not started (from
//! the store or handed over by the receiver), a paused lane is handed nothing, and only the
//! latest claim on a delivery may record its outcome (both backends).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{
    attempts, conversation, count, deliveries, eventually, requests_at, Db, TestApp, TestConfig,
};
use deskbridge::store::{AttemptRecord, Next, Store};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn webhook(mock: &MockServer, extra: &str) -> TestConfig {
    TestConfig::with_destinations(&format!(
        "  archive:\n    kind: webhook\n    url: \"{}/in\"\n{extra}",
        mock.uri()
    ))
}

/// One delivery at a time; two outages in a row pause the destination for an hour.
const ONE_AT_A_TIME_PAUSED_AFTER_TWO: &str =
    "    concurrency: 1\n    breaker: { failures: 2, cool_down: \"1h\" }\n";

#[tokio::test]
async fn refusals_of_single_conversations_never_pause_the_destination() {
    let mock = MockServer::start().await;
    // The first four conversations are refused as invalid (a run longer than the breaker's
    // threshold), the others accepted.
    for refused in [1, 2, 3, 4] {
        Mock::given(method("POST"))
            .and(body_string_contains(format!("\"id\":{refused},")))
            .respond_with(ResponseTemplate::new(422).set_body_string("email is invalid"))
            .with_priority(1)
            .mount(&mock)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(webhook(&mock, ONE_AT_A_TIME_PAUSED_AFTER_TWO)).await;
    for id in 1..=8 {
        assert_eq!(
            app.post_hook(conversation(id).to_string()).await.status(),
            200
        );
    }
    eventually(
        "every delivery decided",
        Duration::from_secs(15),
        || async {
            deliveries(&app.db())
                .iter()
                .all(|d| d.state == "done" || d.state == "dead")
        },
    )
    .await;
    let rows = deliveries(&app.db());
    assert_eq!(
        rows.iter().filter(|d| d.state == "dead").count(),
        4,
        "{rows:?}"
    );
    assert_eq!(
        rows.iter().filter(|d| d.state == "done").count(),
        4,
        "{rows:?}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("deskbridge_destination_state{destination=\"archive\"} 0"),
        "422s say nothing about the destination's health:\n{metrics}"
    );
}

#[tokio::test]
async fn unauthorised_answers_pause_the_destination() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(webhook(&mock, ONE_AT_A_TIME_PAUSED_AFTER_TWO)).await;
    for id in 1..=4 {
        app.post_hook(conversation(id).to_string()).await;
    }
    common::paused(&app, "archive").await;
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        2,
        "no request passes a 401: two refusals pause the rest"
    );
}

const V: &str = "/crm/objects/2026-03";

#[tokio::test]
async fn a_deferred_probe_lets_the_next_probe_run() {
    let mock = MockServer::start().await;
    // An outage pauses the destination; its probe meets the daily quota (parked 1 s); then
    // HubSpot answers again.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"status": "error", "message": "You have reached your daily limit.", "policyName": "DAILY"})),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/contacts/batch/upsert")))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"status": "COMPLETE", "results": [{"id": "501", "new": true, "properties": {}}]}),
        ))
        .with_priority(3)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"id": "601", "properties": {}})),
        )
        .with_priority(4)
        .mount(&mock)
        .await;
    let app = TestApp::spawn(TestConfig::with_destinations(&format!(
        "  crm:\n    kind: hubspot\n    base_url: \"{}\"\n    access_token: \"pat-test-1\"\n    breaker: {{ failures: 1, cool_down: \"200ms\" }}\n",
        mock.uri()
    )))
    .await;
    app.post_hook(conversation(1).to_string()).await;
    eventually(
        "delivered after the deferred probe",
        Duration::from_secs(15),
        || async { deliveries(&app.db()).iter().all(|d| d.state == "done") },
    )
    .await;
    let rows = deliveries(&app.db());
    let log = attempts(&app.db(), rows[0].id);
    assert_eq!(log.len(), 3, "503, deferred, delivered: {log:?}");
}

#[tokio::test]
async fn an_absurd_retry_after_is_clamped_and_the_attempt_recorded() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("retry-after", "18446744073709551615"),
        )
        .mount(&mock)
        .await;
    let app = TestApp::spawn(TestConfig::with_destinations(&format!(
        "  helpdesk:\n    kind: zendesk\n    base_url: \"{}\"\n    email: \"agent@acme.example\"\n    api_token: \"tok-123\"\n",
        mock.uri()
    )))
    .await;
    let before = deskbridge::store::now_ms();
    app.post_hook(conversation(1).to_string()).await;
    eventually("the 429 recorded", Duration::from_secs(10), || async {
        let rows = deliveries(&app.db());
        !rows.is_empty() && !attempts(&app.db(), rows[0].id).is_empty()
    })
    .await;
    let rows = deliveries(&app.db());
    assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("pending", 1));
    let due = count(
        &app.db(),
        "SELECT next_attempt_at FROM deliveries WHERE lease_until IS NULL",
    );
    // Retry-After is honoured up to one day.
    let day = 24 * 3600 * 1000;
    assert!(
        due >= before + day - 60_000 && due <= deskbridge::store::now_ms() + day,
        "due in a day: {due}"
    );
}

#[tokio::test]
async fn shutdown_releases_deliveries_claimed_but_not_started() {
    let (mock, config) = one_slow_slot().await;
    let dir = tempfile::tempdir().unwrap();
    // A receiver stores three conversations, so the lane starting next finds them all due and
    // claims one to attempt and one ahead.
    let receiver = Process::start_with(&config.write(dir.path()), &["--role", "receiver"]);
    for id in 1..=3 {
        assert_eq!(receiver.post(conversation(id).to_string()).await, 200);
    }
    drop(receiver);
    let app = TestApp::spawn_in(dir, &config).await;
    let (db, _dir) = stopped_after_one_request(app, &mock).await;
    let rows = deliveries(&db);
    assert_eq!(
        rows.iter().filter(|d| d.state == "done").count(),
        1,
        "{rows:?}"
    );
    two_due_again(&db);
}

/// A webhook destination with one delivery slot whose every answer takes 1.5 s, and its mock.
async fn one_slow_slot() -> (MockServer, TestConfig) {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
        .mount(&mock)
        .await;
    let mut config = webhook(&mock, "    concurrency: 1\n");
    config.log = "  level: \"info\"\n  format: \"json\"\n".into();
    (mock, config)
}

/// Stops `app` once its first request is under way; checks that nothing waiting started after.
/// Its store, and the folder that keeps it.
async fn stopped_after_one_request(app: TestApp, mock: &MockServer) -> (Db, tempfile::TempDir) {
    requests_at(mock, 1).await;
    let db = app.db();
    let dir = app.stop().await;
    assert_eq!(
        mock.received_requests().await.unwrap().len(),
        1,
        "nothing waiting was started after the stop"
    );
    (db, dir)
}

/// Two deliveries never attempted are due again at once, unclaimed.
fn two_due_again(db: &Db) {
    assert_eq!(
        count(
            db,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'pending' AND lease_until IS NULL AND attempts = 0"
        ),
        2,
        "the waiting deliveries are due again at once: {:?}",
        deliveries(db)
    );
}

/// The delivery of conversation `id` (one destination): its claims and whether it is leased.
fn claim_state(db: &Db, id: i64) -> (i64, i64) {
    let of = format!("FROM deliveries d JOIN conversations c ON c.id = d.conversation_id WHERE c.key = '208-{id}'");
    (
        count(db, &format!("SELECT CAST(d.claims AS BIGINT) {of}")),
        count(
            db,
            &format!("SELECT COUNT(*) {of} AND d.lease_until IS NOT NULL"),
        ),
    )
}

#[tokio::test]
async fn a_lane_with_room_is_handed_new_deliveries_and_a_paused_one_none() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_delay(Duration::from_secs(1)))
        .mount(&mock)
        .await;
    let app = TestApp::spawn(webhook(&mock, ONE_AT_A_TIME_PAUSED_AFTER_TWO)).await;
    let db = app.db();
    assert_eq!(
        app.post_hook(conversation(1).to_string()).await.status(),
        200
    );
    if matches!(db, Db::Sqlite(_)) {
        // Committed claimed for the lane, which attempts it without a claim of its own: the
        // 200 came after that commit, and the attempt takes a second.
        assert_eq!(claim_state(&db, 1), (1, 1), "{:?}", deliveries(&db));
    }
    assert_eq!(
        app.post_hook(conversation(2).to_string()).await.status(),
        200
    );
    common::paused(&app, "archive").await;
    // Paused: a new conversation waits in the store, unclaimed, and nothing more is sent.
    assert_eq!(
        app.post_hook(conversation(3).to_string()).await.status(),
        200
    );
    assert_eq!(claim_state(&db, 3), (0, 0), "{:?}", deliveries(&db));
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn shutdown_gives_back_deliveries_handed_over_but_not_started() {
    let (mock, config) = one_slow_slot().await;
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_in(dir, &config).await;
    // One attempted, one handed over waiting for the lane's only slot, one left in the store
    // (the lane had no more room).
    for id in 1..=3 {
        assert_eq!(
            app.post_hook(conversation(id).to_string()).await.status(),
            200
        );
    }
    let (db, _dir) = stopped_after_one_request(app, &mock).await;
    two_due_again(&db);
}

/// A new store (SQLite, or PostgreSQL under `DESKBRIDGE_TEST_BACKEND=postgres`) with one
/// delivery to `archive`.
async fn store_with_one_delivery() -> (Store, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (url, db) = if common::on_postgres() {
        let url = common::fresh_pg_database(&common::pg_admin_url().unwrap());
        (url.clone(), Db::Postgres(url))
    } else {
        let path = dir.path().join("store.sqlite");
        (format!("sqlite://{}", path.display()), Db::Sqlite(path))
    };
    let store = Store::open(&url, 2).await.unwrap();
    store
        .ingest(deskbridge::store::NewConversation {
            key: "1-1".into(),
            digest: [7; 32],
            raw: conversation(1).to_string().into(),
            received_at: deskbridge::store::now_ms(),
            client_ip: None,
            kind: "chat",
            visitor_name: None,
            visitor_email: None,
            began_at: None,
            ended_at: None,
            destinations: vec![deskbridge::store::Routed {
                destination: "archive".into(),
                error: None,
                lease_until: None,
            }],
        })
        .await
        .unwrap();
    (store, db, dir)
}

#[tokio::test]
async fn only_the_latest_claim_records_an_outcome() {
    let (store, db, _dir) = store_with_one_delivery().await;
    let now = deskbridge::store::now_ms();
    // The first claim's lease ends at once, as if its attempt ran past it.
    let first = store.claim("archive", 1, now - 1).await.unwrap().deliveries;
    assert_eq!(first.len(), 1);
    let second = store
        .claim("archive", 1, now + 60_000)
        .await
        .unwrap()
        .deliveries;
    assert_eq!(second.len(), 1, "an expired lease can be claimed again");
    assert_ne!(first[0].held(), second[0].held());
    let outcome = |error: &str| AttemptRecord {
        started_at: now,
        error: Some(error.into()),
        ..AttemptRecord::default()
    };
    let late = store
        .record(
            first[0].id,
            first[0].held(),
            outcome("late"),
            Next::Dead,
            None,
        )
        .await
        .unwrap();
    assert!(!late, "the outdated claim writes nothing");
    assert_eq!(deliveries(&db)[0].state, "pending");
    assert_eq!(attempts(&db, first[0].id).len(), 0);
    let current = store
        .record(
            second[0].id,
            second[0].held(),
            outcome("current"),
            Next::Done,
            None,
        )
        .await
        .unwrap();
    assert!(current);
    let rows = deliveries(&db);
    assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("done", 1));
    let log = attempts(&db, second[0].id);
    assert_eq!(log.len(), 1, "the attempt is logged with the move: {log:?}");
    assert_eq!(log[0].2.as_deref(), Some("current"));
}

/// A destination that answers 200 with a body that never ends.
async fn endless_answer() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
                // Until the client hangs up.
                while socket.write_all(chunk.as_bytes()).await.is_ok() {}
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_endless_answer_is_read_up_to_a_cap() {
    let (url, server) = endless_answer().await;
    let app = TestApp::spawn(TestConfig::with_destinations(&format!(
        "  archive:\n    kind: webhook\n    url: \"{url}\"\n"
    )))
    .await;
    app.post_hook(conversation(1).to_string()).await;
    eventually("delivered", Duration::from_secs(10), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;
    let rows = deliveries(&app.db());
    let log = attempts(&app.db(), rows[0].id);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].1, Some(200));
    server.abort();
}
