//! Template helpers: `json`, `datetime`, `duration`, `transcript`, `default`, `truncate`,
//! `html`, `web_url`, `last`, `number`, `urlencode`, `include`.

use super::transcript;
use crate::text::{format_time, human_duration, truncate};
use chrono::format::{Item, StrftimeItems};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;
use std::sync::{Arc, RwLock};

/// Registers every deskbridge helper on `registry`.
pub fn register(registry: &mut Handlebars<'static>) {
    registry.register_helper("json", Box::new(json));
    registry.register_helper("datetime", Box::new(ValueHelper(datetime)));
    registry.register_helper("duration", Box::new(ValueHelper(duration)));
    registry.register_helper("transcript", Box::new(ValueHelper(transcript_text)));
    registry.register_helper("default", Box::new(ValueHelper(default_value)));
    registry.register_helper("truncate", Box::new(ValueHelper(truncate_text)));
    registry.register_helper("html", Box::new(ValueHelper(html)));
    registry.register_helper("web_url", Box::new(ValueHelper(web_url_helper)));
    registry.register_helper("last", Box::new(ValueHelper(last)));
    registry.register_helper("number", Box::new(ValueHelper(number)));
    registry.register_helper("urlencode", Box::new(ValueHelper(urlencode_helper)));
}

/// A helper whose result is a value, escaped like a variable by the template's file type.
struct ValueHelper(fn(&Helper) -> Result<Value, RenderError>);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        (self.0)(h).map(ScopedJson::Derived)
    }
}

fn other(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

/// The value of parameter `index`; a variable that does not exist is an error.
fn param<'a>(h: &'a Helper, name: &'static str, index: usize) -> Result<&'a Value, RenderError> {
    let p = h
        .param(index)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, index))?;
    if p.is_value_missing() {
        let path = p.relative_path().cloned().unwrap_or_default();
        return Err(other(format!("{name}: variable {path:?} does not exist")));
    }
    Ok(p.value())
}

fn hash_str<'a>(h: &'a Helper, key: &str) -> Option<&'a str> {
    h.hash_get(key).and_then(|v| v.value().as_str())
}

fn time_zone(h: &Helper, name: &str) -> Result<Tz, RenderError> {
    match hash_str(h, "tz") {
        None => Ok(Tz::UTC),
        Some(zone) => zone
            .parse()
            .map_err(|_| other(format!("{name}: unknown time zone {zone:?}"))),
    }
}

/// `{{json value}}`: the value as a JSON literal, never escaped.
fn json(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = param(h, "json", 0)?;
    let text = serde_json::to_string(value).map_err(|e| other(format!("json: {e}")))?;
    out.write(&text)?;
    Ok(())
}

fn check_format(name: &str, format: &str) -> Result<(), RenderError> {
    if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
        return Err(other(format!("{name}: invalid time format {format:?}")));
    }
    Ok(())
}

/// `{{datetime value ["%Y-%m-%d %H:%M"] [tz="Europe/Prague"]}}`; RFC 3339 by default.
fn datetime(h: &Helper) -> Result<Value, RenderError> {
    let value = param(h, "datetime", 0)?;
    let format = h
        .param(1)
        .and_then(|p| p.value().as_str())
        .unwrap_or("%Y-%m-%dT%H:%M:%S%:z");
    check_format("datetime", format)?;
    let tz = time_zone(h, "datetime")?;
    let text = format_time(value, tz, format).unwrap_or_default();
    Ok(Value::String(text))
}

/// `{{duration seconds}}`; empty for null.
fn duration(h: &Helper) -> Result<Value, RenderError> {
    let value = param(h, "duration", 0)?;
    let seconds = value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.round() as i64))
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()));
    let text = seconds.map(human_duration).unwrap_or_default();
    Ok(Value::String(text))
}

/// `{{transcript messages [format="html"] [tz="…"] [time="%H:%M"] [visitor=meta.visitorName]}}`.
fn transcript_text(h: &Helper) -> Result<Value, RenderError> {
    let messages = param(h, "transcript", 0)?;
    let format = match hash_str(h, "format").unwrap_or("text") {
        "text" => transcript::Format::Text,
        "html" => transcript::Format::Html,
        f => {
            return Err(other(format!(
                "transcript: format {f:?} is not text or html"
            )))
        }
    };
    let time = hash_str(h, "time").unwrap_or("%H:%M:%S");
    check_format("transcript", time)?;
    let tz = time_zone(h, "transcript")?;
    let visitor = hash_str(h, "visitor").unwrap_or("Visitor");
    let text = transcript::render(messages, format, tz, time, visitor);
    Ok(Value::String(text))
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// `{{default value fallback}}`: `fallback` when `value` is null or an empty string.
fn default_value(h: &Helper) -> Result<Value, RenderError> {
    let value = param(h, "default", 0)?;
    let chosen = if is_blank(value) {
        param(h, "default", 1)?
    } else {
        value
    };
    Ok(chosen.clone())
}

/// `{{truncate text 100 ["…"]}}`: at most that many characters, the suffix included.
fn truncate_text(h: &Helper) -> Result<Value, RenderError> {
    let value = param(h, "truncate", 0)?;
    let limit = param(h, "truncate", 1)?
        .as_u64()
        .ok_or_else(|| other("truncate: the length must be a whole number".into()))?
        as usize;
    let suffix = h.param(2).and_then(|p| p.value().as_str()).unwrap_or("…");
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    Ok(Value::String(truncate(&text, limit, suffix)))
}

/// `{{html text}}`: HTML-escaped text, for HTML that lands inside a JSON string (the JSON
/// escaping of `*.json.hbs` still applies on top).
fn html(h: &Helper) -> Result<Value, RenderError> {
    let text = match param(h, "html", 0)? {
        Value::String(s) => handlebars::html_escape(s),
        Value::Null => String::new(),
        other => handlebars::html_escape(&other.to_string()),
    };
    Ok(Value::String(text))
}

/// `value` as an absolute `http` or `https` URL, in the normalised form a browser would follow
/// (scheme and host lower-case, surrounding blanks and embedded tabs and line breaks removed);
/// `None` for anything else: other schemes such as `javascript:`, `data:` or `vbscript:`,
/// relative and protocol-relative addresses, and text that is not a URL.
pub fn web_url(value: &str) -> Option<String> {
    let url = reqwest::Url::parse(value).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// `{{web_url value}}`: [`web_url`], or an empty string (false in `{{#if}}`), so that only web
/// addresses become links: `{{#if (web_url url)}}<a href="{{web_url url}}">…</a>{{/if}}`.
fn web_url_helper(h: &Helper) -> Result<Value, RenderError> {
    let shown = match param(h, "web_url", 0)? {
        Value::String(s) => web_url(s),
        _ => None,
    };
    Ok(Value::String(shown.unwrap_or_default()))
}

/// `{{last list n}}`: the last `n` items of a list (all of them when it is shorter; an empty
/// list for null), e.g. `{{transcript (last messages 20)}}` for the end of a long chat.
fn last(h: &Helper) -> Result<Value, RenderError> {
    let n = param(h, "last", 1)?
        .as_u64()
        .ok_or_else(|| other("last: the count must be a whole number".into()))?;
    match param(h, "last", 0)? {
        Value::Array(items) => {
            let skip = items
                .len()
                .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
            Ok(Value::Array(items[skip..].to_vec()))
        }
        Value::Null => Ok(Value::Array(Vec::new())),
        other_value => Err(other(format!("last: {other_value} is not a list"))),
    }
}

/// `{{number value}}`: a whole number written as text (`"501"`, such as an id a service
/// returns in a header) as a number; anything else unchanged. `{{json (number x)}}` then
/// writes `501`, and text that is not a number (a `render` placeholder) as a JSON string.
fn number(h: &Helper) -> Result<Value, RenderError> {
    let value = param(h, "number", 0)?;
    Ok(match value.as_str().map(str::trim) {
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| value.clone()),
        _ => value.clone(),
    })
}

/// `{{urlencode value}}`: the value with every byte but `A-Z a-z 0-9 - . _ ~` percent-encoded,
/// for a path segment or a query value of a URL.
fn urlencode_helper(h: &Helper) -> Result<Value, RenderError> {
    let text = match param(h, "urlencode", 0)? {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(Value::String(out))
}

/// `{{include "name.html.hbs"}}` in JSON templates: renders an HTML or text template with the
/// root context and returns its output, which the JSON template then escapes as string
/// content. HTML keeps its own escaping, and template files keep their line breaks.
pub struct Include {
    /// The HTML registry.
    pub html: Arc<RwLock<Handlebars<'static>>>,
    /// The text registry.
    pub text: Arc<RwLock<Handlebars<'static>>>,
}

impl HelperDef for Include {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let name = param(h, "include", 0)?
            .as_str()
            .ok_or_else(|| other("include: the template name must be a string".into()))?;
        let registry = match super::escape::EscapeMode::for_name(name) {
            super::escape::EscapeMode::Html => &self.html,
            super::escape::EscapeMode::Text => &self.text,
            super::escape::EscapeMode::Json => {
                return Err(other(format!(
                    "include: {name} is a JSON template; use a partial ({{{{> {name}}}}}) instead"
                )))
            }
        };
        let registry = registry.read().unwrap_or_else(|p| p.into_inner());
        if !registry.has_template(name) {
            return Err(other(format!("include: no template {name}")));
        }
        let text = registry
            .render_with_context(name, ctx)
            .map_err(|e| other(format!("include {name}: {e}")))?;
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_addresses_are_web_urls() {
        for (given, expected) in [
            (
                "https://shop.example/cart?a=1",
                Some("https://shop.example/cart?a=1"),
            ),
            ("HTTP://Shop.Example", Some("http://shop.example/")),
            (
                " https://shop.example/a\tb ",
                Some("https://shop.example/ab"),
            ),
            ("javascript:alert(1)", None),
            (" JavaScript:alert(1)", None),
            ("java\tscript:alert(1)", None),
            ("\u{1}javascript:alert(1)", None),
            ("data:text/html,<script>alert(1)</script>", None),
            ("vbscript:msgbox(1)", None),
            ("//evil.example/x", None),
            ("/relative", None),
            ("mailto:a@b.example", None),
            ("", None),
        ] {
            assert_eq!(web_url(given).as_deref(), expected, "{given:?}");
        }
    }
}
