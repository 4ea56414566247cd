//! The `transcript` helper's text: messages with times and authors, system events in words.

use chrono_tz::Tz;
use serde_json::Value;

/// Output format of a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per message.
    Text,
    /// One `<p>` per message, all message text HTML-escaped.
    Html,
}

/// One transcript line before formatting (the admin dashboard shows these as they are).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// When it was sent (epoch ms).
    pub sent_at: Option<i64>,
    /// `sent_at` in the transcript's time zone and format.
    pub time: String,
    /// Who wrote it; `None` for a system event.
    pub author: Option<String>,
    /// The message, or a system event in words.
    pub text: String,
    /// A system event rather than a message.
    pub event: bool,
    /// The trigger that sent an automatic message.
    pub trigger: Option<String>,
    /// Who sent it: `visitor`, `agent`, `bot` (a bot, or an agent's automatic message),
    /// `system` (an event) or `other`.
    pub from: &'static str,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Human words for a system message's code.
fn system_event(code: &str, name: Option<&str>) -> String {
    let who = name.unwrap_or("An agent");
    match code {
        "agent.join" => format!("{who} joined"),
        "agent.leave" => format!("{who} left"),
        "agent.transfer" => format!("The chat was transferred to {who}"),
        "close.visitorClose" => "Visitor closed the chat".to_string(),
        "close.agentClose" => format!("{who} closed the chat"),
        "close.timeout" | "close.inactive" => "The chat closed after inactivity".to_string(),
        other => format!("System event: {other}"),
    }
}

fn line(message: &Value, tz: Tz, time_format: &str, visitor: &str) -> Line {
    let time = crate::text::format_time(&message["sentAt"], tz, time_format).unwrap_or_default();
    let sent_at = message["sentAt"].as_i64();
    let name = text_of(&message["name"]);
    let content = text_of(&message["content"]).unwrap_or_default();
    let kind = message["type"].as_str().unwrap_or("");
    let trigger = text_of(&message["triggeredBy"]);
    if kind == "system" {
        return Line {
            sent_at,
            time,
            author: None,
            text: system_event(&content, name.as_deref()),
            event: true,
            trigger: None,
            from: "system",
        };
    }
    let from = match kind {
        "visitor" => "visitor",
        "agent" if trigger.is_some() => "bot",
        "agent" => "agent",
        "bot" => "bot",
        _ => "other",
    };
    let author = name.unwrap_or_else(|| match kind {
        "visitor" => visitor.to_string(),
        "agent" if trigger.is_some() => "Automatic message".to_string(),
        "agent" => "Agent".to_string(),
        "bot" => "Bot".to_string(),
        _ => "Unknown".to_string(),
    });
    Line {
        sent_at,
        time,
        author: Some(author),
        text: content,
        event: false,
        trigger,
        from,
    }
}

/// Renders `messages` (a JSON array, or one message object) as a transcript; visitor
/// messages without a name are signed `visitor`.
pub fn render(
    messages: &Value,
    format: Format,
    tz: Tz,
    time_format: &str,
    visitor: &str,
) -> String {
    let list = message_list(messages);
    let mut out = String::with_capacity(list.len() * 64);
    for message in list {
        let l = line(message, tz, time_format, visitor);
        match format {
            Format::Text => text_line(&mut out, &l),
            Format::Html => html_line(&mut out, &l),
        }
    }
    out
}

/// The lines of `messages` (a JSON array, or one message object), unformatted.
pub fn lines(messages: &Value, tz: Tz, time_format: &str, visitor: &str) -> Vec<Line> {
    message_list(messages)
        .iter()
        .map(|m| line(m, tz, time_format, visitor))
        .collect()
}

fn message_list(messages: &Value) -> &[Value] {
    match messages {
        Value::Array(list) => list.as_slice(),
        Value::Object(_) => std::slice::from_ref(messages),
        _ => &[],
    }
}

fn text_line(out: &mut String, l: &Line) {
    out.push('[');
    out.push_str(&l.time);
    out.push_str("] ");
    if let Some(trigger) = &l.trigger {
        out.push_str(&format!("(automatic, trigger \"{trigger}\") "));
    }
    match (&l.author, l.event) {
        (Some(author), false) => {
            out.push_str(author);
            out.push_str(": ");
            out.push_str(&l.text);
        }
        _ => {
            out.push_str("* ");
            out.push_str(&l.text);
        }
    }
    out.push('\n');
}

fn html_line(out: &mut String, l: &Line) {
    let esc = handlebars::html_escape;
    out.push_str("<p><small>");
    out.push_str(&esc(&l.time));
    out.push_str("</small> ");
    if l.event {
        out.push_str("<em>");
        out.push_str(&esc(&l.text));
        out.push_str("</em></p>\n");
        return;
    }
    if let Some(author) = &l.author {
        out.push_str("<strong>");
        out.push_str(&esc(author));
        out.push_str("</strong>");
    }
    if let Some(trigger) = &l.trigger {
        out.push_str(" <em>(automatic, trigger &quot;");
        out.push_str(&esc(trigger));
        out.push_str("&quot;)</em>");
    }
    out.push_str(": ");
    out.push_str(&esc(&l.text).replace('\n', "<br>"));
    out.push_str("</p>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_messages() -> Value {
        serde_json::json!([
            {"type":"visitor","name":null,"content":"Hello","sentAt":1427470439703_i64,"triggeredBy":null},
            {"type":"system","name":"John Doe","content":"agent.join","sentAt":1427470446219_i64,"triggeredBy":null},
            {"type":"agent","name":"","content":"This is triggered message","sentAt":1427470449706_i64,"triggeredBy":"Test Trigger"},
            {"type":"visitor","name":"<b>Eve</b>","content":"a<b\nc","sentAt":1427470473124_i64},
            {"type":"system","name":"Dusan Kmet","content":"close.visitorClose","sentAt":1427470476687_i64}
        ])
    }

    #[test]
    fn text_transcript_names_authors_and_events() {
        let t = render(
            &doc_messages(),
            Format::Text,
            Tz::UTC,
            "%H:%M:%S",
            "Visitor",
        );
        assert!(t.contains("[15:33:59] Visitor: Hello"), "{t}");
        assert!(t.contains("* John Doe joined"), "{t}");
        assert!(t.contains("(automatic, trigger \"Test Trigger\") Automatic message: This is triggered message"), "{t}");
        assert!(t.contains("* Visitor closed the chat"), "{t}");
    }

    #[test]
    fn html_transcript_escapes_visitor_text() {
        let t = render(&doc_messages(), Format::Html, Tz::UTC, "%H:%M", "Visitor");
        assert!(t.contains("&lt;b&gt;Eve&lt;/b&gt;"), "{t}");
        assert!(t.contains("a&lt;b<br>c"), "{t}");
        assert!(!t.contains("<b>"), "{t}");
        let prague = render(
            &doc_messages(),
            Format::Html,
            "Europe/Prague".parse().unwrap(),
            "%H:%M",
            "Dusan",
        );
        assert!(prague.contains("<small>16:33</small>"), "{prague}");
    }
}
