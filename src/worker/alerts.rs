//! Announcing destination health changes to `alerts.webhook_url`.

use super::breaker::State;
use std::time::Duration;

/// Where health changes are POSTed.
#[derive(Clone)]
pub struct Alerts {
    client: reqwest::Client,
    url: String,
}

impl Alerts {
    /// An announcer for `url`, or `None` without one.
    pub fn new(url: Option<&str>) -> Option<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        url.map(|u| Self {
            client,
            url: u.to_string(),
        })
    }

    /// POSTs `{"destination", "state", "failures", "at"}` without waiting for the answer.
    pub fn announce(&self, destination: &str, state: State, failures: u32) {
        let body = serde_json::json!({
            "destination": destination,
            "state": state.name(),
            "failures": failures,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let (client, url) = (self.client.clone(), self.url.clone());
        tokio::spawn(async move {
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    "the alert webhook refused an alert"
                ),
                Err(e) => tracing::warn!(
                    error = %crate::destinations::http::error_chain(&e.without_url()),
                    url = %crate::redact::url(&url),
                    "cannot post an alert"
                ),
            }
        });
    }
}
