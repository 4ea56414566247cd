//! The OTLP/HTTP exporter: finished spans wait in a bounded queue and are sent in batches as
//! protobuf `ExportTraceServiceRequest`s (opentelemetry-proto, trace v1), encoded by hand:
//! the few messages deskbridge writes need no code generator and no SDK.

use super::trace::{SpanContext, SpanData, Value};
use crate::config::TelemetrySettings;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Spans sent in one request at most; a queue this full is sent at once.
const BATCH: usize = 512;
/// Spans kept waiting at most; more are dropped (and counted in a warning).
const MAX_QUEUE: usize = 4096;
/// Time limit of one export request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands finished spans to the exporter; cheap to clone.
#[derive(Clone)]
pub struct Tracer(Arc<Inner>);

struct Inner {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    spans: Vec<SpanData>,
    dropped: u64,
}

/// The running exporter: flush it on shutdown.
pub struct Exporter {
    tracer: Tracer,
    client: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
    resource: Vec<u8>,
    interval: Duration,
}

impl Tracer {
    /// A tracer and its exporter when `telemetry.otlp_endpoint` is set; `None` (traces off)
    /// otherwise.
    pub fn from_settings(settings: &TelemetrySettings) -> anyhow::Result<Option<Exporter>> {
        let Some(url) = settings.traces_url() else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let mut attributes: Vec<(&str, Value)> = vec![
            ("service.name", settings.service_name.as_str().into()),
            ("service.version", env!("CARGO_PKG_VERSION").into()),
        ];
        for (k, v) in &settings.resource_attributes {
            attributes.retain(|(existing, _)| existing != k);
            attributes.push((k.as_str(), v.as_str().into()));
        }
        let mut resource = Vec::new();
        for (k, v) in &attributes {
            message(&mut resource, 1, |m| key_value(m, k, v));
        }
        let tracer = Tracer(Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
        }));
        Ok(Some(Exporter {
            tracer,
            client,
            url,
            headers: settings
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            resource,
            interval: settings.export_interval.0.max(Duration::from_millis(10)),
        }))
    }

    /// Queues a finished span.
    pub fn export(&self, span: SpanData) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.spans.len() >= MAX_QUEUE {
            queue.dropped += 1;
            return;
        }
        queue.spans.push(span);
        if queue.spans.len() >= BATCH {
            self.0.wake.notify_one();
        }
    }

    fn take(&self) -> (Vec<SpanData>, u64) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
        let n = queue.spans.len().min(BATCH);
        let spans = queue.spans.drain(..n).collect();
        (spans, std::mem::take(&mut queue.dropped))
    }
}

impl Exporter {
    /// The handle spans are given to.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// Sends queued spans every `export_interval` (or when a batch is full) until aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = self.tracer.0.wake.notified() => {}
                }
                self.flush().await;
            }
        })
    }

    /// Sends everything queued now.
    pub async fn flush(&self) {
        loop {
            let (spans, dropped) = self.tracer.take();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "the trace exporter fell behind; spans were dropped"
                );
            }
            if spans.is_empty() {
                return;
            }
            let body = encode(&self.resource, &spans);
            let mut request = self
                .client
                .post(&self.url)
                .header("content-type", "application/x-protobuf")
                .body(body);
            for (k, v) in &self.headers {
                request = request.header(k, v);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    spans = spans.len(),
                    "the trace collector refused spans; they are dropped"
                ),
                Err(e) => tracing::warn!(
                    error = %crate::destinations::http::error_chain(&e.without_url()),
                    spans = spans.len(),
                    "cannot reach the trace collector; spans are dropped"
                ),
            }
        }
    }
}

/// An `ExportTraceServiceRequest` with one resource and one scope.
pub fn encode(resource: &[u8], spans: &[SpanData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 * spans.len() + resource.len());
    message(&mut out, 1, |rs| {
        bytes_field(rs, 1, resource);
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes_field(scope, 1, b"deskbridge");
                bytes_field(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for span in spans {
                message(ss, 2, |s| encode_span(s, span));
            }
        });
    });
    out
}

fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    bytes_field(out, 1, &span.context.trace_id);
    bytes_field(out, 2, &span.context.span_id);
    if let Some(parent) = &span.parent {
        bytes_field(out, 4, parent);
    }
    bytes_field(out, 5, span.name.as_bytes());
    varint_field(out, 6, span.kind as u64);
    fixed64_field(out, 7, span.start);
    fixed64_field(out, 8, span.end.max(span.start));
    for (k, v) in &span.attributes {
        message(out, 9, |m| key_value(m, k, v));
    }
    for link in &span.links {
        message(out, 13, |m| encode_link(m, link));
    }
    message(out, 15, |status| {
        // STATUS_CODE_ERROR with its message; an empty status is UNSET.
        if let Some(reason) = &span.error {
            bytes_field(status, 2, reason.as_bytes());
            varint_field(status, 3, 2);
        }
    });
    // Sampled.
    fixed32_field(out, 16, 1);
}

fn encode_link(out: &mut Vec<u8>, link: &SpanContext) {
    bytes_field(out, 1, &link.trace_id);
    bytes_field(out, 2, &link.span_id);
    fixed32_field(out, 6, 1);
}

fn key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    bytes_field(out, 1, key.as_bytes());
    message(out, 2, |any| match value {
        Value::Str(s) => bytes_field(any, 1, s.as_bytes()),
        Value::Bool(b) => varint_field(any, 2, u64::from(*b)),
        Value::Int(n) => varint_field(any, 3, *n as u64),
    });
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint_field(out: &mut Vec<u8>, field: u32, n: u64) {
    tag(out, field, 0);
    varint(out, n);
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, n: u64) {
    tag(out, field, 1);
    out.extend_from_slice(&n.to_le_bytes());
}

fn fixed32_field(out: &mut Vec<u8>, field: u32, n: u32) {
    tag(out, field, 5);
    out.extend_from_slice(&n.to_le_bytes());
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A length-delimited sub-message written by `write`.
fn message(out: &mut Vec<u8>, field: u32, write: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    write(&mut inner);
    bytes_field(out, field, &inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::Kind;

    #[test]
    fn varints_and_fields_follow_the_wire_format() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        bytes_field(&mut out, 5, b"ab");
        assert_eq!(out, [0x2a, 2, b'a', b'b']);
        let mut out = Vec::new();
        fixed64_field(&mut out, 7, 1);
        assert_eq!(out, [0x39, 1, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        key_value(&mut out, "n", &Value::Int(-1));
        // A negative int64 is ten varint bytes.
        assert_eq!(out.len(), 3 + 2 + 1 + 10);
    }

    #[test]
    fn a_span_encodes_its_ids_and_name() {
        let span = SpanData {
            context: SpanContext {
                trace_id: [7; 16],
                span_id: [8; 8],
            },
            parent: Some([9; 8]),
            name: "deliver".into(),
            kind: Kind::Consumer,
            start: 1,
            end: 2,
            attributes: vec![("deskbridge.destination", "a".into())],
            links: vec![],
            error: None,
        };
        let body = encode(&[], &[span]);
        let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        assert!(has(&[[0x0a, 16].as_slice(), &[7; 16]].concat()));
        assert!(has(&[[0x22, 8].as_slice(), &[9; 8]].concat()));
        assert!(has(b"deliver") && has(b"deskbridge.destination"));
    }
}
