//! `trace`: OpenTelemetry traces, off by default. The keys line up with harbor-helm's and
//! harbor.yml's `trace` section (`enabled`, `sample_rate`, an OTLP endpoint), so one collector
//! receives Harbor's spans and the sidecar's.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::ConfigError;

/// The path an OTLP/HTTP receiver takes traces on.
pub const OTLP_TRACES_PATH: &str = "/v1/traces";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceSettings {
    pub enabled: bool,
    /// The collector's OTLP/HTTP (protobuf) receiver: `http://otel-collector:4318` (the traces
    /// path, `/v1/traces`, is added when the URL has none) or the whole URL.
    pub otlp_endpoint: Option<Url>,
    /// The share of new traces sampled, 0 to 1; a caller's `traceparent` decides for its own.
    pub sample_rate: f64,
    /// `service.name` of the spans.
    pub service_name: String,
    /// How long one export to the collector may take.
    #[serde(with = "super::human_duration")]
    pub timeout: Duration,
}

impl Default for TraceSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            otlp_endpoint: None,
            sample_rate: 1.0,
            service_name: "referrers-sidecar".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl TraceSettings {
    /// Where spans are sent: the configured URL, with the traces path when it gives none.
    #[must_use]
    pub fn traces_url(&self) -> Option<Url> {
        let mut url = self.otlp_endpoint.clone()?;
        if matches!(url.path(), "" | "/") {
            url.set_path(OTLP_TRACES_PATH);
        }
        Some(url)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(ConfigError::invalid(
                "trace.sample_rate",
                "must be between 0 and 1",
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "trace.service_name",
                "must name the service",
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "trace.timeout",
                "must be more than 0 and at most 5m",
            ));
        }
        match &self.otlp_endpoint {
            Some(url) => super::validate::check_http_url("trace.otlp_endpoint", url),
            None if self.enabled => Err(ConfigError::invalid(
                "trace.otlp_endpoint",
                "is required when trace.enabled is true (the collector's OTLP/HTTP receiver, \
                 for example http://otel-collector:4318)",
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(url: &str) -> TraceSettings {
        TraceSettings {
            enabled: true,
            otlp_endpoint: Some(url.parse().expect("URL")),
            ..TraceSettings::default()
        }
    }

    #[test]
    fn the_traces_path_is_added_to_a_bare_endpoint_only() {
        let url = |given: &str| with_endpoint(given).traces_url().expect("URL").to_string();
        assert_eq!(
            url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            url("https://collector:4318/"),
            "https://collector:4318/v1/traces"
        );
        assert_eq!(
            url("http://gateway/otlp/v1/traces"),
            "http://gateway/otlp/v1/traces"
        );
        assert!(TraceSettings::default().traces_url().is_none());
    }

    #[test]
    fn an_endpoint_with_credentials_is_refused_masked() {
        let refused = with_endpoint("http://user:s3cret@collector:4318")
            .validate()
            .expect_err("credentials in the URL");
        let message = refused.to_string();
        assert!(message.contains("trace.otlp_endpoint"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(with_endpoint("http://collector:4318").validate().is_ok());
    }
}
