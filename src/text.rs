//! Text helpers shared by templates, the dashboard and the command line: times in a zone,
//! compact durations, cutting text to a length, and hex digits of bytes.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// Formats an epoch-milliseconds number or an RFC 3339 string in `tz` with strftime `format`.
/// `None` for null or unreadable values.
pub fn format_time(value: &Value, tz: Tz, format: &str) -> Option<String> {
    let utc: DateTime<Utc> = match value {
        Value::Number(n) => DateTime::from_timestamp_millis(n.as_i64()?)?,
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc),
        _ => return None,
    };
    let items: Vec<Item> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return None;
    }
    Some(
        utc.with_timezone(&tz)
            .format_with_items(items.into_iter())
            .to_string(),
    )
}

/// Compact human text for a number of seconds: `36s`, `2m 5s`, `1h 2m`.
pub fn human_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) if s == 0 => format!("{m}m"),
        (0, _) => format!("{m}m {s}s"),
        _ if m == 0 => format!("{h}h"),
        _ => format!("{h}h {m}m"),
    }
}

/// Cuts `text` to at most `limit` characters, ending with `suffix` when cut.
pub fn truncate(text: &str, limit: usize, suffix: &str) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let keep = limit.saturating_sub(suffix.chars().count());
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(suffix);
    out
}

/// Lowercase hex digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(36), "36s");
        assert_eq!(human_duration(125), "2m 5s");
        assert_eq!(human_duration(120), "2m");
        assert_eq!(human_duration(3720), "1h 2m");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo world", 5, "…"), "héll…");
        assert_eq!(truncate("short", 10, "…"), "short");
    }

    #[test]
    fn times_format_in_zones_and_refuse_bad_formats() {
        let t = Value::from(1427470439703_i64);
        assert_eq!(format_time(&t, Tz::UTC, "%H:%M").unwrap(), "15:33");
        assert_eq!(
            format_time(&t, "Asia/Tokyo".parse().unwrap(), "%H:%M").unwrap(),
            "00:33"
        );
        assert!(format_time(&t, Tz::UTC, "%Q").is_none());
        assert!(format_time(&Value::Null, Tz::UTC, "%H").is_none());
    }
}
