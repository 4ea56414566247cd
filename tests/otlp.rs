//! OpenTelemetry traces: one conversation delivered to two webhooks, one of them after a
//! retry, reaches a test collector (tests/otlp/collector.py, decoding OTLP protobuf with the
//! official opentelemetry-proto messages) as one trace: the hook's arrival, its commit under
//! it, and each attempt as a child of the arrival and linked to it, with render, HTTP and
//! record spans inside. No visitor data in the exported bytes; the webhook receives a
//! `traceparent` of that trace; log lines carry the trace id.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::process::Process;
use common::{requests_at, TestConfig};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A Python 3 with opentelemetry-proto: `DESKBRIDGE_TEST_PYTHON_OTLP`, the CI's virtual
/// environment (`target/ci-venv`, made by `scripts/test.sh`), then `python3`. Under CI its absence
/// fails the test; elsewhere the test is skipped.
fn python() -> Option<PathBuf> {
    common::python_with(
        "DESKBRIDGE_TEST_PYTHON_OTLP",
        &[
            common::repo().join("target/ci-venv/bin/python"),
            PathBuf::from("python3"),
        ],
        "opentelemetry.proto.trace.v1.trace_pb2",
        "python3 with opentelemetry-proto (scripts/test.sh installs it in target/ci-venv)",
    )
}

/// The collector as a child process, killed when dropped.
struct Collector {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Collector {
    fn start(python: &Path, out: &Path) -> Self {
        let mut child = Command::new(python)
            .arg(common::repo().join("tests/otlp/collector.py"))
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the collector starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the collector prints its port");
        Self {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// The spans received so far (whole lines only).
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.out.join("spans.jsonl")).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn raw(&self) -> Vec<u8> {
        std::fs::read(self.out.join("raw.bin")).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[tokio::test]
async fn one_conversation_is_one_trace_from_the_hook_to_every_attempt() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collected = dir.path().join("collected");
    std::fs::create_dir_all(&collected).unwrap();
    let collector = Collector::start(&python, &collected);

    // `flaky` answers 503 once, then 200; `archive` accepts at once.
    let flaky = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/in"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&flaky)
        .await;
    Mock::given(method("POST"))
        .and(path("/in"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&flaky)
        .await;
    let archive = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&archive)
        .await;

    let config = TestConfig {
        destinations: format!(
            "  flaky:\n    kind: webhook\n    url: \"{}/in\"\n  archive:\n    kind: webhook\n    url: \"{}/in\"\n",
            flaky.uri(),
            archive.uri()
        ),
        log: "  level: \"info\"\n  format: \"json\"\n".into(),
        sections: format!(
            "telemetry:\n  otlp_endpoint: \"http://127.0.0.1:{}\"\n  service_name: \"deskbridge-test\"\n  export_interval: \"50ms\"\n  resource_attributes:\n    deployment.environment: \"ci\"\n",
            collector.port
        ),
        ..TestConfig::default()
    };
    let config_path = config.write(dir.path());
    let server = Process::start(&config_path);
    let body = common::sample("chat.json");
    let email = body["visitor"]["email"].as_str().unwrap().to_string();
    let name = body["visitor"]["name"].as_str().unwrap().to_string();
    assert_eq!(server.post(body.to_string()).await, 200);

    requests_at(&flaky, 2).await;
    requests_at(&archive, 1).await;
    // Three attempts (one retried), each recorded; the hook with its commit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = collector.spans();
        if named(&spans, "store.record").len() >= 3
            && named(&spans, "POST /hooks/smartsupp/{token}").len() == 1
        {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the spans; got {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // One trace.
    let trace = spans[0]["trace_id"].as_str().unwrap().to_string();
    assert_eq!(trace.len(), 32);
    for s in &spans {
        assert_eq!(s["trace_id"], trace, "{s}");
        assert_eq!(s["resource"]["service.name"], "deskbridge-test");
        assert_eq!(s["resource"]["deployment.environment"], "ci");
    }
    // The arrival (SERVER) is the root; the commit is its child.
    let hook = named(&spans, "POST /hooks/smartsupp/{token}")[0];
    assert_eq!(hook["kind"], 2);
    assert_eq!(hook["parent"], "");
    assert_eq!(attr(hook, "http.response.status_code"), 200);
    assert_eq!(attr(hook, "deskbridge.hook.outcome"), "accepted");
    let key = attr(hook, "deskbridge.conversation.key").clone();
    assert!(key.is_string());
    let hook_id = hook["span_id"].as_str().unwrap();
    let commit = named(&spans, "store.commit");
    assert_eq!(commit.len(), 1);
    assert_eq!(commit[0]["parent"], hook_id);

    // Each attempt: a CONSUMER child of the arrival, linked to it.
    let mut attempts: Vec<(String, String, i64)> = Vec::new();
    for name in ["deliver flaky", "deliver archive"] {
        for a in named(&spans, name) {
            assert_eq!(a["kind"], 5, "{a}");
            assert_eq!(a["parent"], hook_id, "{a}");
            assert_eq!(
                a["links"],
                serde_json::json!([{ "trace_id": trace, "span_id": hook_id }]),
                "{a}"
            );
            assert_eq!(attr(a, "deskbridge.conversation.key"), &key);
            attempts.push((
                attr(a, "deskbridge.destination").as_str().unwrap().into(),
                attr(a, "deskbridge.outcome").as_str().unwrap().into(),
                attr(a, "deskbridge.attempt").as_i64().unwrap(),
            ));
        }
    }
    attempts.sort();
    assert_eq!(
        attempts,
        vec![
            ("archive".into(), "done".into(), 1),
            ("flaky".into(), "done".into(), 2),
            ("flaky".into(), "retry".into(), 1),
        ]
    );
    let attempt_ids: Vec<&str> = spans
        .iter()
        .filter(|s| s["kind"] == 5)
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    // Render, each HTTP request (CLIENT) and each record sit inside an attempt.
    let requests: Vec<&Value> = spans.iter().filter(|s| s["kind"] == 3).collect();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    for inner in named(&spans, "render")
        .into_iter()
        .chain(requests.iter().copied())
        .chain(named(&spans, "store.record"))
    {
        assert!(
            attempt_ids.contains(&inner["parent"].as_str().unwrap()),
            "{inner} is not inside an attempt"
        );
    }
    assert_eq!(named(&spans, "render").len(), 3);
    let statuses: Vec<i64> = requests
        .iter()
        .map(|r| attr(r, "http.response.status_code").as_i64().unwrap())
        .collect();
    assert!(statuses.contains(&503) && statuses.contains(&204));
    for r in &requests {
        assert_eq!(attr(r, "server.address"), "127.0.0.1");
        assert!(attr(r, "url.full").is_null());
    }

    // No visitor data anywhere in what was exported.
    let raw = collector.raw();
    assert!(!raw.is_empty());
    for secret in [email.as_bytes(), name.as_bytes(), common::TOKEN.as_bytes()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret),
            "{:?} was exported",
            String::from_utf8_lossy(secret)
        );
    }

    // The webhook got a traceparent of this trace, naming its HTTP request's span.
    for request in flaky.received_requests().await.unwrap() {
        let tp = common::header(&request, "traceparent");
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp:?}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace.as_str(), "01"));
        assert!(
            requests.iter().any(|r| r["span_id"] == parts[2]),
            "{tp} names no exported request span"
        );
    }
    // Log lines of the attempts carry the trace id.
    let delivered = server.wait_for_log("\"delivered\"");
    assert!(
        delivered.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{delivered}"
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_and_no_traceparent_is_sent() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mock)
        .await;
    let app = common::TestApp::spawn(TestConfig::with_destinations(&format!(
        "  hook:\n    kind: webhook\n    url: \"{}/in\"\n",
        mock.uri()
    )))
    .await;
    assert_eq!(
        app.post_hook(common::sample("chat.json").to_string())
            .await
            .status(),
        200
    );
    let requests = requests_at(&mock, 1).await;
    assert_eq!(common::header(&requests[0], "traceparent"), "");
}

/// A conversation assembled from Smartsupp's Webhooks API events has a root span of its own,
/// which its delivery attempts name as parent, as a hook's arrival is for a legacy hook.
#[tokio::test]
async fn a_conversation_assembled_from_events_is_one_trace_too() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let collected = dir.path().join("collected");
    std::fs::create_dir_all(&collected).unwrap();
    let collector = Collector::start(&python, &collected);
    let zendesk = common::events::zendesk().await;
    let mut config = common::events::helpdesk(&zendesk, common::events::smartsupp_yaml(""));
    config.sections = format!(
        "telemetry:\n  otlp_endpoint: \"http://127.0.0.1:{}\"\n  export_interval: \"50ms\"\n",
        collector.port
    );
    let app = common::TestApp::spawn(config).await;
    for event in common::events::conversation_events() {
        assert_eq!(common::events::post_event(&app, &event).await.0, 200);
    }
    requests_at(&zendesk, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans = collector.spans();
        if !named(&spans, "assemble conversation").is_empty()
            && !named(&spans, "deliver helpdesk").is_empty()
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "no spans yet: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let root = named(&spans, "assemble conversation")[0];
    assert_eq!(root["parent"], "");
    assert_eq!(
        attr(root, "deskbridge.conversation.key"),
        common::events::KEY
    );
    let attempt = named(&spans, "deliver helpdesk")[0];
    assert_eq!(attempt["trace_id"], root["trace_id"]);
    assert_eq!(attempt["parent"], root["span_id"]);
    let raw = String::from_utf8_lossy(&collector.raw()).into_owned();
    assert!(
        !raw.contains("jana.novakova@example.com"),
        "no visitor data"
    );
}
