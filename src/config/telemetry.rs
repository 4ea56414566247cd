//! `telemetry:` — OpenTelemetry traces exported over OTLP/HTTP (off unless an endpoint is set).

use super::{HumanDuration, Secret};
use indexmap::IndexMap;
use serde::Deserialize;

/// `telemetry:` — where traces go and how this service names itself in them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP endpoint, e.g. `http://otel-collector:4318` (`/v1/traces` is
    /// appended unless the URL already ends with it). Traces are off when not set or empty.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of every span.
    pub service_name: String,
    /// More resource attributes, e.g. `deployment.environment: production`.
    pub resource_attributes: IndexMap<String, String>,
    /// Headers sent with every export (a collector's API key); values are secrets.
    pub headers: IndexMap<String, Secret>,
    /// How often finished spans are sent (sooner when many are waiting).
    pub export_interval: HumanDuration,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "deskbridge".into(),
            resource_attributes: IndexMap::new(),
            headers: IndexMap::new(),
            export_interval: HumanDuration(std::time::Duration::from_secs(2)),
        }
    }
}

impl TelemetrySettings {
    /// The URL spans are POSTed to, when traces are on.
    pub fn traces_url(&self) -> Option<String> {
        let endpoint = self.otlp_endpoint.as_deref().map(str::trim)?;
        if endpoint.is_empty() {
            return None;
        }
        let base = endpoint.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        let url = |e: &str| {
            TelemetrySettings {
                otlp_endpoint: Some(e.into()),
                ..TelemetrySettings::default()
            }
            .traces_url()
        };
        assert_eq!(
            url("http://c:4318").as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url("http://c:4318/").as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url("https://c/otlp/v1/traces").as_deref(),
            Some("https://c/otlp/v1/traces")
        );
        assert_eq!(url("  "), None);
        assert_eq!(TelemetrySettings::default().traces_url(), None);
    }
}
