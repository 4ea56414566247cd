//! `smartsupp:` — Smartsupp's signed Webhooks API (events), its REST API (enrichment and
//! `deskbridge import smartsupp`).

use super::{HumanDuration, Problems, RateLimit, Secret, SecretList};
use serde::Deserialize;

/// The public REST API v2.
pub const DEFAULT_API_BASE_URL: &str = "https://api.smartsupp.com/v2";

/// Events kept by default: everything about conversations and contacts. Visitor events
/// (`visitor.*`, the high-volume ones) are answered and counted, not stored.
pub const DEFAULT_STORE_EVENTS: &[&str] = &["conversation.*", "contact.*"];

/// `smartsupp:` — the Webhooks API route, and the REST API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmartsuppSettings {
    /// The app's shared secrets: `X-Smartsupp-Hmac` must be the HMAC-SHA256 of the body under
    /// one of them (several during a rotation). The events route answers 404 while empty.
    pub webhook_secrets: SecretList,
    /// REST API token (`Authorization: Bearer`): conversations are completed from the API
    /// before assembly, and `deskbridge import smartsupp` can run. Without it, conversations
    /// are assembled from their events alone.
    pub api_token: Option<Secret>,
    /// REST API base URL (tests, proxies).
    pub api_base_url: String,
    /// How long after a closing event a conversation is assembled, so late events are in it.
    pub settle: HumanDuration,
    /// Events stored, by name or `prefix.*`; others are answered 200 and counted only.
    pub store_events: Vec<String>,
    /// Most REST API requests per period (`N/period`), for enrichment and import together.
    pub api_rate_limit: RateLimit,
    /// Time limit of one REST API request.
    pub api_timeout: HumanDuration,
    /// Waits between assembly attempts whose REST API calls failed (network, 429, 5xx);
    /// after the last, the conversation is assembled from its events alone.
    pub api_retry_schedule: Vec<HumanDuration>,
}

impl Default for SmartsuppSettings {
    fn default() -> Self {
        let d = |s: &str| HumanDuration::parse(s).expect("static duration");
        Self {
            webhook_secrets: SecretList::default(),
            api_token: None,
            api_base_url: DEFAULT_API_BASE_URL.into(),
            settle: d("5s"),
            store_events: DEFAULT_STORE_EVENTS.iter().map(|s| s.to_string()).collect(),
            api_rate_limit: RateLimit {
                requests: 5,
                per: std::time::Duration::from_secs(1),
            },
            api_timeout: d("30s"),
            api_retry_schedule: vec![d("10s"), d("1m"), d("5m"), d("30m")],
        }
    }
}

impl SmartsuppSettings {
    /// Whether the events route is on (at least one webhook secret).
    pub fn events_enabled(&self) -> bool {
        self.webhook_secrets
            .0
            .iter()
            .any(|s| !s.expose().trim().is_empty())
    }

    /// Whether an event named `event` is stored.
    pub fn stores(&self, event: &str) -> bool {
        self.store_events
            .iter()
            .any(|pattern| matches(pattern, event))
    }

    /// Why the events route answers 404, for `check`; `None` when it is on.
    pub fn events_off_reason(&self) -> Option<&'static str> {
        (!self.events_enabled()).then_some(
            "smartsupp.webhook_secrets is empty: POST /hooks/smartsupp/events/{token} answers 404 \
             (give the app's secret to receive Smartsupp's Webhooks API events)",
        )
    }
}

/// `*` matches everything, `prefix.*` every event under the prefix, anything else itself.
fn matches(pattern: &str, event: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => event.starts_with(prefix),
        None => pattern == event,
    }
}

/// Records the problems of `smartsupp:` in `out`.
pub fn validate(s: &SmartsuppSettings, out: &mut Problems) {
    if s.webhook_secrets
        .0
        .iter()
        .any(|t| t.expose().trim().is_empty())
    {
        out.add("smartsupp.webhook_secrets", "a webhook secret is empty");
    }
    if s.api_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        out.add(
            "smartsupp.api_token",
            "is empty (remove it to assemble from events alone)",
        );
    }
    match reqwest::Url::parse(&s.api_base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
        _ => out.add(
            "smartsupp.api_base_url",
            format!("{:?} is not an http(s) URL", s.api_base_url),
        ),
    }
    if s.settle.0 > std::time::Duration::from_secs(3600) {
        out.add("smartsupp.settle", "must be at most 1h");
    }
    for (i, pattern) in s.store_events.iter().enumerate() {
        let inner = pattern.strip_suffix('*').unwrap_or(pattern);
        if pattern.trim().is_empty() || inner.contains('*') {
            out.add(
                &format!("smartsupp.store_events[{i}]"),
                format!("{pattern:?} is not an event name or a prefix such as conversation.*"),
            );
        }
    }
    if s.api_timeout.0.is_zero() {
        out.add("smartsupp.api_timeout", "must be greater than 0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_events_match_names_and_prefixes() {
        let s = SmartsuppSettings::default();
        assert!(s.stores("conversation.closed"));
        assert!(s.stores("contact.updated"));
        assert!(!s.stores("visitor.connected"));
        assert!(matches("*", "anything"));
        assert!(matches("visitor.typing", "visitor.typing"));
        assert!(!matches("visitor.typing", "visitor.typed"));
    }
}
