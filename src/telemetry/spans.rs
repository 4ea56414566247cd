//! The spans of a conversation's path: a hook's arrival and its commit, and each delivery
//! attempt (render, token, HTTP request and record spans start inside it through
//! [`trace::child`]).

use super::otlp::Tracer;
use super::trace::{self, ingest_ids, Kind, Span, SpanContext};
use crate::store::Claimed;
use sha2::{Digest, Sha256};

/// The spans of one hook request, built once its outcome is known: the arrival (a server span
/// from the first byte to the answer) and the store commit under it. A new conversation
/// version's arrival takes the span id derived from its key and body, which its attempts
/// name as parent and link to; any other answer gets a span id of its own (a duplicate in
/// the trace of the version it repeats).
pub struct HookTrace {
    tracer: Option<Tracer>,
    arrived: u64,
    ids: Option<SpanContext>,
    commit: Span,
    key: Option<String>,
    version: Option<i64>,
    deliveries: Option<usize>,
}

impl HookTrace {
    /// A hook request arrived now; nothing is recorded when `tracer` is `None`.
    pub fn start(tracer: Option<&Tracer>) -> Self {
        Self {
            arrived: if tracer.is_some() {
                trace::now_nanos()
            } else {
                0
            },
            tracer: tracer.cloned(),
            ids: None,
            commit: Span::none(),
            key: None,
            version: None,
            deliveries: None,
        }
    }

    /// The body was read as conversation `key`: the request's log lines carry its trace id
    /// from now on.
    pub fn identified(&mut self, key: &str, digest: &[u8; 32]) {
        if self.tracer.is_none() {
            return;
        }
        let ids = ingest_ids(key, digest);
        tracing::Span::current().record("trace_id", ids.trace_hex());
        self.ids = Some(ids);
        self.key = Some(key.to_string());
    }

    /// The store commit starts.
    pub fn commit_started(&mut self) {
        if let (Some(tracer), Some(ids)) = (&self.tracer, self.ids) {
            let context = SpanContext {
                trace_id: ids.trace_id,
                span_id: trace::random_span_id(),
            };
            self.commit = Span::start(tracer, context, None, "store.commit", Kind::Internal);
        }
    }

    /// The commit ended: a new version (`Some`) or a duplicate (`None`), or `Err` when it
    /// failed.
    pub fn committed(&mut self, result: Result<Option<(i64, usize)>, &str>) {
        match result {
            Ok(Some((version, deliveries))) => {
                self.version = Some(version);
                self.deliveries = Some(deliveries);
                self.commit.set("deskbridge.commit", "accepted");
            }
            Ok(None) => self.commit.set("deskbridge.commit", "duplicate"),
            Err(reason) => self.commit.fail(reason),
        }
        self.commit.stop();
    }

    /// The answer went out with `status`; `outcome` is the metric's label.
    pub fn finish(mut self, status: u16, outcome: &str) {
        let Some(tracer) = self.tracer.take() else {
            return;
        };
        let (trace_id, span_id) = match (self.ids, self.version) {
            (Some(ids), Some(_)) => (ids.trace_id, ids.span_id),
            (Some(ids), None) => (ids.trace_id, trace::random_span_id()),
            (None, _) => (trace::random_trace_id(), trace::random_span_id()),
        };
        let mut hook = Span::start_at(
            &tracer,
            SpanContext { trace_id, span_id },
            None,
            "POST /hooks/smartsupp/{token}",
            Kind::Server,
            self.arrived,
        );
        hook.set("http.request.method", "POST");
        hook.set("http.route", "/hooks/smartsupp/{token}");
        hook.set("http.response.status_code", status);
        hook.set("deskbridge.hook.outcome", outcome);
        if let Some(key) = self.key.take() {
            hook.set("deskbridge.conversation.key", key);
        }
        if let Some(version) = self.version {
            hook.set("deskbridge.conversation.version", version);
        }
        if let Some(n) = self.deliveries {
            hook.set("deskbridge.deliveries", n as i64);
        }
        if status >= 500 {
            hook.fail(format!("HTTP {status}"));
        }
        let commit = std::mem::replace(&mut self.commit, Span::none());
        let mut commit = commit;
        commit.reparent(trace_id, Some(span_id));
        drop(commit);
        hook.stop();
    }
}

/// The span of one delivery attempt: in its conversation version's trace, a child of the
/// hook's arrival and linked to it (the arrival may have been on another instance, long ago).
pub fn attempt_span(tracer: Option<&Tracer>, claimed: &Claimed, destination: &str) -> Span {
    let Some(tracer) = tracer else {
        return Span::none();
    };
    let digest: [u8; 32] = Sha256::digest(&claimed.raw).into();
    let ingest = ingest_ids(&claimed.conversation.key, &digest);
    let context = SpanContext {
        trace_id: ingest.trace_id,
        span_id: trace::random_span_id(),
    };
    let mut span = Span::start(
        tracer,
        context,
        Some(ingest.span_id),
        format!("deliver {destination}"),
        Kind::Consumer,
    );
    span.link(ingest);
    span.set(
        "deskbridge.conversation.key",
        claimed.conversation.key.as_str(),
    );
    span.set(
        "deskbridge.conversation.version",
        claimed.conversation.version,
    );
    span.set("deskbridge.destination", destination);
    span.set("deskbridge.delivery.id", claimed.id);
    span.set("deskbridge.attempt", claimed.attempts + 1);
    span
}

/// A failure's reason as a span keeps it: the words before the first `: ` (which introduces
/// details such as a response excerpt or a template message), at most 80 characters.
pub fn reason(error: &str) -> String {
    let head = error.split(": ").next().unwrap_or_default();
    crate::text::truncate(head, 80, "…")
}

/// A span around an outbound HTTP request, under the current span: method, host and port,
/// never the path or query (they may carry credentials).
pub fn http_request(method: &str, url: &str) -> Span {
    let mut span = trace::child(method.to_string(), Kind::Client);
    if span.is_recording() {
        span.set("http.request.method", method);
        if let Ok(url) = reqwest::Url::parse(url) {
            if let Some(host) = url.host_str() {
                span.set("server.address", host);
            }
            if let Some(port) = url.port_or_known_default() {
                span.set("server.port", i64::from(port));
            }
        }
    }
    span
}
