//! Settings of `kind: hubspot` and their checks.

use super::Hubspot;
use crate::config::{Common, HttpUrl, PerKind, Problems, RateLimit, Secret, TimeZone, Words};
use crate::destinations::registry::{self, BuildContext, Kind, KindSettings, SecretKey};
use crate::destinations::Destination;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// `kind: hubspot`.
pub struct HubspotKind;

impl Kind for HubspotKind {
    fn name(&self) -> &str {
        "hubspot"
    }
    fn secret_keys(&self) -> &[SecretKey] {
        const KEYS: &[SecretKey] = &[SecretKey::one("access_token")];
        KEYS
    }
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        registry::parse_own::<HubspotSettings>(own, at, out)
    }
}

/// The own keys of `kind: hubspot`. Its `rate_limit` (shared key) counts API requests, 100
/// per 10 seconds by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotSettings {
    /// Template of the contact's properties.
    #[serde(default = "hubspot_contact")]
    pub contact_template: String,
    /// Template of the ticket's properties.
    #[serde(default = "hubspot_ticket")]
    pub ticket_template: String,
    /// Template of the note's properties.
    #[serde(default = "hubspot_note")]
    pub note_template: String,
    /// API host (tests, proxies).
    #[serde(default = "hubapi")]
    pub base_url: HttpUrl,
    /// Private app or service key access token (Bearer).
    pub access_token: Option<Secret>,
    /// `2026-03` (date-versioned paths) or `v3` (the legacy family).
    #[serde(default)]
    pub api_version: ApiVersion,
    /// Which objects to write (always in the order contact, ticket, note).
    #[serde(default = "hubspot_objects")]
    pub create: Vec<HubspotObject>,
    /// Ticket pipeline id by conversation kind.
    #[serde(default = "hubspot_pipeline")]
    pub pipeline: PerKind<String>,
    /// Ticket pipeline stage id by conversation kind.
    #[serde(default = "hubspot_stage")]
    pub stage: PerKind<String>,
    /// Ticket priority by conversation kind (LOW, MEDIUM, HIGH, URGENT).
    #[serde(default = "hubspot_priority")]
    pub priority: PerKind<Priority>,
    /// Owner of created tickets.
    pub owner_id: Option<String>,
    /// The HubSpot account (portal) id: with it the admin dashboard links created contacts and
    /// tickets to their records in HubSpot.
    pub portal_id: Option<String>,
    /// A custom ticket property that holds the conversation key: a ticket whose creation had
    /// an unknown outcome is searched by it before being created again.
    pub conversation_key_property: Option<String>,
    /// Time zone of times in transcripts (IANA name).
    #[serde(default)]
    pub time_zone: TimeZone,
}

/// A HubSpot object deskbridge can write.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HubspotObject {
    /// Upserted by email.
    Contact,
    /// Created once per conversation.
    Ticket,
    /// The transcript; one per version.
    Note,
}

/// The family of API paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/crm/v3/objects/{object}` (the legacy family).
    V3,
    /// `/crm/objects/{version}/{object}`, e.g. `2026-03`.
    Dated(String),
}

impl Default for ApiVersion {
    fn default() -> Self {
        Self::Dated("2026-03".into())
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let dated = text.len() == 7
            && text.as_bytes()[4] == b'-'
            && text.chars().filter(|c| c.is_ascii_digit()).count() == 6;
        match text.as_str() {
            "v3" => Ok(Self::V3),
            _ if dated => Ok(Self::Dated(text)),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not v3 or a date version such as 2026-03"
            ))),
        }
    }
}

/// A HubSpot ticket priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `URGENT`.
    Urgent,
}

impl Words for Priority {
    const WORDS: &'static [(&'static str, Self)] = &[
        ("LOW", Self::Low),
        ("MEDIUM", Self::Medium),
        ("HIGH", Self::High),
        ("URGENT", Self::Urgent),
    ];
}
crate::serde_words!(Priority);

fn hubspot_contact() -> String {
    "hubspot/contact.json.hbs".into()
}
fn hubspot_ticket() -> String {
    "hubspot/ticket.json.hbs".into()
}
fn hubspot_note() -> String {
    "hubspot/note.json.hbs".into()
}
fn hubapi() -> HttpUrl {
    HttpUrl::parse("https://api.hubapi.com").expect("static URL")
}
fn hubspot_objects() -> Vec<HubspotObject> {
    vec![
        HubspotObject::Contact,
        HubspotObject::Ticket,
        HubspotObject::Note,
    ]
}
fn hubspot_pipeline() -> PerKind<String> {
    PerKind::same("0".into())
}
fn hubspot_stage() -> PerKind<String> {
    PerKind::same("1".into())
}
fn hubspot_priority() -> PerKind<Priority> {
    PerKind {
        chat: Priority::Low,
        missed: Priority::High,
        offline: Priority::Medium,
    }
}

/// Requests per period when `rate_limit` is not set.
pub fn default_rate() -> RateLimit {
    RateLimit {
        requests: 100,
        per: std::time::Duration::from_secs(10),
    }
}

impl KindSettings for HubspotSettings {
    fn kind(&self) -> &str {
        "hubspot"
    }

    fn validate(&self, _name: &str, at: &str, out: &mut Problems) {
        if self
            .access_token
            .as_ref()
            .is_none_or(|t| t.expose().trim().is_empty())
        {
            out.add(
                &format!("{at}.access_token"),
                "a private app access token is required",
            );
        }
        if self
            .conversation_key_property
            .as_ref()
            .is_some_and(|p| p.trim().is_empty())
        {
            out.add(
                &format!("{at}.conversation_key_property"),
                "must name a ticket property (or be left out)",
            );
        }
        if self.create.is_empty() {
            out.add(
                &format!("{at}.create"),
                "name at least one of contact, ticket, note",
            );
        }
    }

    fn templates(&self) -> Vec<(String, &str)> {
        vec![
            ("contact_template".into(), &self.contact_template),
            ("ticket_template".into(), &self.ticket_template),
            ("note_template".into(), &self.note_template),
        ]
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        Vec::new()
    }

    /// HubSpot paces its own requests (its `rate_limit` counts API calls): no lane pacer.
    fn lane_rate(&self, _: &Common) -> Option<RateLimit> {
        None
    }

    fn build(&self, name: &str, common: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        let rate = common.rate_limit.unwrap_or_else(default_rate);
        Arc::new(Hubspot::new(name, self, rate, cx.shared.clone()))
    }
}
