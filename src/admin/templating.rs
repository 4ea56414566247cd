//! The dashboard's Handlebars engine: the page templates, the layout and the helpers they use.
//! Every value is HTML-escaped (no template uses triple braces); the one helper that writes
//! markup, `time`, escapes what it puts in it.

use chrono_tz::Tz;
use handlebars::{
    handlebars_helper, Context, Handlebars, Helper, HelperResult, Output, RenderContext,
};
use serde_json::Value;
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("login", include_str!("templates/login.hbs")),
    ("error", include_str!("templates/error.hbs")),
    ("overview", include_str!("templates/overview.hbs")),
    ("conversations", include_str!("templates/conversations.hbs")),
    ("conversation", include_str!("templates/conversation.hbs")),
    ("dead", include_str!("templates/dead.hbs")),
];

const PARTIALS: &[(&str, &str)] = &[
    ("layout", include_str!("templates/layout.hbs")),
    ("message", include_str!("templates/message.hbs")),
    ("retry", include_str!("templates/retry.hbs")),
];

/// Percent-encodes `text` for a URL path segment or query value.
pub fn urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long ago (or how far ahead) `at` is from `now` (both epoch ms), in words.
pub fn relative(at: i64, now: i64) -> String {
    let seconds = (now - at) / 1000;
    let (n, ahead) = (seconds.unsigned_abs(), seconds < 0);
    let amount = match n {
        0..=9 => {
            return if ahead {
                "in a few seconds"
            } else {
                "just now"
            }
            .into()
        }
        10..=59 => format!("{n} s"),
        60..=3_599 => format!("{} min", n / 60),
        3_600..=86_399 => format!("{} h", n / 3_600),
        86_400..=172_799 => "1 day".to_string(),
        _ => format!("{} days", n / 86_400),
    };
    if ahead {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

handlebars_helper!(urlencode_helper: |text: Value| match text {
    Value::String(s) => urlencode(&s),
    Value::Null => String::new(),
    other => urlencode(&other.to_string()),
});
handlebars_helper!(local_time_helper: |ms: Value, tz: str| {
    let tz: Tz = tz.parse().unwrap_or(Tz::UTC);
    crate::text::format_time(&ms, tz, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|| "—".into())
});
handlebars_helper!(seconds_helper: |s: Value| match s.as_i64() {
    Some(s) => crate::text::human_duration(s),
    None => "—".into(),
});
handlebars_helper!(percent_helper: |p: Value| match p.as_f64() {
    Some(p) => format!("{p}%"),
    None => "—".into(),
});
handlebars_helper!(plural_helper: |n: i64, one: str, many: str| {
    format!("{n} {}", if n == 1 { one } else { many })
});

/// Beyond this many milliseconds from now a time is shown as a date rather than relative.
const RELATIVE_WITHIN_MS: i64 = 7 * 86_400_000;

/// `{{time ms tz}}`: `<time>` with the time relative to now (a date and time in `tz` when it
/// is more than a week away), and the exact time in `tz` on hover and on focus (its title);
/// `—` for null.
fn time_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let ms = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let tz: Tz = h
        .param(1)
        .and_then(|p| p.value().as_str())
        .and_then(|t| t.parse().ok())
        .unwrap_or(Tz::UTC);
    let Some(at) = ms.as_i64() else {
        out.write("—")?;
        return Ok(());
    };
    let exact = crate::text::format_time(&ms, tz, "%Y-%m-%d %H:%M:%S").unwrap_or_default();
    let iso = crate::smartsupp::rfc3339(&ms);
    let now = crate::store::now_ms();
    let shown = if (now - at).abs() < RELATIVE_WITHIN_MS {
        relative(at, now)
    } else {
        crate::text::format_time(&ms, tz, "%Y-%m-%d %H:%M").unwrap_or_default()
    };
    let escape = handlebars::html_escape;
    out.write(&format!(
        "<time datetime=\"{}\" title=\"{} ({})\" tabindex=\"0\">{}</time>",
        escape(iso.as_str().unwrap_or("")),
        escape(&exact),
        escape(tz.name()),
        escape(&shown),
    ))?;
    Ok(())
}

fn engine() -> Result<Handlebars<'static>, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::html_escape);
    for (name, text) in PARTIALS {
        hb.register_partial(name, text)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    for (name, text) in TEMPLATES {
        hb.register_template_string(name, text)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    hb.register_helper("urlencode", Box::new(urlencode_helper));
    hb.register_helper("local_time", Box::new(local_time_helper));
    hb.register_helper("seconds", Box::new(seconds_helper));
    hb.register_helper("percent", Box::new(percent_helper));
    hb.register_helper("plural", Box::new(plural_helper));
    hb.register_helper("time", Box::new(time_helper));
    Ok(hb)
}

static ENGINE: LazyLock<Result<Handlebars<'static>, String>> = LazyLock::new(engine);

/// Renders the page template `name` with `data`.
pub fn render(name: &str, data: &Value) -> Result<String, String> {
    let hb = ENGINE.as_ref().map_err(|e| e.clone())?;
    hb.render(name, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compile() {
        engine().unwrap();
    }

    #[test]
    fn urlencode_leaves_only_unreserved_characters() {
        assert_eq!(urlencode("a b/č?&"), "a%20b%2F%C4%8D%3F%26");
    }

    #[test]
    fn times_read_relative_to_now() {
        let now = 1_000_000_000;
        for (at, text) in [
            (now - 3_000, "just now"),
            (now - 42_000, "42 s ago"),
            (now - 5 * 60_000 - 10_000, "5 min ago"),
            (now - 3 * 3_600_000, "3 h ago"),
            (now - 30 * 3_600_000, "1 day ago"),
            (now - 9 * 86_400_000, "9 days ago"),
            (now + 90_000, "in 1 min"),
            (now + 2_000, "in a few seconds"),
        ] {
            assert_eq!(relative(at, now), text);
        }
    }

    #[test]
    fn the_time_element_escapes_and_carries_the_exact_time() {
        let hb = engine().unwrap();
        let html = hb
            .render_template(
                "{{time at tz}}|{{time missing tz}}",
                &serde_json::json!({"at": 1427470439703_i64, "tz": "Asia/Tokyo", "missing": null}),
            )
            .unwrap();
        assert!(
            html.starts_with(
                "<time datetime=\"2015-03-27T15:33:59.703Z\" title=\"2015-03-28 00:33:59 (Asia/Tokyo)\" tabindex=\"0\">"
            ),
            "{html}"
        );
        assert!(
            html.ends_with("\">2015-03-28 00:33</time>|—"),
            "a time long ago is a date: {html}"
        );
    }
}
