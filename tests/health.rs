//! Destination health: the circuit breaker pauses a failing destination, probes it after the
//! cool-down and resumes it, while a healthy destination keeps delivering; every transition is
//! posted to the alert webhook; the per-destination rate limit holds.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::{conversation, deliveries, eventually, requests_at, TestApp, TestConfig};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Fails the first `failures` requests with 503, then answers 200; records request times.
struct Recovering {
    failures: usize,
    seen: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Recovering {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        seen.push(Instant::now());
        ResponseTemplate::new(if seen.len() <= self.failures {
            503
        } else {
            200
        })
    }
}

async fn recording(failures: usize) -> (MockServer, Arc<Mutex<Vec<Instant>>>) {
    let server = MockServer::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(Recovering {
            failures,
            seen: seen.clone(),
        })
        .mount(&server)
        .await;
    (server, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_is_paused_probed_and_resumed_while_another_delivers() {
    let (down, down_times) = recording(3).await;
    let (healthy, _) = recording(0).await;
    let (alerts, _) = recording(0).await;
    let mut config = TestConfig::with_destinations(&format!(
        "  down:\n    kind: webhook\n    url: \"{}/in\"\n    concurrency: 1\n    breaker: {{ failures: 3, cool_down: \"1s\" }}\n  healthy:\n    kind: webhook\n    url: \"{}/in\"\n",
        down.uri(),
        healthy.uri()
    ))
    .delivery("  workers: 4\n  request_timeout: \"2s\"\n  retry_schedule: [\"50ms\", \"50ms\", \"50ms\", \"50ms\", \"50ms\", \"50ms\"]\n");
    config.alerts = Some(format!("{}/alerts", alerts.uri()));
    let app = TestApp::spawn(config).await;
    for id in 1..=5 {
        app.post_hook(conversation(id).to_string()).await;
    }
    // The healthy destination delivers everything while the other one is paused.
    requests_at(&healthy, 5).await;
    let db = app.db();
    eventually(
        "the paused destination recovers and delivers all",
        Duration::from_secs(20),
        || {
            let db = db.clone();
            async move { deliveries(&db).iter().all(|d| d.state == "done") }
        },
    )
    .await;
    let times = down_times.lock().unwrap().clone();
    assert!(
        times.len() >= 5 + 3,
        "3 failures, then every conversation: {}",
        times.len()
    );
    assert!(
        times[3] - times[2] >= Duration::from_millis(950),
        "no request while paused: the probe came {:?} after the third failure",
        times[3] - times[2]
    );
    let states: Vec<String> = requests_at(&alerts, 3)
        .await
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|a| a["destination"] == "down")
        .map(|a| a["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["paused", "probing", "delivering"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("deskbridge_destination_state{destination=\"down\"} 0"),
        "{metrics}"
    );
    // The healthy destination's deliveries were done before the paused one resumed.
    let healthy_done = healthy.received_requests().await.unwrap().len();
    assert_eq!(healthy_done, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_over_a_measured_window() {
    let (sink, times) = recording(0).await;
    let app = TestApp::spawn(TestConfig::with_destinations(&format!(
        "  paced:\n    kind: webhook\n    url: \"{}/in\"\n    rate_limit: \"10/1s\"\n",
        sink.uri()
    )))
    .await;
    for id in 1..=30 {
        app.post_hook(conversation(id).to_string()).await;
    }
    requests_at(&sink, 30).await;
    let mut times = times.lock().unwrap().clone();
    times.sort();
    // At most 10 starts per second, measured where the mock receives them, a little after the
    // pacer let them go: at most 11 (10%) in any 0.9 s, so that delivery jitter of up to
    // 100 ms cannot fail the test; unpaced, all 30 would arrive within milliseconds.
    common::assert_at_most_per_window(&times, 11, Duration::from_millis(900));
    let span = times[29].duration_since(times[0]);
    assert!(
        span >= Duration::from_millis(1900),
        "30 requests at 10/s took only {span:?}"
    );
}
