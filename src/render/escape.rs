//! Escape modes by template file type: JSON string content, HTML, or none.

/// How `{{x}}` is escaped, chosen by the template's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeMode {
    /// `*.json.hbs`: output lands inside JSON strings.
    Json,
    /// `*.html.hbs`: HTML-escaped.
    Html,
    /// Everything else (`*.txt.hbs`, `when` expressions): written as is.
    Text,
}

impl EscapeMode {
    /// The mode for a template file name.
    pub fn for_name(name: &str) -> Self {
        if name.ends_with(".json.hbs") {
            Self::Json
        } else if name.ends_with(".html.hbs") {
            Self::Html
        } else {
            Self::Text
        }
    }
}

/// Escapes `text` as the content of a JSON string (without the quotes).
pub fn json_string_content(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_round_trips_through_a_parser() {
        let nasty = "q\"b\\n\nt\tc\u{1}</script>{{x}}😀שלום\u{2028}";
        let doc = format!("\"{}\"", json_string_content(nasty));
        let back: String = serde_json::from_str(&doc).unwrap();
        assert_eq!(back, nasty);
    }

    #[test]
    fn modes_follow_file_names() {
        assert_eq!(EscapeMode::for_name("a/b.json.hbs"), EscapeMode::Json);
        assert_eq!(EscapeMode::for_name("a.html.hbs"), EscapeMode::Html);
        assert_eq!(EscapeMode::for_name("a.txt.hbs"), EscapeMode::Text);
    }
}
