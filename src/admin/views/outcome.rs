//! What a delivery's state means, in words an admin acts on: the headline of its last error,
//! the destination's own message, and whether deskbridge tries again by itself (and when), or
//! why not and what to do. Pure functions of what the store recorded.

use crate::metrics::LaneHealth;
use crate::store::admin::DeliveryInfo;
use crate::store::DeliveryState;
use crate::worker::breaker::State;
use serde::Serialize;

/// Longest destination message or headline shown.
const SHORT: usize = 200;

/// A failed attempt, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// One short line: `HTTP 422 Unprocessable Entity`, `Could not connect: connection refused`.
    pub headline: String,
    /// What the destination said about it (from its error or its response), when it said
    /// something.
    pub message: Option<String>,
    /// The error exactly as recorded.
    pub raw: Option<String>,
}

/// What comes next for a delivery that is not done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Next {
    /// Whether deskbridge will try again by itself.
    pub automatic: bool,
    /// The sentence, without its final full stop: when it is tried again (followed by `at`),
    /// or why not and what to do.
    pub text: String,
    /// When it is tried again (epoch ms), shown after `text`.
    pub at: Option<i64>,
}

/// A delivery's state for the admin: `delivered`, `failed` (dead), `retrying` (pending after
/// a failed attempt), `waiting` (pending while its destination is paused) or `queued`.
pub fn label(d: &DeliveryInfo, health: Option<&LaneHealth>) -> &'static str {
    match d.state {
        DeliveryState::Done => "delivered",
        DeliveryState::Dead => "failed",
        DeliveryState::Pending if paused(health) => "waiting",
        _ if d.last_error.is_some() => "retrying",
        _ => "queued",
    }
}

fn paused(health: Option<&LaneHealth>) -> bool {
    health.is_some_and(|h| h.state != State::Closed)
}

/// The last failure of `d`, in words; `None` when its last attempt did not fail.
pub fn failure(d: &DeliveryInfo) -> Option<Failure> {
    let error = d.last_error.as_deref()?;
    let (headline, message) = summary(error, d.last_status, d.last_response.as_deref());
    Some(Failure {
        headline,
        message,
        raw: Some(error.to_string()),
    })
}

/// The headline and the destination's message of an error recorded with `status` and the
/// start of the response (`excerpt`).
pub fn summary(
    error: &str,
    status: Option<i64>,
    excerpt: Option<&str>,
) -> (String, Option<String>) {
    let error = error.trim();
    if let Some(status) = status {
        let reason = u16::try_from(status)
            .ok()
            .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let headline = format!("HTTP {status} {reason}").trim_end().to_string();
        // A destination's own words ("Zendesk rejected the ticket (422): …") say more than
        // the bare status; `HTTP 400` says nothing the headline does not.
        let bare = format!("HTTP {status}");
        let told = error
            .strip_prefix(&bare)
            .map(|rest| rest.trim_start_matches(':').trim())
            .unwrap_or(error);
        let message = Some(told)
            .filter(|t| !t.is_empty())
            .map(short)
            .or_else(|| excerpt.and_then(response_message));
        return (headline, message);
    }
    for (prefix, headline) in [
        ("could not connect:", "Could not connect"),
        ("timed out:", "Timed out"),
        ("request failed:", "Request failed"),
    ] {
        if let Some(rest) = error.strip_prefix(prefix) {
            return (headline.to_string(), root_cause(rest));
        }
    }
    (short(error), None)
}

/// The last cause of an error chain (`a: b: Connection refused (os error 111)` →
/// `connection refused`), without the operating system's error number.
fn root_cause(chain: &str) -> Option<String> {
    let last = chain.rsplit(": ").next()?.trim();
    let last = match last.rfind(" (os error ") {
        Some(at) if last.ends_with(')') => &last[..at],
        _ => last,
    };
    let mut chars = last.chars();
    let first = chars.next()?;
    Some(short(&format!(
        "{}{}",
        first.to_lowercase(),
        chars.as_str()
    )))
}

/// What a destination's response says, when it says it briefly: a JSON error message, or
/// a short text that is not a web page.
pub fn response_message(excerpt: &str) -> Option<String> {
    let text = excerpt.trim();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        return json_message(&json).map(|m| short(&m));
    }
    let looks_like_page = text.starts_with('<');
    let truncated = text.ends_with('…');
    (!text.is_empty() && !looks_like_page && !truncated && text.chars().count() <= SHORT)
        .then(|| short(&text.split_whitespace().collect::<Vec<_>>().join(" ")))
}

fn json_message(json: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    for key in [
        "message",
        "error_description",
        "detail",
        "description",
        "title",
    ] {
        if let Some(m) = text(&json[key]) {
            return Some(m);
        }
    }
    let error = &json["error"];
    if let Some(m) = text(error).or_else(|| json_message_of_object(error)) {
        return Some(m);
    }
    json["errors"]
        .as_array()
        .and_then(|list| list.first())
        .and_then(|first| text(first).or_else(|| json_message_of_object(first)))
}

fn json_message_of_object(v: &serde_json::Value) -> Option<String> {
    v.is_object().then(|| json_message(v)).flatten()
}

fn short(text: &str) -> String {
    crate::text::truncate(text.trim(), SHORT, "…")
}

/// Whether an attempt that failed so is retried by the schedule (network errors, timeouts,
/// 408, 425, 429 and 5xx but 501).
fn retryable(status: Option<i64>, error: &str) -> bool {
    match status {
        Some(s) => matches!(s, 408 | 425 | 429 | 500 | 502..=599),
        None => [
            "could not connect",
            "timed out",
            "request failed",
            "cannot write file",
        ]
        .iter()
        .any(|p| error.starts_with(p)),
    }
}

/// What comes next for `d` at `now` (epoch ms), its destination's health as this instance
/// sees it: `None` when it is done.
pub fn next(d: &DeliveryInfo, health: Option<&LaneHealth>, now: i64) -> Option<Next> {
    let error = d.last_error.as_deref().unwrap_or("");
    match d.state {
        DeliveryState::Done => None,
        DeliveryState::Dead => Some(Next {
            automatic: false,
            text: why_dead(d, error),
            at: None,
        }),
        _ => Some(match health {
            Some(h) if h.state == State::Open => Next {
                automatic: true,
                text: format!(
                    "Waiting: {} is paused, so nothing is sent to it; one delivery goes as a probe",
                    d.destination
                ),
                at: h.probe_at_ms,
            },
            Some(h) if h.state == State::HalfOpen => Next {
                automatic: true,
                text: format!(
                    "Waiting: one delivery is probing {}; the others follow once it is accepted",
                    d.destination
                ),
                at: None,
            },
            _ if d.next_attempt_at > now => Next {
                automatic: true,
                text: format!("Will be tried again by itself (attempt {})", d.attempts + 1),
                at: Some(d.next_attempt_at),
            },
            _ => Next {
                automatic: true,
                text: "Due now: it is being sent".into(),
                at: None,
            },
        }),
    }
}

fn why_dead(d: &DeliveryInfo, error: &str) -> String {
    if d.attempts == 0 {
        return "Never sent: routing it failed (the destination's `when`). Fix the configuration, then retry".into();
    }
    if retryable(d.last_status, error) {
        return format!(
            "Not retried any more: deskbridge gave up after {} attempts (the retry schedule is used up). Retry once the destination is back",
            d.attempts
        );
    }
    match d.last_status {
        Some(401 | 403) => "Not retried: the destination refused deskbridge's credentials or permissions. Fix them in the configuration, reload, then retry".into(),
        Some(s @ 300..=399) => format!("Not retried: HTTP {s} is a redirect, which deskbridge does not follow. Configure the final URL, then retry"),
        Some(s) => format!("Not retried: HTTP {s} means the destination refused this conversation, and sending it unchanged fails again. Fix the cause (the data, the template or the destination's settings), then retry"),
        None => "Not retried: this fails the same way every time. Fix the cause, then retry".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(error: &str, status: Option<i64>, excerpt: Option<&str>) -> DeliveryInfo {
        DeliveryInfo {
            id: 1,
            key: "208-1".into(),
            version: 1,
            destination: "crm".into(),
            state: DeliveryState::Dead,
            attempts: 3,
            schedule_attempts: 3,
            next_attempt_at: 0,
            last_error: Some(error.into()),
            result: None,
            created_at: 0,
            updated_at: 0,
            last_response: excerpt.map(str::to_string),
            last_status: status,
            replayed_at: None,
            replayed_by: None,
            last_request: None,
        }
    }

    #[test]
    fn errors_read_as_a_headline_and_the_destinations_words() {
        let cases = [
            (
                "could not connect: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                None,
                None,
                ("Could not connect", Some("connection refused")),
            ),
            (
                "HTTP 422",
                Some(422),
                Some(r#"{"error":"RecordInvalid","description":"Requester email is invalid"}"#),
                ("HTTP 422 Unprocessable Entity", Some("Requester email is invalid")),
            ),
            (
                "HTTP 400",
                Some(400),
                Some(r#"{"errors":[{"message":"mailbox not set up"}]}"#),
                ("HTTP 400 Bad Request", Some("mailbox not set up")),
            ),
            (
                "HTTP 503",
                Some(503),
                Some("<html><body>down</body></html>"),
                ("HTTP 503 Service Unavailable", None),
            ),
            (
                "HTTP 400",
                Some(400),
                Some("  no such\n list "),
                ("HTTP 400 Bad Request", Some("no such list")),
            ),
            (
                "Zendesk rejected the ticket (422): requester: email is invalid",
                Some(422),
                None,
                (
                    "HTTP 422 Unprocessable Entity",
                    Some("Zendesk rejected the ticket (422): requester: email is invalid"),
                ),
            ),
            (
                "template zendesk/ticket.json.hbs: not JSON",
                None,
                None,
                ("template zendesk/ticket.json.hbs: not JSON", None),
            ),
        ];
        for (error, status, excerpt, (headline, message)) in cases {
            let got = summary(error, status, excerpt);
            assert_eq!(
                (got.0.as_str(), got.1.as_deref()),
                (headline, message),
                "{error}"
            );
        }
    }

    #[test]
    fn a_dead_delivery_says_why_it_is_not_retried() {
        let network = dead("could not connect: x: Connection refused", None, None);
        let text = next(&network, None, 0).unwrap().text;
        assert!(text.contains("gave up after 3 attempts"), "{text}");
        let refused = dead("HTTP 422", Some(422), None);
        let next_of = next(&refused, None, 0).unwrap();
        assert!(!next_of.automatic);
        assert!(next_of
            .text
            .contains("HTTP 422 means the destination refused this conversation"));
        let mut routing = dead("when: unknown helper", None, None);
        routing.attempts = 0;
        assert!(next(&routing, None, 0)
            .unwrap()
            .text
            .starts_with("Never sent"));
    }

    #[test]
    fn a_pending_delivery_says_when_it_goes_and_what_it_waits_for() {
        let mut d = dead("HTTP 503", Some(503), None);
        d.state = DeliveryState::Pending;
        d.next_attempt_at = 5_000;
        let later = next(&d, None, 1_000).unwrap();
        assert_eq!((later.at, later.automatic), (Some(5_000), true));
        assert_eq!(label(&d, None), "retrying");
        let past = next(&d, None, 9_000).unwrap();
        assert_eq!(past.at, None, "a due time in the past is not shown");
        let paused = LaneHealth {
            state: State::Open,
            reason: Some("HTTP 503".into()),
            since_ms: 0,
            probe_at_ms: Some(60_000),
        };
        let waiting = next(&d, Some(&paused), 9_000).unwrap();
        assert_eq!(waiting.at, Some(60_000));
        assert!(waiting.text.contains("crm is paused"));
        assert_eq!(label(&d, Some(&paused)), "waiting");
    }
}
