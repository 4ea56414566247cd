//! `kind: webhook`: the rendered body to any URL, optionally signed (Standard Webhooks).

mod settings;

pub use settings::{default_template, WebhookKind, WebhookSettings};

use super::{
    http, signing, BoxFuture, Delivered, DeliveryError, Destination, Job, Request, Shared,
};
use crate::render::escape::EscapeMode;
use crate::render::RenderError;

/// A webhook destination.
pub struct Webhook {
    name: String,
    settings: WebhookSettings,
    keys: Vec<Vec<u8>>,
    shared: Shared,
}

impl Webhook {
    /// Builds the destination; secrets were validated with the configuration.
    pub fn new(name: &str, settings: &WebhookSettings, shared: Shared) -> Self {
        let keys = settings
            .signing_secret
            .iter()
            .flat_map(|list| list.0.iter())
            .filter_map(|s| signing::decode_secret(s).ok())
            .collect();
        Self {
            name: name.to_string(),
            settings: settings.clone(),
            keys,
            shared,
        }
    }
}

impl Destination for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    fn requests(&self, job: &Job<'_>) -> Result<Vec<Request>, RenderError> {
        let template = &self.settings.template;
        let body = self.shared.renderer.render(template, job.context)?;
        let mut headers = Vec::with_capacity(self.settings.headers.len() + 4);
        if EscapeMode::for_name(template) == EscapeMode::Json {
            headers.push(("content-type".into(), "application/json".into(), false));
        }
        for (name, value) in &self.settings.headers {
            headers.push((name.clone(), value.expose().to_string(), true));
        }
        headers.push(("webhook-id".into(), job.idempotency_key.to_string(), false));
        if !self.keys.is_empty() {
            let timestamp = chrono::Utc::now().timestamp();
            let signature =
                signing::signature(&self.keys, job.idempotency_key, timestamp, body.as_bytes());
            headers.push(("webhook-timestamp".into(), timestamp.to_string(), false));
            headers.push(("webhook-signature".into(), signature, false));
        }
        Ok(vec![Request {
            secret_path: false,
            method: self.settings.method.0.to_string(),
            url: self.settings.url.as_str().to_string(),
            headers,
            body,
        }])
    }

    fn deliver<'a>(&'a self, job: &'a Job<'a>) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            let mut requests = self.requests(job)?;
            let request = requests.pop().ok_or_else(|| DeliveryError::Permanent {
                reason: "nothing was rendered".into(),
                status: None,
                excerpt: None,
            })?;
            super::note_sent(&request);
            http::send(&self.shared.client, &request).await
        })
    }
}
