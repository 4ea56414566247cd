//! Settings of `kind: webhook` and their checks.

use super::Webhook;
use crate::config::{Common, HttpMethod, HttpUrl, Problems, RateLimit, Secret, SecretList};
use crate::destinations::registry::{self, BuildContext, Kind, KindSettings, SecretKey};
use crate::destinations::{signing, Destination};
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// `kind: webhook`.
pub struct WebhookKind;

impl Kind for WebhookKind {
    fn name(&self) -> &str {
        "webhook"
    }
    fn secret_keys(&self) -> &[SecretKey] {
        const KEYS: &[SecretKey] = &[SecretKey::list("signing_secret")];
        KEYS
    }
    fn parse(
        &self,
        own: Map<String, Value>,
        at: &str,
        out: &mut Problems,
    ) -> Option<Arc<dyn KindSettings>> {
        registry::parse_own::<WebhookSettings>(own, at, out)
    }
}

/// The own keys of `kind: webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Template path under `templates.dir`.
    #[serde(default = "default_template")]
    pub template: String,
    /// Where to send the request.
    pub url: HttpUrl,
    /// HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Extra request headers; values are treated as secrets in output.
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    /// Standard Webhooks secrets (`whsec_…`); several sign with each, for rotation.
    #[serde(default)]
    pub signing_secret: Option<SecretList>,
}

/// The template of webhook and file destinations when `template` is not set.
pub fn default_template() -> String {
    "webhook/conversation.json.hbs".into()
}

impl KindSettings for WebhookSettings {
    fn kind(&self) -> &str {
        "webhook"
    }

    fn validate(&self, _name: &str, at: &str, out: &mut Problems) {
        for (header, value) in &self.headers {
            let name_ok = reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_ok();
            let value_ok = reqwest::header::HeaderValue::from_str(value.expose()).is_ok();
            if !name_ok || !value_ok {
                out.add(
                    &format!("{at}.headers.{header}"),
                    "not a valid HTTP header name and value",
                );
            }
        }
        if let Some(secrets) = &self.signing_secret {
            if secrets.0.is_empty() {
                out.add(&format!("{at}.signing_secret"), "no secret given");
            }
            for s in &secrets.0 {
                if let Err(e) = signing::decode_secret(s) {
                    out.add(&format!("{at}.signing_secret"), e);
                }
            }
        }
    }

    fn templates(&self) -> Vec<(String, &str)> {
        vec![("template".into(), &self.template)]
    }

    fn inline_templates(&self) -> Vec<(String, &str)> {
        Vec::new()
    }

    fn lane_rate(&self, common: &Common) -> Option<RateLimit> {
        common.rate_limit
    }

    fn build(&self, name: &str, _: &Common, cx: &BuildContext<'_>) -> Arc<dyn Destination> {
        Arc::new(Webhook::new(name, self, cx.shared.clone()))
    }
}
