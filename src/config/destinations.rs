//! Settings of each destination kind.

use super::{EmailSettings, HumanDuration, Secret, SecretList};
use indexmap::IndexMap;
use serde::Deserialize;

/// One destination; `kind` selects the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DestinationSettings {
    /// POST the rendered body to any URL.
    Webhook(WebhookSettings),
    /// Write the rendered body to a folder, one file per delivery.
    File(FileSettings),
    /// Create (or update) a Zendesk ticket per conversation.
    Zendesk(Box<ZendeskSettings>),
    /// Upsert the HubSpot contact, create a ticket and a transcript note.
    Hubspot(Box<HubspotSettings>),
    /// Send the transcript as an email over SMTP (any help desk's support address).
    Email(Box<EmailSettings>),
    /// A destination described in YAML (docs/RECIPES.md): `kind: recipe` with `recipe: PATH`,
    /// or a shipped recipe by its name (`kind: freshdesk`).
    Recipe(Box<RecipeSettings>),
}

/// Keys every destination has besides its kind's own.
pub const SHARED_DESTINATION_KEYS: &[&str] = &["when", "rate_limit", "concurrency", "breaker"];

/// `kind: recipe`, or a shipped recipe's kind.
#[derive(Debug, Clone, Deserialize)]
pub struct RecipeSettings {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Most deliveries started per period, e.g. `100/10s` (none by default).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// The recipe file (for a shipped recipe, its file under the templates folder).
    pub recipe: String,
    /// The recipe's own settings as written, checked against the recipe when it is loaded.
    #[serde(flatten)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// The recipe, read and checked by the loader.
    #[serde(skip)]
    pub loaded: std::sync::Arc<crate::destinations::recipe::format::Recipe>,
    /// `values` typed by the recipe's settings.
    #[serde(skip)]
    pub resolved: crate::destinations::recipe::settings::Resolved,
}

impl DestinationSettings {
    /// The `when` expression, if any.
    pub fn when(&self) -> Option<&str> {
        match self {
            Self::Webhook(w) => w.when.as_deref(),
            Self::File(f) => f.when.as_deref(),
            Self::Zendesk(z) => z.when.as_deref(),
            Self::Hubspot(h) => h.when.as_deref(),
            Self::Email(e) => e.when.as_deref(),
            Self::Recipe(r) => r.when.as_deref(),
        }
    }

    /// Pacing, concurrency and breaker of the destination's lane. HubSpot paces its own
    /// requests (its `rate_limit` counts API calls), so its lane has no pacer.
    pub fn health(&self) -> (Option<RateLimit>, Option<usize>, BreakerSettings) {
        match self {
            Self::Webhook(w) => (w.rate_limit, w.concurrency, w.breaker),
            Self::File(f) => (f.rate_limit, f.concurrency, f.breaker),
            Self::Zendesk(z) => (z.rate_limit, z.concurrency, z.breaker),
            Self::Hubspot(h) => (None, h.concurrency, h.breaker),
            Self::Email(e) => (e.rate_limit, e.concurrency, e.breaker),
            Self::Recipe(r) => (r.rate_limit, r.concurrency, r.breaker),
        }
    }

    /// The main template.
    pub fn template(&self) -> &str {
        match self {
            Self::Webhook(w) => &w.template,
            Self::File(f) => &f.template,
            Self::Zendesk(z) => &z.template,
            Self::Hubspot(h) => &h.ticket_template,
            Self::Email(e) => &e.text_template,
            Self::Recipe(r) => r.loaded.body_templates().first().map_or("", |(_, t)| t),
        }
    }

    /// Every template the destination may render, with its key.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::Zendesk(z) => vec![
                ("template", &z.template),
                ("update_template", &z.update_template),
                ("context_template", &z.context_template),
                ("import_template", &z.import_template),
            ],
            Self::Hubspot(h) => vec![
                ("contact_template", &h.contact_template),
                ("ticket_template", &h.ticket_template),
                ("note_template", &h.note_template),
            ],
            Self::Email(e) => vec![
                ("text_template", &e.text_template),
                ("html_template", &e.html_template),
            ],
            Self::Recipe(r) => r
                .loaded
                .body_templates()
                .into_iter()
                .map(|(_, t)| ("recipe", t))
                .collect(),
            other => vec![("template", other.template())],
        }
    }

    /// Handlebars templates written in the configuration itself (not `when`), by their key
    /// under the destination, e.g. `subject` or `to[0]`.
    pub fn inline_templates(&self) -> Vec<(String, &str)> {
        match self {
            Self::Email(e) => e.inline_templates(),
            Self::Recipe(r) => r
                .loaded
                .inline_templates()
                .into_iter()
                .map(|(key, source)| (format!("recipe.{key}"), source))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// `kind: webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Most deliveries started per period, e.g. `100/10s` (none by default).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Template path under `templates.dir`.
    #[serde(default = "default_webhook_template")]
    pub template: String,
    /// Where to send the request.
    pub url: String,
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra request headers; values are treated as secrets in output.
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    /// Standard Webhooks secrets (`whsec_…`); several sign with each, for rotation.
    #[serde(default)]
    pub signing_secret: Option<SecretList>,
}

fn default_webhook_template() -> String {
    "webhook/conversation.json.hbs".into()
}

fn default_method() -> String {
    "POST".into()
}

/// `kind: file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Most deliveries started per period, e.g. `100/10s` (none by default).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Template path under `templates.dir`.
    #[serde(default = "default_webhook_template")]
    pub template: String,
    /// Folder the files are written to (created when missing).
    pub dir: String,
}

/// `kind: zendesk`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZendeskSettings {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Most deliveries started per period, e.g. `100/10s` (none by default).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
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
    pub base_url: Option<String>,
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
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Whether the transcript comment is public (may email the requester) or internal.
    #[serde(default)]
    pub public: bool,
    /// Ticket priority by conversation kind (urgent, high, normal, low).
    #[serde(default = "default_priority")]
    pub priority: PerKind,
    /// Ticket type by conversation kind (problem, incident, question, task).
    #[serde(default = "default_type", rename = "type")]
    pub ticket_type: PerKind,
    /// Tags added to every ticket, besides `smartsupp`, the kind and `rating_N`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How long Zendesk remembers an `Idempotency-Key`; past it, an unknown outcome is
    /// looked up by `external_id` before creating again.
    #[serde(default = "two_hours")]
    pub idempotency_window: HumanDuration,
}

/// `auth:` of a destination: how its access tokens are obtained.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSettings {
    /// OAuth 2.0 (RFC 6749) with a confidential client.
    Oauth(OAuthSettings),
}

/// `auth: {kind: oauth, …}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// `client_credentials` (the client's own identity) or `refresh_token` (a user's grant,
    /// renewed with rotating refresh tokens kept in the store).
    #[serde(default)]
    pub grant: OAuthGrant,
    /// The OAuth client's identifier.
    pub client_id: String,
    /// The OAuth client's secret (also `client_secret_file`).
    pub client_secret: Secret,
    /// Space-separated scopes asked for with `client_credentials` (each destination has a
    /// default).
    pub scope: Option<String>,
    /// With `grant: refresh_token`: the refresh token that seeds the store the first time, or
    /// after the admin authorised again (also `refresh_token_file`).
    pub refresh_token: Option<Secret>,
    /// The token endpoint, instead of the destination's own (tests, proxies).
    pub token_url: Option<String>,
}

/// Which OAuth 2.0 grant obtains access tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// `grant_type=client_credentials`.
    #[default]
    ClientCredentials,
    /// `grant_type=refresh_token`, rotating.
    RefreshToken,
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

/// A value for each conversation kind.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PerKind {
    /// A finished chat.
    pub chat: String,
    /// A chat nobody answered.
    pub missed: String,
    /// A message left while offline.
    pub offline: String,
}

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
fn utc() -> String {
    "UTC".into()
}
fn two_hours() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2 * 3600))
}
fn default_priority() -> PerKind {
    PerKind {
        chat: "normal".into(),
        missed: "high".into(),
        offline: "normal".into(),
    }
}
fn default_type() -> PerKind {
    PerKind {
        chat: "question".into(),
        missed: "question".into(),
        offline: "question".into(),
    }
}

/// `kind: hubspot`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotSettings {
    /// Handlebars expression; the destination gets a conversation when it renders `true`.
    pub when: Option<String>,
    /// Concurrent deliveries to this destination, instead of `delivery.workers`.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// When to pause the destination after failures.
    #[serde(default)]
    pub breaker: BreakerSettings,
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
    pub base_url: String,
    /// Private app or service key access token (Bearer).
    pub access_token: Option<Secret>,
    /// `2026-03` (date-versioned paths) or `v3` (the legacy family).
    #[serde(default = "hubspot_version")]
    pub api_version: String,
    /// Which objects to write (always in the order contact, ticket, note).
    #[serde(default = "hubspot_objects")]
    pub create: Vec<HubspotObject>,
    /// Ticket pipeline id by conversation kind.
    #[serde(default = "hubspot_pipeline")]
    pub pipeline: PerKind,
    /// Ticket pipeline stage id by conversation kind.
    #[serde(default = "hubspot_stage")]
    pub stage: PerKind,
    /// Ticket priority by conversation kind (LOW, MEDIUM, HIGH, URGENT).
    #[serde(default = "hubspot_priority")]
    pub priority: PerKind,
    /// Owner of created tickets.
    pub owner_id: Option<String>,
    /// The HubSpot account (portal) id: with it the admin dashboard links created contacts and
    /// tickets to their records in HubSpot.
    pub portal_id: Option<String>,
    /// A custom ticket property that holds the conversation key: a ticket whose creation had
    /// an unknown outcome is searched by it before being created again.
    pub conversation_key_property: Option<String>,
    /// Time zone of times in transcripts (IANA name).
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Most requests per period, e.g. `100/10s`.
    #[serde(default = "hubspot_rate")]
    pub rate_limit: RateLimit,
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

/// `N/period`, e.g. `100/10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub requests: u32,
    /// The period.
    pub per: std::time::Duration,
}

impl RateLimit {
    /// Parses `N/duration`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("invalid rate {text:?} (write e.g. 100/10s)");
        let (n, per) = text.split_once('/').ok_or_else(invalid)?;
        let requests: u32 = n.trim().parse().map_err(|_| invalid())?;
        let per = HumanDuration::parse(per).map_err(|_| invalid())?.0;
        if requests == 0 || per.is_zero() {
            return Err(invalid());
        }
        Ok(Self { requests, per })
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn hubspot_contact() -> String {
    "hubspot/contact.json.hbs".into()
}
fn hubspot_ticket() -> String {
    "hubspot/ticket.json.hbs".into()
}
fn hubspot_note() -> String {
    "hubspot/note.json.hbs".into()
}
fn hubapi() -> String {
    "https://api.hubapi.com".into()
}
fn hubspot_version() -> String {
    "2026-03".into()
}
fn hubspot_objects() -> Vec<HubspotObject> {
    vec![
        HubspotObject::Contact,
        HubspotObject::Ticket,
        HubspotObject::Note,
    ]
}
fn same(value: &str) -> PerKind {
    PerKind {
        chat: value.into(),
        missed: value.into(),
        offline: value.into(),
    }
}
fn hubspot_pipeline() -> PerKind {
    same("0")
}
fn hubspot_stage() -> PerKind {
    same("1")
}
fn hubspot_priority() -> PerKind {
    PerKind {
        chat: "LOW".into(),
        missed: "HIGH".into(),
        offline: "MEDIUM".into(),
    }
}
fn hubspot_rate() -> RateLimit {
    RateLimit {
        requests: 100,
        per: std::time::Duration::from_secs(10),
    }
}

/// `breaker:` of a destination: after `failures` failed attempts in a row the destination is
/// paused (its deliveries wait without spending attempts); after `cool_down` one delivery
/// probes it, and a success resumes it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Failed attempts in a row that pause the destination; 0 turns the breaker off.
    pub failures: u32,
    /// How long a paused destination waits before a probe.
    pub cool_down: HumanDuration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 10,
            cool_down: HumanDuration(std::time::Duration::from_secs(60)),
        }
    }
}
