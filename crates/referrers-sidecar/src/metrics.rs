//! Prometheus metrics (`harbor_referrers_*`), registered and initialised at start.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Metric namespace, after Harbor's `harbor_<subsystem>_<name>_<unit>` shape.
pub const NAMESPACE: &str = "harbor_referrers";

/// What became of a referrers request.
pub const OUTCOMES: &[&str] = &["served", "passthrough", "denied", "invalid", "core_error"];

/// Status classes for forwarded requests.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

pub struct Metrics {
    registry: Registry,
    /// `harbor_referrers_requests_total{outcome}`: referrers requests by outcome.
    pub requests: IntCounterVec,
    /// `harbor_referrers_request_duration_seconds{outcome}`.
    pub request_duration: HistogramVec,
    /// `harbor_referrers_passthrough_requests_total{status_class}`: other requests sent to core.
    pub passthrough: IntCounterVec,
}

impl Metrics {
    /// Registers every metric, with each labelled series a dashboard or alert uses already at 0.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let requests = IntCounterVec::new(
            Opts::new("requests_total", "Referrers requests by outcome.").namespace(NAMESPACE),
            &["outcome"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time to answer a referrers request, by outcome.",
            )
            .namespace(NAMESPACE)
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["outcome"],
        )?;
        let passthrough = IntCounterVec::new(
            Opts::new(
                "passthrough_requests_total",
                "Requests forwarded to Harbor core unchanged, by response status class.",
            )
            .namespace(NAMESPACE),
            &["status_class"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(passthrough.clone()))?;

        for outcome in OUTCOMES {
            requests.with_label_values(&[outcome]);
            request_duration.with_label_values(&[outcome]);
        }
        for class in STATUS_CLASSES {
            passthrough.with_label_values(&[class]);
        }
        Ok(Self {
            registry,
            requests,
            request_duration,
            passthrough,
        })
    }

    /// Counts one finished referrers request.
    pub fn observe_request(&self, outcome: &str, seconds: f64) {
        self.requests.with_label_values(&[outcome]).inc();
        self.request_duration
            .with_label_values(&[outcome])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    #[must_use]
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let families = self.registry.gather();
        if let Err(e) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The label for an HTTP status.
#[must_use]
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
