//! The spine end to end: the real server on port 0, a temporary SQLite store, and wiremock
//! destinations.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{
    attempts, conversation, count, deliveries, eventually, header, requests_at, sample, TestApp,
    TestConfig, TOKEN,
};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!("  {name}:\n    kind: webhook\n    url: \"{url}\"\n{extra}")
}

async fn mock_ok() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn received(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn both_documented_examples_are_accepted_and_delivered() {
    let mock = mock_ok().await;
    let app = app_for(&mock).await;
    let current = sample("chat.json");
    let mut old = sample("chat-2015-format.json");
    old["channel"]["id"] = json!(77);
    for body in [&current, &old] {
        let response = app.post_hook(body.to_string()).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "accepted");
        assert_eq!(answer["deliveries"], 1);
    }
    let requests = requests_at(&mock, 2).await;
    let mut keys = Vec::new();
    for r in &requests {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        keys.push(body["conversation"].as_str().unwrap().to_string());
        assert_eq!(body["data"]["visitor"]["name"], "Dusan Kmet");
        assert_eq!(
            body["data"]["visitor"]["variables"]["chatPackage"]["value"],
            "pro"
        );
        assert_eq!(header(r, "content-type"), "application/json");
        assert!(header(r, "webhook-id").starts_with("msg_"));
    }
    keys.sort();
    assert_eq!(keys, vec!["208-55039", "208-77"]);
    let old_body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(
        old_body["data"]["messages"][1]["from"], 3,
        "2015 integer agent id kept as sent"
    );
    eventually("deliveries done", Duration::from_secs(5), || async {
        deliveries(&app.db()).iter().all(|d| d.state == "done")
    })
    .await;
}

#[tokio::test]
async fn untrusted_strings_arrive_byte_exact_inside_valid_json() {
    let mock = mock_ok().await;
    let template = r#"{"quoted": "{{visitor.name}}", "literal": {{json visitor.name}}, "note": "{{visitor.note}}", "first": {{json messages.[0].content}}}"#;
    let app = TestApp::spawn(
        TestConfig::with_destinations(&webhook(
            "echo",
            &format!("{}/hook", mock.uri()),
            "    template: \"test/echo.json.hbs\"\n",
        ))
        .template("test/echo.json.hbs", template),
    )
    .await;
    let nasty = [
        "quote \" and 'single'",
        "back\\slash \\u0041 \\n",
        "new\nline\r\ttab",
        "control \u{1}\u{8}\u{1f}",
        "</script><script>alert(1)</script>",
        "{{visitor.email}} {{{raw}}}",
        "emoji 😀👍🏽 and עברית right-to-left \u{202e}",
    ];
    for (i, text) in nasty.iter().enumerate() {
        let mut body = conversation(1000 + i as i64);
        body["visitor"]["name"] = json!(text);
        body["visitor"]["note"] = json!(text);
        body["messages"][0]["content"] = json!(text);
        assert_eq!(app.post_hook(body.to_string()).await.status(), 200);
    }
    let requests = requests_at(&mock, nasty.len()).await;
    let mut seen = Vec::new();
    for r in requests {
        let body: Value = serde_json::from_slice(&r.body).expect("valid JSON whatever the strings");
        assert_eq!(body["quoted"], body["literal"]);
        assert_eq!(body["note"], body["literal"]);
        assert_eq!(body["first"], body["literal"]);
        seen.push(body["literal"].as_str().unwrap().to_string());
    }
    seen.sort();
    let mut expected: Vec<String> = nasty.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_five_thousand_message_conversation_is_delivered_whole() {
    let mock = mock_ok().await;
    let app = app_for(&mock).await;
    let mut body = conversation(5000);
    let messages: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"type": if i % 2 == 0 { "visitor" } else { "agent" }, "name": "N", "from": "x",
                   "content": format!("message number {i} with some words"), "sentAt": 1427470439703_i64 + i,
                   "triggeredBy": null})
        })
        .collect();
    body["messages"] = Value::Array(messages);
    let started = Instant::now();
    let response = app.post_hook(body.to_string()).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    let requests = requests_at(&mock, 1).await;
    let delivered: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let list = delivered["data"]["messages"].as_array().unwrap();
    assert_eq!(list.len(), 5000);
    assert_eq!(list[4999]["content"], "message number 4999 with some words");
}

#[tokio::test]
async fn refused_hooks_store_nothing() {
    let mock = mock_ok().await;
    let mut config =
        TestConfig::with_destinations(&webhook("archive", &format!("{}/hook", mock.uri()), ""));
    config.server_extra = "  max_body_bytes: 100000\n".into();
    let app = TestApp::spawn(config).await;
    let body = conversation(1).to_string();

    let wrong = app
        .client
        .post(app.url("/hooks/smartsupp/not-the-token"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.text().await.unwrap(),
        "",
        "no detail for a wrong token"
    );

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"this is not json".to_vec(), 400, "not valid JSON"),
        (
            b"[1, 2, 3]".to_vec(),
            400,
            "must be a JSON object, found an array",
        ),
        (b"{\"channel\": {\"id\": 1}".to_vec(), 400, "not valid JSON"),
        (b"{\"visitor\": {}}".to_vec(), 422, "channel.id"),
        (vec![b' '; 100_001], 413, "larger than the limit"),
    ];
    for (payload, status, message) in cases {
        let response = app.post_hook(payload).await;
        assert_eq!(response.status(), status, "{message}");
        let text = response.text().await.unwrap();
        assert!(text.contains(message), "{status}: {text}");
    }
    // Oversize without a Content-Length (chunked) is refused too.
    assert_eq!(chunked_post(app.port, 120_000).await, 413);

    assert_eq!(count(&app.db(), "SELECT COUNT(*) FROM conversations"), 0);
    assert_eq!(count(&app.db(), "SELECT COUNT(*) FROM deliveries"), 0);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"unauthorized\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("deskbridge_hooks_received_total{outcome=\"too_large\"} 2"),
        "{metrics}"
    );
    assert!(received(&mock).await.is_empty());
}

/// POSTs `size` bytes of spaces with chunked transfer encoding; returns the status code.
async fn chunked_post(port: u16, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /hooks/smartsupp/{TOKEN} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 10_000];
    let mut sent = 0;
    while sent < size {
        let piece = format!("{:x}\r\n", chunk.len());
        if stream.write_all(piece.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break; // the server may answer and close before the body ends
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn duplicates_are_suppressed_and_new_versions_delivered() {
    let mock = mock_ok().await;
    let app = app_for(&mock).await;
    let first = conversation(42);
    let a: Value = app.post_hook(first.to_string()).await.json().await.unwrap();
    let b: Value = app.post_hook(first.to_string()).await.json().await.unwrap();
    assert_eq!(a["status"], "accepted");
    assert_eq!(b["status"], "duplicate");
    assert_eq!(b["deliveries"], 0);

    let mut second = first.clone();
    second["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "visitor", "name": "Dusan Kmet", "content": "I am back", "sentAt": 1427470500000_i64}));
    let c: Value = app
        .post_hook(second.to_string())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "accepted");
    assert_eq!(c["version"], 2);

    let requests = requests_at(&mock, 2).await;
    assert_eq!(requests.len(), 2);
    let ids: Vec<String> = requests.iter().map(|r| header(r, "webhook-id")).collect();
    assert_ne!(ids[0], ids[1], "each version is its own delivery");
    let versions: Vec<i64> = requests
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["version"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(versions.contains(&1) && versions.contains(&2));
    assert_eq!(count(&app.db(), "SELECT COUNT(*) FROM conversations"), 2);
}

/// Answers each request with the next status of a list (the last one repeats) and records
/// when each request came.
struct Sequence {
    statuses: Vec<ResponseTemplate>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        let i = (seen.len() - 1).min(self.statuses.len() - 1);
        self.statuses[i].clone()
    }
}

async fn sequence_mock(statuses: Vec<ResponseTemplate>) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("POST"))
        .respond_with(Sequence {
            statuses,
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    (server, seen)
}

async fn app_for(mock: &MockServer) -> TestApp {
    TestApp::spawn(TestConfig::with_destinations(&webhook(
        "target",
        &format!("{}/hook", mock.uri()),
        "",
    )))
    .await
}

async fn wait_for_state(app: &TestApp, state: &'static str) -> common::DeliveryRow {
    eventually(
        &format!("a delivery in state {state}"),
        Duration::from_secs(15),
        || async { deliveries(&app.db()).iter().any(|d| d.state == state) },
    )
    .await;
    deliveries(&app.db())
        .into_iter()
        .find(|d| d.state == state)
        .unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_webhook_id() {
    let (mock, _) = sequence_mock(vec![
        ResponseTemplate::new(503),
        ResponseTemplate::new(503),
        ResponseTemplate::new(200),
    ])
    .await;
    let app = app_for(&mock).await;
    assert_eq!(
        app.post_hook(conversation(1).to_string()).await.status(),
        200
    );
    let done = wait_for_state(&app, "done").await;
    assert_eq!(done.attempts, 3);
    let requests = received(&mock).await;
    assert_eq!(requests.len(), 3);
    let ids: Vec<String> = requests.iter().map(|r| header(r, "webhook-id")).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let log = attempts(&app.db(), done.id);
    assert_eq!(
        log.iter().map(|a| a.1).collect::<Vec<_>>(),
        vec![Some(503), Some(503), Some(200)]
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (mock, seen) = sequence_mock(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "2"),
        ResponseTemplate::new(200),
    ])
    .await;
    let app = app_for(&mock).await;
    app.post_hook(conversation(1).to_string()).await;
    wait_for_state(&app, "done").await;
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test]
async fn client_errors_are_dead_after_one_attempt() {
    let (mock, _) = sequence_mock(vec![
        ResponseTemplate::new(400).set_body_string("{\"error\":\"bad field\"}")
    ])
    .await;
    let app = app_for(&mock).await;
    app.post_hook(conversation(1).to_string()).await;
    let dead = wait_for_state(&app, "dead").await;
    assert_eq!(dead.attempts, 1);
    assert_eq!(received(&mock).await.len(), 1);
    assert!(dead.last_error.unwrap().contains("HTTP 400"));
    let excerpt = common::texts(
        &app.db(),
        &format!(
            "SELECT excerpt FROM attempts WHERE delivery_id = {}",
            dead.id
        ),
    )
    .remove(0);
    assert_eq!(excerpt, "{\"error\":\"bad field\"}");
}

#[tokio::test]
async fn the_schedule_ends_in_a_dead_letter() {
    let (mock, _) = sequence_mock(vec![ResponseTemplate::new(500)]).await;
    let app = app_for(&mock).await;
    app.post_hook(conversation(1).to_string()).await;
    let dead = wait_for_state(&app, "dead").await;
    assert_eq!(
        dead.attempts, 4,
        "first attempt plus the three scheduled retries"
    );
    assert_eq!(received(&mock).await.len(), 4);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let (mock, _) = sequence_mock(vec![
        ResponseTemplate::new(200).set_delay(Duration::from_secs(4)),
        ResponseTemplate::new(200),
    ])
    .await;
    let app = app_for(&mock).await;
    app.post_hook(conversation(1).to_string()).await;
    let done = wait_for_state(&app, "done").await;
    assert_eq!(done.attempts, 2);
    let log = attempts(&app.db(), done.id);
    assert!(
        log[0].2.as_deref().unwrap_or("").contains("timed out"),
        "{log:?}"
    );
}

#[tokio::test]
async fn signed_webhooks_verify_with_the_secret() {
    use base64::Engine;
    use hmac::Mac;
    let mock = mock_ok().await;
    let app = TestApp::spawn(TestConfig::with_destinations(&webhook(
        "signed",
        &format!("{}/hook", mock.uri()),
        "    signing_secret: [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"whsec_c2Vjb25k\"]\n    headers: { X-Api-Key: \"k-123\" }\n",
    )))
    .await;
    app.post_hook(conversation(1).to_string()).await;
    let r = &requests_at(&mock, 1).await[0];
    let id = header(r, "webhook-id");
    let timestamp = header(r, "webhook-timestamp");
    let signatures = header(r, "webhook-signature");
    assert_eq!(header(r, "x-api-key"), "k-123");
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 60);
    let key = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let list: Vec<&str> = signatures.split(' ').collect();
    assert_eq!(list.len(), 2, "one signature per secret");
    assert_eq!(list[0], expected);
}

#[tokio::test]
async fn when_expressions_route_conversations() {
    let all = mock_ok().await;
    let missed_only = mock_ok().await;
    let destinations = format!(
        "{}{}",
        webhook("all", &format!("{}/hook", all.uri()), ""),
        webhook(
            "missed",
            &format!("{}/hook", missed_only.uri()),
            "    when: \"{{or channel.isMissed channel.isOffline}}\"\n",
        )
    );
    let app = TestApp::spawn(TestConfig::with_destinations(&destinations)).await;
    let mut answers = Vec::new();
    for name in ["chat.json", "missed.json", "offline.json"] {
        let answer: Value = app
            .post_hook(sample(name).to_string())
            .await
            .json()
            .await
            .unwrap();
        answers.push(answer);
    }
    let [chat, missed, offline] = answers.try_into().unwrap();
    assert_eq!(chat["deliveries"], 1);
    assert_eq!(missed["deliveries"], 2);
    assert_eq!(offline["deliveries"], 2);
    requests_at(&all, 3).await;
    let routed = requests_at(&missed_only, 2).await;
    let kinds: Vec<String> = routed
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        kinds.contains(&"conversation.missed".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"conversation.offline".to_string()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let mock = mock_ok().await;
    let app = app_for(&mock).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.post_hook(conversation(1).to_string()).await;
    wait_for_state(&app, "done").await;
    let metrics = app.metrics().await;
    for line in [
        "deskbridge_hooks_received_total{outcome=\"accepted\"} 1",
        "deskbridge_delivery_attempts_total{destination=\"target\",outcome=\"done\"} 1",
        "deskbridge_delivery_attempt_duration_seconds_count{destination=\"target\"} 1",
        "deskbridge_deliveries_pending 0",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}
