//! Settings of `kind: zendesk` and their checks.

use super::Zendesk;
use crate::config::{
    AuthSettings, Common, HttpUrl, HumanDuration, PerKind, Problems, RateLimit, Secret, TimeZone,
    Words,
};
use crate::destinations::registry::{self, BuildContext, Kind, KindSettings, SecretKey};
use crate::destinations::Destination;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// `kind: zendesk`.
pub struct ZendeskKind;

impl Kind for ZendeskKind {
    fn name(&self) -> &str {
        "zendesk"
    }
    fn secret_keys(&self) -> &[SecretKey] {
        const KEYS: &[SecretKey] = &[
            SecretKey::one("api_token"),
            SecretKey::one("oauth_token"),
            SecretKey::one("auth.client_secret"),
            SecretKey::one("auth.refresh_token"),
        ];
        KEYS
    }
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        registry::parse_own::<ZendeskSettings>(own, at, out)
    }
}

/// The own keys of `kind: zendesk`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZendeskSettings {
    /// Template of a new ticket (`POST /api/v2/tickets`).
    #[serde(default = "zendesk_ticket")]
    pub template: String,
    /// Template of the comment added when the visitor comes back (a new version).
    #[serde(default = "zendesk_update")]
    pub update_template: String,
    /// Template of the internal comment with the visitor's context, added after creation
    /// when `public` is true (an internal first comment carries the context itself).
    #[serde(default = "zendesk_context")]
    pub context_template: String,
    /// Template of `mode: import` (`POST /api/v2/imports/tickets`).
    #[serde(default = "zendesk_import")]
    pub import_template: String,
    /// Account subdomain: `acme` for `https://acme.zendesk.com`.
    pub subdomain: Option<String>,
    /// API base URL instead of the subdomain (tests, sandboxes, proxies).
    pub base_url: Option<HttpUrl>,
    /// The API user's email, with `api_token`.
    pub email: Option<String>,
    /// API token (Basic auth as `{email}/token`).
    pub api_token: Option<Secret>,
    /// A fixed OAuth access token (Bearer), instead of email and API token.
    pub oauth_token: Option<Secret>,
    /// OAuth 2.0 with a confidential client: access tokens fetched and renewed by deskbridge.
    pub auth: Option<AuthSettings>,
    /// `create` (live tickets) or `import` (Ticket Import: the chat's own timestamps).
    #[serde(default)]
    pub mode: ZendeskMode,
    /// Time zone of times in the transcript (IANA name).
    #[serde(default)]
    pub time_zone: TimeZone,
    /// Whether the transcript comment is public (may email the requester) or internal.
    #[serde(default)]
    pub public: bool,
    /// Ticket priority by conversation kind (urgent, high, normal, low).
    #[serde(default = "default_priority")]
    pub priority: PerKind<Priority>,
    /// Ticket type by conversation kind (problem, incident, question, task).
    #[serde(default = "default_type", rename = "type")]
    pub ticket_type: PerKind<TicketType>,
    /// Tags added to every ticket, besides `smartsupp`, the kind and `rating_N`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How long Zendesk remembers an `Idempotency-Key`; past it, an unknown outcome is
    /// looked up by `external_id` before creating again.
    #[serde(default = "two_hours")]
    pub idempotency_window: HumanDuration,
}

/// Ticket creation mode.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZendeskMode {
    /// `POST /api/v2/tickets`.
    #[default]
    Create,
    /// `POST /api/v2/imports/tickets` (admin only).
    Import,
}

/// A Zendesk ticket priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `urgent`.
    Urgent,
    /// `high`.
    High,
    /// `normal`.
    Normal,
    /// `low`.
    Low,
}

impl Words for Priority {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("urgent", Self::Urgent),
        ("high", Self::High),
        ("normal", Self::Normal),
        ("low", Self::Low),
    ];
}
crate::serde_words!(Priority);

/// A Zendesk ticket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketType {
    /// `problem`.
    Problem,
    /// `incident`.
    Incident,
    /// `question`.
    Question,
    /// `task`.
    Task,
}

impl Words for TicketType {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("problem", Self::Problem),
        ("incident", Self::Incident),
        ("question", Self::Question),
        ("task", Self::Task),
    ];
}
crate::serde_words!(TicketType);

fn zendesk_ticket() -> String {
    "zendesk/ticket.json.hbs".into()
}
fn zendesk_update() -> String {
    "zendesk/update.json.hbs".into()
}
fn zendesk_context() -> String {
    "zendesk/context.json.hbs".into()
}
fn zendesk_import() -> String {
    "zendesk/import.json.hbs".into()
}
fn two_hours() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2 * 3600))
}
fn default_priority() -> PerKind<Priority> {
    PerKind {
        chat: Priority::Normal,
        missed: Priority::High,
        offline: Priority::Normal,
    }
}
fn default_type() -> PerKind<TicketType> {
    PerKind::same(TicketType::Question)
}

impl ZendeskSettings {
    /// The checks of credentials: exactly one of `auth`, `email` with `api_token`, and
    /// `oauth_token`.
    fn validate_credentials(&self, at: &str, out: &mut Problems) {
        if let Some(AuthSettings::Oauth(o)) = &self.auth {
            o.validate(&format!("{at}.auth"), out);
            if self.email.is_some() || self.api_token.is_some() || self.oauth_token.is_some() {
                out.add(
                    &format!("{at}.auth"),
                    "give auth (OAuth), or email and api_token, or oauth_token: one of them",
                );
            }
            return;
        }
        match (&self.email, &self.api_token, &self.oauth_token) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (_, _, Some(_)) => out.add(at, "give email and api_token, or oauth_token, not both"),
            (None, Some(_), None) => out.add(
                &format!("{at}.email"),
                "api_token needs the API user's email",
            ),
            (Some(_), None, None) => out.add(
                &format!("{at}.api_token"),
                "email needs an api_token (or use oauth_token)",
            ),
            (None, None, None) => out.add(
                at,
                "credentials are required: auth (OAuth), or email and api_token, or oauth_token",
            ),
        }
    }
}

impl KindSettings for ZendeskSettings {
    fn kind(&self) -> &str {
        "zendesk"
    }

    fn validate(&self, _name: &str, at: &str, out: &mut Problems) {
        match (&self.subdomain, &self.base_url) {
            (Some(sub), None) => {
                let ok =
                    !sub.is_empty() && sub.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !ok {
                    out.add(
                        &format!("{at}.subdomain"),
                        "give the subdomain only, e.g. acme for acme.zendesk.com",
                    );
                }
            }
            (None, Some(_)) => {}
            (Some(_), Some(_)) => out.add(at, "give subdomain or base_url, not both"),
            (None, None) => out.add(at, "subdomain (or base_url) is required"),
        }
        self.validate_credentials(at, out);
    }

    fn templates(&self) -> Vec<(String, &str)> {
        vec![
            ("template".into(), &self.template),
            ("update_template".into(), &self.update_template),
            ("context_template".into(), &self.context_template),
            ("import_template".into(), &self.import_template),
        ]
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        Vec::new()
    }

    fn lane_rate(&self, common: &Common) -> Option<RateLimit> {
        common.rate_limit
    }

    fn build(&self, name: &str, _: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        Arc::new(Zendesk::new(name, self, cx.shared.clone()))
    }
}
