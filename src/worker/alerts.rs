//! Announcing destination health changes to `alerts.webhook_url`, one at a time and in the
//! order they happened.

use super::breaker::State;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where health changes are POSTed.
#[derive(Clone)]
pub struct Alerts {
    queue: mpsc::UnboundedSender<serde_json::Value>,
}

impl Alerts {
    /// An announcer for `url`, or `None` without one. Its sender task ends when every clone
    /// of the announcer is gone.
    pub fn new(url: Option<&str>) -> Option<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        let url = url?.to_string();
        let (queue, mut alerts) = mpsc::unbounded_channel::<serde_json::Value>();
        tokio::spawn(async move {
            while let Some(alert) = alerts.recv().await {
                post(&client, &url, alert).await;
            }
        });
        Some(Self { queue })
    }

    /// Queues `{"destination", "state", "failures", "reason", "at"}` for posting (`reason`:
    /// the error that paused the destination, or null); returns at once.
    pub fn announce(&self, destination: &str, state: State, failures: u32, reason: Option<&str>) {
        let body = serde_json::json!({
            "destination": destination,
            "state": state.name(),
            "failures": failures,
            "reason": reason,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        // The sender task lives as long as this announcer.
        let _ = self.queue.send(body);
    }
}

async fn post(client: &reqwest::Client, url: &str, alert: serde_json::Value) {
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(alert.to_string())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => tracing::warn!(
            status = r.status().as_u16(),
            "the alert webhook refused an alert"
        ),
        Err(e) => tracing::warn!(error = %e.without_url(), "cannot post an alert"),
    }
}
