//! The message itself, whatever the settings: one-line header text, addresses checked before
//! they reach a header, the stable Message-ID of a conversation version, the
//! multipart/alternative message, and the search for the longest transcript that fits.
//!
//! Header injection is impossible by construction: every text that reaches a header (subject,
//! display names, custom header values) passes [`one_line`], which turns control characters,
//! CR and LF among them, into spaces; addresses are parsed into `lettre::Address` values, which
//! hold no such characters; and lettre encodes (RFC 2047) anything that is not plain ASCII.

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, Mailboxes, MultiPart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// Longest subject kept, in characters.
pub const MAX_SUBJECT_CHARS: usize = 250;
/// Longest display name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest custom header value kept, in characters.
pub const MAX_HEADER_CHARS: usize = 500;
/// Longest conversation key written as is into a Message-ID.
const MAX_KEY_IN_ID: usize = 64;

/// Why a message could not be built.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// A rendered recipient list holds something that is not an address.
    #[error("rendered {text:?}, which is not a list of email addresses")]
    Recipients {
        /// What the template rendered.
        text: String,
    },
    /// A recipient address needs SMTPUTF8, which deskbridge does not ask servers for.
    #[error("{address:?} is not a plain ASCII address")]
    NotAscii {
        /// The address.
        address: String,
    },
    /// No recipient rendered at all.
    #[error("to, cc and bcc rendered no recipient")]
    NoRecipient,
    /// Even without any transcript the message is larger than allowed.
    #[error("the message has {size} bytes without any transcript, more than max_message_bytes ({max}): the visitor's context is too large")]
    TooLarge {
        /// Size of the smallest message, in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// lettre refused the message (a bug: the parts were checked before).
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// What goes into the message besides its two bodies.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Sender (`From`, and the envelope sender).
    pub from: Mailbox,
    /// `To`.
    pub to: Vec<Mailbox>,
    /// `Cc`.
    pub cc: Vec<Mailbox>,
    /// Envelope recipients that no header names.
    pub bcc: Vec<Mailbox>,
    /// `Reply-To`, if any.
    pub reply_to: Option<Mailbox>,
    /// One line, see [`one_line`].
    pub subject: String,
    /// `Message-ID`, with its angle brackets.
    pub message_id: String,
    /// `In-Reply-To` and `References`, for a later version.
    pub in_reply_to: Option<String>,
    /// `Date`.
    pub date: SystemTime,
    /// Custom headers (names checked with the configuration, values one line).
    pub headers: Vec<(String, String)>,
}

/// `text` on one line: control characters (CR, LF, tab …) and runs of white space become one
/// space, the ends are trimmed, and the result is cut to `max_chars` characters.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut pending_space = false;
    let mut count = 0;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = count > 0;
            continue;
        }
        if count + usize::from(pending_space) + 1 > max_chars {
            break;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Whether `text` is a bare ASCII address such as `chats@example.com`.
pub fn is_plain_address(text: &str) -> bool {
    text.is_ascii() && text.parse::<Address>().is_ok()
}

/// A mailbox of `address` with display name `name` (made one line; none when blank), or
/// `None` when `address` is not a plain ASCII address.
pub fn mailbox(name: Option<&str>, address: &str) -> Option<Mailbox> {
    let address = address.trim();
    if !is_plain_address(address) {
        return None;
    }
    let email = address.parse::<Address>().ok()?;
    let name = name
        .map(|n| one_line(n, MAX_NAME_CHARS))
        .filter(|n| !n.is_empty());
    Some(Mailbox::new(name, email))
}

/// The mailboxes of a rendered recipient template: one address or a comma-separated list,
/// each with or without a display name; blank text is no one.
pub fn recipients(rendered: &str) -> Result<Vec<Mailbox>, MessageError> {
    let text = rendered.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let refused = || MessageError::Recipients {
        text: one_line(text, MAX_SUBJECT_CHARS),
    };
    if text.chars().any(char::is_control) {
        return Err(refused());
    }
    let parsed: Mailboxes = text.parse().map_err(|_| refused())?;
    let mut out = Vec::new();
    for parsed in parsed.into_iter() {
        let address = parsed.email.to_string();
        if !address.is_ascii() {
            return Err(MessageError::NotAscii { address });
        }
        let rebuilt = mailbox(parsed.name.as_deref(), &address).ok_or_else(refused)?;
        out.push(rebuilt);
    }
    Ok(out)
}

/// `<key-vN@domain>`: the same for every attempt of one conversation version. A key of
/// anything but letters, digits, `.`, `_`, `+` and `-` (or a long one) is written as `h`
/// and the start of its SHA-256.
pub fn message_id(key: &str, version: i64, domain: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= MAX_KEY_IN_ID
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    let left = if plain {
        key.to_string()
    } else {
        let digest = Sha256::digest(key.as_bytes());
        format!("h{}", crate::text::hex(&digest[..16]))
    };
    format!("<{left}-v{version}@{domain}>")
}

/// The message: `multipart/alternative` with the plain-text part first and the HTML part,
/// both UTF-8.
pub fn build(envelope: &Envelope, text: String, html: String) -> Result<Message, MessageError> {
    if envelope.to.is_empty() && envelope.cc.is_empty() && envelope.bcc.is_empty() {
        return Err(MessageError::NoRecipient);
    }
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .subject(envelope.subject.clone())
        .date(envelope.date)
        .message_id(Some(envelope.message_id.clone()));
    for m in &envelope.to {
        builder = builder.to(m.clone());
    }
    for m in &envelope.cc {
        builder = builder.cc(m.clone());
    }
    for m in &envelope.bcc {
        builder = builder.bcc(m.clone());
    }
    if let Some(reply_to) = &envelope.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(first) = &envelope.in_reply_to {
        builder = builder.in_reply_to(first.clone()).references(first.clone());
    }
    for (name, value) in &envelope.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| MessageError::Build(format!("header {name}: {e}")))?;
        builder = builder.raw_header(HeaderValue::new(name, one_line(value, MAX_HEADER_CHARS)));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| MessageError::Build(e.to_string()))
}

/// Sender and recipients (`To`, `Cc` and `Bcc`) for SMTP's `MAIL FROM` and `RCPT TO`.
pub fn smtp_envelope(envelope: &Envelope) -> Result<lettre::address::Envelope, MessageError> {
    let recipients: Vec<Address> = [&envelope.to, &envelope.cc, &envelope.bcc]
        .into_iter()
        .flatten()
        .map(|m| m.email.clone())
        .collect();
    if recipients.is_empty() {
        return Err(MessageError::NoRecipient);
    }
    lettre::address::Envelope::new(Some(envelope.from.email.clone()), recipients)
        .map_err(|e| MessageError::Build(e.to_string()))
}

/// The longest transcript that fits: `build(kept)` makes the message with the first `kept` of
/// `total` messages; the answer is the message with the most messages kept whose size is at
/// most `max`, and how many were kept. Sizes are taken to grow with `kept`.
pub fn fit<E>(
    total: usize,
    max: usize,
    mut build: impl FnMut(usize) -> Result<Vec<u8>, E>,
) -> Result<Result<(Vec<u8>, usize), MessageError>, E> {
    let whole = build(total)?;
    if whole.len() <= max {
        return Ok(Ok((whole, total)));
    }
    let smallest = build(0)?;
    if smallest.len() > max {
        return Ok(Err(MessageError::TooLarge {
            size: smallest.len(),
            max,
        }));
    }
    // `low` always fits; `high` never does.
    let (mut low, mut high, mut best) = (0, total, smallest);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let candidate = build(middle)?;
        if candidate.len() <= max {
            low = middle;
            best = candidate;
        } else {
            high = middle;
        }
    }
    Ok(Ok((best, low)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_line_breaks_and_controls_and_cuts() {
        assert_eq!(
            one_line("Eve\r\nBcc: evil@example.com", 100),
            "Eve Bcc: evil@example.com"
        );
        assert_eq!(one_line("  a \t\u{0}\u{7f} b\n", 100), "a b");
        assert_eq!(one_line("Dana Svobodová 😀", 100), "Dana Svobodová 😀");
        assert_eq!(one_line("abcdef", 3), "abc");
        assert_eq!(one_line("ab cd", 3), "ab");
        assert_eq!(one_line("\r\n", 10), "");
    }

    #[test]
    fn message_ids_are_stable_and_safe() {
        assert_eq!(
            message_id("208-55039", 2, "example.com"),
            "<208-55039-v2@example.com>"
        );
        let odd = message_id("a b>\r\n", 1, "example.com");
        assert!(
            odd.starts_with("<h") && odd.ends_with("-v1@example.com>"),
            "{odd}"
        );
        assert_eq!(odd, message_id("a b>\r\n", 1, "example.com"));
        assert_ne!(odd, message_id("a b>\r\n ", 1, "example.com"));
        assert!(message_id(&"x".repeat(65), 1, "e.com").starts_with("<h"));
    }

    #[test]
    fn addresses_are_checked_before_they_reach_a_header() {
        assert!(is_plain_address("chats@example.com"));
        assert!(!is_plain_address("Chats <chats@example.com>"));
        assert!(!is_plain_address(
            "dana@example.cz\r\nBcc: evil@example.com"
        ));
        assert!(!is_plain_address("dána@example.cz"));
        let m = mailbox(Some("Dana\r\nBcc: evil@example.com"), "dana@example.cz").unwrap();
        assert_eq!(m.name.as_deref(), Some("Dana Bcc: evil@example.com"));
        assert!(mailbox(Some("x"), "not an address").is_none());
        let list = recipients(" a@example.com, Team B <b@example.com> ").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].name.as_deref(), Some("Team B"));
        assert!(recipients("  ").unwrap().is_empty());
        assert!(recipients("a@example.com\r\nBcc: evil@example.com").is_err());
        assert!(recipients("nobody").is_err());
    }

    fn envelope() -> Envelope {
        Envelope {
            from: mailbox(Some("Dana Svobodová via Smartsupp"), "chats@example.com").unwrap(),
            to: recipients("support@example.com").unwrap(),
            cc: Vec::new(),
            bcc: recipients("audit@example.com").unwrap(),
            reply_to: mailbox(Some("Dana\r\nBcc: evil@example.com"), "dana@example.cz"),
            subject: one_line("Chat with Dana 😀\r\nBcc: evil@example.com", 250),
            message_id: message_id("208-55039", 2, "example.com"),
            in_reply_to: Some(message_id("208-55039", 1, "example.com")),
            date: SystemTime::UNIX_EPOCH,
            headers: vec![("X-Kind".into(), "chat\r\nBcc: evil@example.com".into())],
        }
    }

    #[test]
    fn messages_have_both_parts_threading_and_no_injected_header() {
        let message = build(&envelope(), "Hello\n".into(), "<p>Hello</p>\n".into()).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
        assert!(
            !text.contains("audit@example.com"),
            "Bcc stays out of the message"
        );
        assert!(
            head.contains("Message-ID: <208-55039-v2@example.com>"),
            "{head}"
        );
        assert!(
            head.contains("In-Reply-To: <208-55039-v1@example.com>"),
            "{head}"
        );
        assert!(
            head.contains("References: <208-55039-v1@example.com>"),
            "{head}"
        );
        assert!(head.contains("multipart/alternative"), "{head}");
        assert!(text.is_ascii(), "headers are encoded");
        assert!(body.contains("text/plain; charset=utf-8"), "{body}");
        assert!(body.contains("text/html; charset=utf-8"), "{body}");
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["support@example.com", "audit@example.com"]);
        let no_one = Envelope {
            to: Vec::new(),
            bcc: Vec::new(),
            ..envelope()
        };
        assert_eq!(
            build(&no_one, String::new(), String::new()).unwrap_err(),
            MessageError::NoRecipient
        );
    }

    #[test]
    fn fit_keeps_the_most_messages_that_fit() {
        let sized = |kept: usize| Ok::<_, ()>(vec![0u8; 100 + kept * 10]);
        assert_eq!(fit(5, 1000, sized).unwrap().unwrap().1, 5);
        let (bytes, kept) = fit(50, 333, sized).unwrap().unwrap();
        assert_eq!((bytes.len(), kept), (330, 23));
        assert_eq!(
            fit(50, 99, sized).unwrap().unwrap_err(),
            MessageError::TooLarge { size: 100, max: 99 }
        );
        let mut calls = 0;
        let _ = fit(10_000, 5_000, |k| {
            calls += 1;
            sized(k)
        });
        assert!(calls <= 16, "{calls} renders");
    }
}
