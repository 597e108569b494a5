//! Prometheus metrics (`harbor_referrers_*`), registered and initialised at start.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Metric namespace, after Harbor's `harbor_<subsystem>_<name>_<unit>` shape.
pub const NAMESPACE: &str = "harbor_referrers";

/// What became of a referrers request.
pub const OUTCOMES: &[&str] = &["served", "passthrough", "denied", "invalid", "core_error"];

/// Status classes of HTTP answers; `error` when none came.
pub const STATUS_CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

/// Kinds of upstream requests.
pub const UPSTREAM_KINDS: &[&str] = &["api", "tag", "token"];

/// What the upstream contributed to an answer (`X-Referrers-Upstream`).
pub const UPSTREAM_RESULTS: &[&str] = &["api", "tag", "none", "error", "truncated", "skipped"];

/// Failures of Harbor's REST API as the robot account sees them.
pub const HARBOR_API_ERRORS: &[&str] = &[
    "unreachable",
    "timeout",
    "unauthorized",
    "forbidden",
    "status",
    "too_large",
    "invalid",
];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// `harbor_referrers_requests_total{outcome}`: referrers requests by outcome.
    pub requests: IntCounterVec,
    /// `harbor_referrers_request_duration_seconds{outcome}`.
    pub request_duration: HistogramVec,
    /// `harbor_referrers_passthrough_requests_total{status_class}`: other requests sent to core.
    pub passthrough: IntCounterVec,
    /// `harbor_referrers_upstream_requests_total{registry,kind,status_class}`.
    pub upstream_requests: IntCounterVec,
    /// `harbor_referrers_upstream_results_total{registry,result}`: per served answer.
    pub upstream_results: IntCounterVec,
    /// `harbor_referrers_upstream_fetch_duration_seconds{registry}`: a whole upstream listing.
    pub upstream_fetch_duration: HistogramVec,
    /// `harbor_referrers_descriptors_served`: descriptors in each served page.
    pub descriptors_served: Histogram,
    /// `harbor_referrers_harbor_api_errors_total{kind}`.
    pub harbor_api_errors: IntCounterVec,
}

impl Metrics {
    /// Registers every metric, with each labelled series a dashboard or alert uses already at
    /// 0 — for the upstream series, one per registry label in `registries`.
    pub fn new(registries: &[String]) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help).namespace(NAMESPACE), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let metric = HistogramVec::new(
                HistogramOpts::new(name, help)
                    .namespace(NAMESPACE)
                    .buckets(buckets),
                labels,
            )?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };

        let metrics = Self {
            requests: counter(
                "requests_total",
                "Referrers requests by outcome.",
                &["outcome"],
            )?,
            request_duration: histogram(
                "request_duration_seconds",
                "Time to answer a referrers request, by outcome.",
                &["outcome"],
                LATENCY_BUCKETS.to_vec(),
            )?,
            passthrough: counter(
                "passthrough_requests_total",
                "Requests forwarded to Harbor core unchanged, by response status class.",
                &["status_class"],
            )?,
            upstream_requests: counter(
                "upstream_requests_total",
                "HTTP requests to upstream registries, by registry, kind and status class.",
                &["registry", "kind", "status_class"],
            )?,
            upstream_results: counter(
                "upstream_results_total",
                "What the upstream contributed to served answers, by registry.",
                &["registry", "result"],
            )?,
            upstream_fetch_duration: histogram(
                "upstream_fetch_duration_seconds",
                "Time to fetch a whole upstream referrers list, by registry.",
                &["registry"],
                LATENCY_BUCKETS.to_vec(),
            )?,
            descriptors_served: {
                let metric = Histogram::with_opts(
                    HistogramOpts::new(
                        "descriptors_served",
                        "Descriptors in each served referrers page.",
                    )
                    .namespace(NAMESPACE)
                    .buckets(vec![
                        0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0, 1000.0,
                    ]),
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            harbor_api_errors: counter(
                "harbor_api_errors_total",
                "Failed calls to Harbor's REST API with the robot account, by kind.",
                &["kind"],
            )?,
            registry,
        };

        for outcome in OUTCOMES {
            metrics.requests.with_label_values(&[outcome]);
            metrics.request_duration.with_label_values(&[outcome]);
        }
        for class in STATUS_CLASSES {
            metrics.passthrough.with_label_values(&[class]);
        }
        for kind in HARBOR_API_ERRORS {
            metrics.harbor_api_errors.with_label_values(&[kind]);
        }
        for name in registries {
            metrics.init_registry(name);
        }
        Ok(metrics)
    }

    /// Creates the zero-valued series of one upstream registry label.
    pub fn init_registry(&self, name: &str) {
        for result in UPSTREAM_RESULTS {
            self.upstream_results.with_label_values(&[name, result]);
        }
        for kind in UPSTREAM_KINDS {
            for class in STATUS_CLASSES {
                self.upstream_requests
                    .with_label_values(&[name, kind, class]);
            }
        }
        self.upstream_fetch_duration.with_label_values(&[name]);
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
