//! Spans of a conversation's path, kept small: identifiers, the span handle that is exported
//! when it drops, the span an async step runs in (a task-local), and W3C `traceparent`.
//!
//! Every handle is inert when traces are off: [`Span::none`] holds nothing, allocates nothing
//! and exports nothing, and no task-local is set, so [`child`] costs one failed lookup.
//!
//! A conversation version's trace and the span of its arrival have identifiers derived from
//! the conversation key and the body's digest ([`ingest_ids`]): an attempt, claimed by any
//! instance at any later time, joins that trace as a child of the arrival's span and links to
//! it, with nothing stored beside the conversation.

use super::otlp::Tracer;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// A trace id and a span id: where a span sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
}

impl SpanContext {
    /// The W3C `traceparent` value of this span (sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }

    /// The trace id as 32 hex digits, as log lines carry it.
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

pub use crate::text::hex;

/// The trace of a conversation version and the span id of its arrival, derived from the
/// conversation key and the SHA-256 of its body.
pub fn ingest_ids(key: &str, digest: &[u8]) -> SpanContext {
    let mut hash = Sha256::new();
    hash.update(b"deskbridge trace\0");
    hash.update(key.as_bytes());
    hash.update(b"\0");
    hash.update(digest);
    let out = hash.finalize();
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    trace_id.copy_from_slice(&out[..16]);
    span_id.copy_from_slice(&out[16..24]);
    // All-zero identifiers are invalid; one bit keeps them valid whatever the hash.
    trace_id[15] |= 1;
    span_id[7] |= 1;
    SpanContext { trace_id, span_id }
}

/// A random span id.
pub fn random_span_id() -> [u8; 8] {
    let mut id = fastrand::u64(1..).to_be_bytes();
    id[7] |= 1;
    id
}

/// A random trace id.
pub fn random_trace_id() -> [u8; 16] {
    let mut id = fastrand::u128(1..).to_be_bytes();
    id[15] |= 1;
    id
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a span does, as OTLP numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside deskbridge.
    Internal = 1,
    /// Answering a request.
    Server = 2,
    /// A request to another service.
    Client = 3,
    /// Taking work from the queue.
    Consumer = 5,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// A whole number.
    Int(i64),
    /// Yes or no.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}
impl From<u16> for Value {
    fn from(n: u16) -> Self {
        Self::Int(i64::from(n))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// A finished span, as exported.
#[derive(Debug, Clone)]
pub struct SpanData {
    /// Where it sits.
    pub context: SpanContext,
    /// Its parent's span id, if it has one.
    pub parent: Option<[u8; 8]>,
    /// Operation name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Start, epoch ns.
    pub start: u64,
    /// End, epoch ns.
    pub end: u64,
    /// Attributes: ids, names, statuses and outcomes; never visitor data or secrets.
    pub attributes: Vec<(&'static str, Value)>,
    /// Spans this one follows from (an attempt links to the arrival of its conversation).
    pub links: Vec<SpanContext>,
    /// Set when the operation failed: the reason (no visitor data).
    pub error: Option<String>,
}

struct Live {
    tracer: Tracer,
    data: SpanData,
    ended: bool,
}

/// A span being recorded; exported when dropped. [`Span::none`] when traces are off.
#[must_use = "a span ends when dropped"]
pub struct Span(Option<Box<Live>>);

impl Span {
    /// Nothing: traces are off.
    pub fn none() -> Self {
        Self(None)
    }

    /// A span starting now at `context`, under `parent`.
    pub fn start(
        tracer: &Tracer,
        context: SpanContext,
        parent: Option<[u8; 8]>,
        name: impl Into<String>,
        kind: Kind,
    ) -> Self {
        Self::start_at(tracer, context, parent, name, kind, now_nanos())
    }

    /// A span that started at `start` (epoch ns).
    pub fn start_at(
        tracer: &Tracer,
        context: SpanContext,
        parent: Option<[u8; 8]>,
        name: impl Into<String>,
        kind: Kind,
        start: u64,
    ) -> Self {
        Self(Some(Box::new(Live {
            tracer: tracer.clone(),
            data: SpanData {
                context,
                parent,
                name: name.into(),
                kind,
                start,
                end: 0,
                attributes: Vec::new(),
                links: Vec::new(),
                error: None,
            },
            ended: false,
        })))
    }

    /// Whether this span records anything.
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// Where this span sits, when it records.
    pub fn context(&self) -> Option<SpanContext> {
        self.0.as_ref().map(|l| l.data.context)
    }

    /// A child span starting now.
    pub fn child(&self, name: impl Into<String>, kind: Kind) -> Span {
        match &self.0 {
            None => Span::none(),
            Some(live) => Span::start(
                &live.tracer,
                SpanContext {
                    trace_id: live.data.context.trace_id,
                    span_id: random_span_id(),
                },
                Some(live.data.context.span_id),
                name,
                kind,
            ),
        }
    }

    /// Sets an attribute (replacing one of the same key).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(live) = &mut self.0 {
            let value = value.into();
            match live.data.attributes.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => live.data.attributes.push((key, value)),
            }
        }
    }

    /// Links this span to `other` (the span it follows from).
    pub fn link(&mut self, other: SpanContext) {
        if let Some(live) = &mut self.0 {
            live.data.links.push(other);
        }
    }

    /// Marks the operation failed, with a reason free of visitor data.
    pub fn fail(&mut self, reason: impl Into<String>) {
        if let Some(live) = &mut self.0 {
            live.data.error = Some(reason.into());
        }
    }

    /// Gives the span another span id (before it is exported): the arrival of a hook takes
    /// its conversation version's derived id once the commit says it is a new version.
    pub fn set_span_id(&mut self, span_id: [u8; 8]) {
        if let Some(live) = &mut self.0 {
            live.data.context.span_id = span_id;
        }
    }

    /// Moves the span into another trace, under another parent (before it is exported).
    pub fn reparent(&mut self, trace_id: [u8; 16], parent: Option<[u8; 8]>) {
        if let Some(live) = &mut self.0 {
            live.data.context.trace_id = trace_id;
            live.data.parent = parent;
        }
    }

    /// Ends the span now; it is exported when dropped (so its identity may still change).
    pub fn stop(&mut self) {
        if let Some(live) = &mut self.0 {
            if !live.ended {
                live.data.end = now_nanos();
                live.ended = true;
            }
        }
    }

    /// Runs `work` with this span as the current one: [`child`] and outbound requests inside
    /// it start under this span.
    pub async fn within<F: std::future::Future>(&self, work: F) -> F::Output {
        match &self.0 {
            None => work.await,
            Some(live) => {
                let current = Current {
                    tracer: live.tracer.clone(),
                    context: live.data.context,
                };
                CURRENT.scope(current, work).await
            }
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(mut live) = self.0.take() {
            if !live.ended {
                live.data.end = now_nanos();
            }
            let tracer = live.tracer.clone();
            tracer.export(live.data);
        }
    }
}

/// The span async work runs in.
#[derive(Clone)]
struct Current {
    tracer: Tracer,
    context: SpanContext,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// A child of the current span, or [`Span::none`] outside one (or with traces off).
pub fn child(name: impl Into<String>, kind: Kind) -> Span {
    CURRENT
        .try_with(|c| {
            Span::start(
                &c.tracer,
                SpanContext {
                    trace_id: c.context.trace_id,
                    span_id: random_span_id(),
                },
                Some(c.context.span_id),
                name,
                kind,
            )
        })
        .unwrap_or_else(|_| Span::none())
}

/// The current span's trace id as hex, for log lines.
pub fn current_trace_id() -> Option<String> {
    CURRENT.try_with(|c| c.context.trace_hex()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_ids_are_stable_and_differ_by_body() {
        let a = ingest_ids("1-2", &[1; 32]);
        assert_eq!(a, ingest_ids("1-2", &[1; 32]));
        assert_ne!(a.trace_id, ingest_ids("1-2", &[2; 32]).trace_id);
        assert_ne!(a.trace_id, ingest_ids("1-3", &[1; 32]).trace_id);
        let tp = a.traceparent();
        assert_eq!(tp.len(), 55, "{tp}");
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
        assert_eq!(&tp[3..35], a.trace_hex());
    }

    #[test]
    fn nothing_is_current_outside_a_span() {
        assert!(!child("x", Kind::Internal).is_recording());
        assert_eq!(current_trace_id(), None);
    }
}
