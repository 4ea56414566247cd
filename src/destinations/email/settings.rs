//! Settings of `kind: email` and their validation: the SMTP server and its TLS, the sender,
//! recipients and the message's templates.

use super::Email;
use crate::config::{Common, Problems, RateLimit, Secret, TimeZone};
use crate::destinations::registry::{self, BuildContext, Kind, KindSettings, SecretKey};
use crate::destinations::Destination;
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::sync::Arc;

/// `kind: email`.
pub struct EmailKind;

impl Kind for EmailKind {
    fn name(&self) -> &str {
        "email"
    }
    fn secret_keys(&self) -> &[SecretKey] {
        const KEYS: &[SecretKey] = &[SecretKey::one("username"), SecretKey::one("password")];
        KEYS
    }
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        registry::parse_own::<EmailSettings>(own, at, out)
    }
}

/// Smallest `max_message_bytes` accepted: room for the headers, the visitor's context and the
/// notice that the transcript was shortened.
pub const MIN_MESSAGE_BYTES: usize = 16 * 1024;

/// Headers deskbridge writes itself; `headers` may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
];

/// The own keys of `kind: email`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server: `smtp://host:587` (STARTTLS, required unless `tls: none`) or
    /// `smtps://host:465` (TLS from the first byte). The port defaults to 587 and 465.
    pub smtp_url: String,
    /// `starttls` (the default for `smtp://`), `none` (plain text, only when set explicitly),
    /// or `tls` (the only choice for `smtps://`).
    pub tls: Option<EmailTls>,
    /// PEM file of the certificate authority (or self-signed certificate) the server's
    /// certificate must chain to, instead of the system's trusted roots.
    pub ca_file: Option<String>,
    /// The name deskbridge gives in `EHLO` (the address literal of 127.0.0.1 when not set).
    pub hello_name: Option<String>,
    /// SMTP user (AUTH PLAIN or LOGIN); also `username_file`.
    pub username: Option<Secret>,
    /// SMTP password; also `password_file`.
    pub password: Option<Secret>,
    /// The address deskbridge sends as (the envelope sender too), e.g. `chats@example.com`.
    /// Its domain should publish SPF and sign with DKIM for the server used.
    pub from: String,
    /// Handlebars template of the sender's display name (the address stays `from`).
    #[serde(default = "default_from_name")]
    pub from_name: String,
    /// Recipients: one or more Handlebars templates, each rendering one address or a
    /// comma-separated list; a template that renders empty adds nobody.
    #[serde(deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    /// Copy recipients, as `to`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    /// Blind copy recipients, as `to` (in the envelope only, never in the message).
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    /// `visitor` (the visitor's address when it is usable, so that replies reach them),
    /// `none`, or a fixed address.
    #[serde(default)]
    pub reply_to: ReplyTo,
    /// Handlebars template of the subject.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Template of the plain-text part.
    #[serde(default = "default_text_template")]
    pub text_template: String,
    /// Template of the HTML part.
    #[serde(default = "default_html_template")]
    pub html_template: String,
    /// Time zone of times in the transcript (IANA name).
    #[serde(default)]
    pub time_zone: TimeZone,
    /// Extra message headers by name; values are Handlebars templates, and a header whose
    /// value renders empty is left out.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Largest message (headers and both parts, as sent); a longer transcript is cut with a
    /// notice in the message.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

/// Who replies to a message reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReplyTo {
    /// The visitor's address, when it is usable.
    #[default]
    Visitor,
    /// No `Reply-To`.
    None,
    /// A fixed address.
    Address(String),
}

impl<'de> Deserialize<'de> for ReplyTo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "visitor" => Ok(Self::Visitor),
            "none" => Ok(Self::None),
            address if super::message::is_plain_address(address) => {
                Ok(Self::Address(address.to_string()))
            }
            other => Err(serde::de::Error::custom(format!(
                "{other:?} is not visitor, none or an address such as team@example.com"
            ))),
        }
    }
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmailTls {
    /// `STARTTLS` after the greeting, required: a server that does not offer it is not used.
    Starttls,
    /// TLS from the first byte (`smtps://`, port 465).
    Tls,
    /// No encryption: for a relay on the same machine or network only.
    None,
}

impl EmailSettings {
    /// The TLS mode in effect: `tls` if set, else by the URL's scheme.
    pub fn tls_mode(&self) -> EmailTls {
        match (self.tls, self.smtp_url.starts_with("smtps://")) {
            (Some(mode), _) => mode,
            (None, true) => EmailTls::Tls,
            (None, false) => EmailTls::Starttls,
        }
    }

    /// The inline Handlebars templates, by their key under the destination.
    pub fn inline_templates(&self) -> Vec<(String, &str)> {
        let mut out = vec![
            ("subject".to_string(), self.subject.as_str()),
            ("from_name".to_string(), self.from_name.as_str()),
        ];
        for (key, list) in [("to", &self.to), ("cc", &self.cc), ("bcc", &self.bcc)] {
            for (i, template) in list.iter().enumerate() {
                out.push((format!("{key}[{i}]"), template.as_str()));
            }
        }
        for (name, template) in &self.headers {
            out.push((format!("headers.{name}"), template.as_str()));
        }
        out
    }
}

#[cfg(test)]
impl EmailSettings {
    /// Settings as `kind: email` with only the required keys.
    pub fn sample() -> Self {
        serde_json::from_value(serde_json::json!({
            "smtp_url": "smtp://mail.example.com:587",
            "from": "chats@example.com",
            "to": "support@example.com",
        }))
        .expect("sample settings")
    }
}

fn default_from_name() -> String {
    "{{meta.visitorName}} via Smartsupp".into()
}
fn default_subject() -> String {
    "{{> email/subject.txt.hbs}}".into()
}
fn default_text_template() -> String {
    "email/body.txt.hbs".into()
}
fn default_html_template() -> String {
    "email/body.html.hbs".into()
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}

/// One string or a list of strings.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Form::deserialize(d)? {
        Form::One(s) => vec![s],
        Form::Many(list) => list,
    })
}

/// Whether `host` names this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl KindSettings for EmailSettings {
    fn kind(&self) -> &str {
        "email"
    }

    fn validate(&self, _name: &str, at: &str, out: &mut Problems) {
        validate(at, self, out);
    }

    fn templates(&self) -> Vec<(String, &str)> {
        vec![
            ("text_template".into(), &self.text_template),
            ("html_template".into(), &self.html_template),
        ]
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        EmailSettings::inline_templates(self)
    }

    fn lane_rate(&self, common: &Common) -> Option<RateLimit> {
        common.rate_limit
    }

    fn build(&self, name: &str, _: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        Arc::new(Email::new(
            name,
            self,
            cx.shared.clone(),
            cx.delivery.request_timeout.0,
        ))
    }
}

/// Records every problem of an email destination at `at` in `out`.
fn validate(at: &str, e: &EmailSettings, out: &mut Problems) {
    let key = |k: &str| format!("{at}.{k}");
    match reqwest::Url::parse(&e.smtp_url) {
        Ok(url) if matches!(url.scheme(), "smtp" | "smtps") && url.has_host() => {
            if !url.username().is_empty() || url.password().is_some() {
                out.add(
                    &key("smtp_url"),
                    "give the credentials as username and password (or username_file and password_file), not in the URL",
                );
            }
            if !matches!(url.path(), "" | "/") || url.query().is_some() {
                out.add(&key("smtp_url"), "must be smtp://host[:port] or smtps://host[:port], with nothing after the port");
            }
            let host = url.host_str().unwrap_or_default();
            tls_problems(&key("tls"), e, url.scheme(), host, out);
        }
        _ => out.add(
            &key("smtp_url"),
            format!(
                "{:?} is not an SMTP URL such as smtp://mail.example.com:587 or smtps://mail.example.com:465",
                crate::redact::url(&e.smtp_url)
            ),
        ),
    }
    match (&e.username, &e.password) {
        (Some(_), None) => out.add(&key("password"), "username needs a password"),
        (None, Some(_)) => out.add(&key("username"), "password needs a username"),
        (Some(user), Some(password)) => {
            for (k, value) in [("username", user), ("password", password)] {
                if value.expose().is_empty() {
                    out.add(
                        &key(k),
                        "is empty (leave username and password out for a server without AUTH)",
                    );
                }
            }
        }
        (None, None) => {}
    }
    if let Some(name) = &e.hello_name {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
        if !ok {
            out.add(
                &key("hello_name"),
                "must be a host name such as deskbridge.example.com",
            );
        }
    }
    if let Some(path) = &e.ca_file {
        if e.tls_mode() == EmailTls::None {
            out.add(&key("ca_file"), "is used with TLS only (tls: none is set)");
        } else if let Some(problem) = super::smtp::ca_file_problem(path) {
            out.add(&key("ca_file"), problem);
        }
    }
    if !super::message::is_plain_address(&e.from) {
        out.add(
            &key("from"),
            format!(
                "{:?} is not a plain ASCII address such as chats@example.com (the display name is from_name)",
                e.from
            ),
        );
    }
    if e.to.is_empty() {
        out.add(&key("to"), "name at least one recipient");
    }
    for name in e.headers.keys() {
        let token = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !token {
            out.add(
                &key(&format!("headers.{name}")),
                "a header name may hold only letters, digits and '-'",
            );
        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            out.add(
                &key(&format!("headers.{name}")),
                "deskbridge writes this header itself (use from, to, cc, bcc, reply_to or subject)",
            );
        }
    }
    if e.max_message_bytes < MIN_MESSAGE_BYTES {
        out.add(
            &key("max_message_bytes"),
            format!("must be at least {MIN_MESSAGE_BYTES}"),
        );
    }
}

/// The TLS mode must fit the URL's scheme, and plain text carries no password off this
/// machine.
fn tls_problems(at: &str, e: &EmailSettings, scheme: &str, host: &str, out: &mut Problems) {
    match (scheme, e.tls) {
        ("smtps", Some(EmailTls::Starttls | EmailTls::None)) => out.add(
            at,
            "smtps:// is TLS from the first byte: leave tls out, or use smtp:// for starttls or none",
        ),
        ("smtp", Some(EmailTls::Tls)) => out.add(
            at,
            "tls: tls needs an smtps:// URL (smtps://host:465); smtp:// uses starttls",
        ),
        _ => {}
    }
    if e.tls_mode() == EmailTls::None && e.username.is_some() && !is_loopback(host) {
        out.add(
            at,
            "tls: none would send the password in plain text to another machine: use starttls or smtps://, or a relay on localhost",
        );
    }
}
