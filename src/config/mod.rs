//! Typed settings: the YAML file, `DESKBRIDGE_SECTION__KEY` overrides, `${VAR}` expansion,
//! `x_file` secrets, and validation with errors that name file, line and key.

mod destinations;
mod load;
mod problems;
mod smartsupp;
mod telemetry;
mod types;
mod validate;
mod yaml;

pub use destinations::*;
pub use load::{from_text, load, read_secret_files};
pub use problems::{ConfigError, Problem, Problems};
pub use smartsupp::{SmartsuppSettings, DEFAULT_API_BASE_URL};
pub use telemetry::TelemetrySettings;
pub use types::{
    words, HttpMethod, HttpUrl, HumanDuration, IpNet, Secret, SecretList, TimeZone, Words,
};
pub use yaml::parse as parse_yaml;

use indexmap::IndexMap;
use serde::Deserialize;

/// The whole configuration of one deskbridge process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP server and hook authentication.
    #[serde(default)]
    pub server: ServerSettings,
    /// Where conversations and deliveries are kept.
    #[serde(default)]
    pub store: StoreSettings,
    /// How deliveries are attempted and retried.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Where templates are read from.
    #[serde(default)]
    pub templates: TemplateSettings,
    /// Logging.
    #[serde(default)]
    pub log: LogSettings,
    /// Where destination health changes are announced.
    #[serde(default)]
    pub alerts: AlertSettings,
    /// OpenTelemetry traces.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Smartsupp's Webhooks API (signed events) and REST API.
    #[serde(default)]
    pub smartsupp: SmartsuppSettings,
    /// Destinations by name, in file order. Read apart from the other sections, each by its
    /// kind ([`crate::destinations::registry::parse`]).
    #[serde(skip)]
    pub destinations: IndexMap<String, DestinationSettings>,
}

/// `alerts:` — notifications about destinations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Each pause, probe and resume of a destination is POSTed here as JSON.
    pub webhook_url: Option<String>,
}

/// `server:` — the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port to listen on.
    pub listen: String,
    /// Accepted `{token}` values of the hook URL, compared in constant time.
    pub hook_tokens: SecretList,
    /// Largest hook body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// HTTP worker threads (one per core when not set).
    pub http_workers: Option<usize>,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` headers are believed (a list, or one
    /// comma-separated string from the environment).
    #[serde(deserialize_with = "types::ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Turns the admin dashboard at `/admin` on: the token an admin signs in with (and scripts
    /// send as `Authorization: Bearer`). Off when not set or empty.
    pub admin_token: Option<Secret>,
    /// IANA time zone of dashboard times when the browser does not tell its own.
    pub admin_time_zone: String,
    /// A dashboard session ends after this long without a request (and after 12 hours in
    /// any case).
    pub admin_idle_timeout: HumanDuration,
    /// Most open client connections (all HTTP workers together); more wait to be accepted.
    pub max_connections: usize,
    /// How long a request body may take to arrive once its headers are in (hooks, sign-in,
    /// admin forms and API); a slower one is answered 408.
    pub body_timeout: HumanDuration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            hook_tokens: SecretList::default(),
            max_body_bytes: 5 * 1024 * 1024,
            http_workers: None,
            trusted_proxies: vec![
                IpNet::parse("127.0.0.1/32").expect("static network"),
                IpNet::parse("::1/128").expect("static network"),
            ],
            admin_token: None,
            admin_time_zone: "UTC".into(),
            admin_idle_timeout: HumanDuration(std::time::Duration::from_secs(30 * 60)),
            max_connections: 1024,
            body_timeout: HumanDuration(std::time::Duration::from_secs(30)),
        }
    }
}

/// `store:` — the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://path/to/file.sqlite` (created on first run) or
    /// `postgres://user:password@host:5432/database` (several instances).
    pub url: String,
    /// Most connections one instance opens to PostgreSQL.
    pub pool_size: usize,
    /// Conversations whose deliveries are all done are deleted once older than this.
    pub retention: HumanDuration,
    /// Dead deliveries (and their conversations) are kept at least this long after they died.
    pub dead_retention: HumanDuration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/deskbridge.sqlite".into(),
            pool_size: 16,
            retention: HumanDuration(std::time::Duration::from_secs(30 * 86_400)),
            dead_retention: HumanDuration(std::time::Duration::from_secs(90 * 86_400)),
        }
    }
}

/// `delivery:` — workers and retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Concurrent deliveries per destination.
    pub workers: usize,
    /// Time limit of one outbound request.
    pub request_timeout: HumanDuration,
    /// Waits between attempts; after the last one a delivery is dead.
    pub retry_schedule: Vec<HumanDuration>,
    /// How long a claimed delivery stays reserved; at least `request_timeout` plus a margin.
    pub lease: Option<HumanDuration>,
    /// On SIGTERM, how long in-flight deliveries may take before they are released.
    pub shutdown_grace: HumanDuration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let schedule = ["10s", "1m", "5m", "30m", "2h", "6h", "12h", "24h"];
        Self {
            workers: 8,
            request_timeout: HumanDuration::parse("30s").expect("static duration"),
            retry_schedule: schedule
                .iter()
                .map(|s| HumanDuration::parse(s).expect("static duration"))
                .collect(),
            lease: None,
            shutdown_grace: HumanDuration::parse("10s").expect("static duration"),
        }
    }
}

impl DeliverySettings {
    /// The lease taken on claim: configured, or four request timeouts plus 30 seconds (an
    /// attempt of several requests, with pacing waits, fits in it).
    pub fn lease(&self) -> std::time::Duration {
        self.lease
            .map(|l| l.0)
            .unwrap_or(self.request_timeout.0 * 4 + std::time::Duration::from_secs(30))
    }
}

/// `templates:` — the template folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSettings {
    /// Folder of `*.hbs` files; relative paths are relative to the working directory.
    pub dir: String,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            dir: "templates".into(),
        }
    }
}

/// `log:` — tracing output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `RUST_LOG`-style filter; `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
