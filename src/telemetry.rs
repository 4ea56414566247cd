//! Tracing setup (text or JSON lines, text fields escaped so that no value can forge a line)
//! and the root span of each HTTP request, which names the route pattern, never the path: the
//! hook path holds the secret token. OpenTelemetry traces live in [`trace`], [`spans`] and
//! [`otlp`].

pub mod otlp;
pub mod spans;
pub mod trace;

use crate::config::{LogFormat, LogSettings};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides `log.level`. Colours only on a
/// terminal: a file or the journal gets plain text.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(EscapedFields).try_init(),
    };
    // A subscriber already set (tests that start several servers) is fine.
    let _ = result;
}

/// Text-format fields (of events and spans) like tracing's default, `name=value` after the
/// message, with every control character, line separator and bidirectional override escaped:
/// a conversation key, a visitor's name or a destination's answer can neither start a forged
/// log line nor drive the terminal. (JSON lines escape by construction.)
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) -> fmt::Result {
        let name = field.name();
        // Metadata of `log` records, already shown in the line's prefix.
        if name.starts_with("log.") {
            return Ok(());
        }
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            if self.writer.has_ansi_escapes() {
                write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")?;
            } else {
                write!(self.writer, "{name}=")?;
            }
        }
        write!(Escaping(&mut self.writer), "{value}")
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = if field.name() == "message" {
                self.write(field, format_args!("{value}"))
            } else {
                self.write(field, format_args!("{value:?}"))
            };
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write(field, format_args!("{value:?}"));
        }
    }
}

/// Writes through to `W`, escaping what could break or disguise a line of text.
struct Escaping<W>(W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(needs_escape) {
            self.0.write_str(&rest[..at])?;
            let mut chars = rest[at..].chars();
            match chars.next() {
                Some('\n') => self.0.write_str("\\n")?,
                Some('\r') => self.0.write_str("\\r")?,
                Some('\t') => self.0.write_str("\\t")?,
                Some(c) => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
                None => break,
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
}

/// Control characters (C0, DEL, C1), line and paragraph separators, and bidirectional
/// embeddings, overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Root span of every request: method, route pattern, request id, status.
pub struct MaskedRootSpan;

impl RootSpanBuilder for MaskedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            method = %request.method(),
            route = %route,
            request_id = %request_id,
            status = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(ansi: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(ansi)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn values_cannot_forge_lines_or_drive_the_terminal() {
        let key = "208-1\n2030-01-01T00:00:00.000000Z  INFO deskbridge: forged\r\x1b[31mred\u{9b}\u{2028}\u{202e}";
        let text = logged(false, || {
            let span = tracing::info_span!("attempt", conversation = %key);
            let _entered = span.enter();
            tracing::info!(conversation = %key, name = key, debug = ?key, "hook {}", key);
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.contains(['\x1b', '\r', '\u{9b}', '\u{2028}', '\u{202e}']),
            "{text}"
        );
        let escaped = r"208-1\n2030-01-01T00:00:00.000000Z  INFO deskbridge: forged\r\u{1b}[31mred\u{9b}\u{2028}\u{202e}";
        assert!(text.contains(&format!("conversation={escaped}")), "{text}");
        assert!(text.contains(&format!("hook {escaped}")), "{text}");
        assert!(text.contains(r#"name="208-1\n2030"#), "{text}");
        assert!(
            text.contains(&format!("attempt{{conversation={escaped}}}")),
            "{text}"
        );
    }

    #[test]
    fn plain_values_read_as_before() {
        let text = logged(false, || {
            tracing::warn!(status = 503, destination = %"helpdesk", error = %"HTTP 503: down", "attempt failed; will retry");
        });
        assert!(
            text.ends_with(
                "attempt failed; will retry status=503 destination=helpdesk error=HTTP 503: down\n"
            ),
            "{text}"
        );
        let coloured = logged(true, || tracing::info!(port = 8080, "listening"));
        assert!(
            coloured.contains("listening \x1b[3mport\x1b[0m\x1b[2m=\x1b[0m8080"),
            "{coloured}"
        );
    }
}
