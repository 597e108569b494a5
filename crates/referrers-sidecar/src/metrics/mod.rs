//! Prometheus metrics (`harbor_referrers_*`), registered and initialised at start (this file),
//! and the typed methods call sites count with, each label from an `outcome` enum (`count`).

mod count;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::outcome::{
    CacheResult, LockResult, OperatorEndpoint, OperatorResult, PullResult, PurgeResult,
    RefreshOutcome, RequestOutcome, StatusClass, Switch, Tier, UpstreamKind, UpstreamResult,
    WarmResult, WebhookEvent,
};

/// Metric namespace, after Harbor's `harbor_<subsystem>_<name>_<unit>` shape.
pub const NAMESPACE: &str = "harbor_referrers";

/// Failures of Harbor's REST API as the robot account sees them
/// ([`harbor_client::HarborError::kind`]).
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
    /// `harbor_referrers_upstream_rate_limited_total{registry}`: rate limits (`429`, or `503`
    /// with `Retry-After`) from a registry, each starting or lengthening its rest.
    pub upstream_rate_limited: IntCounterVec,
    /// `harbor_referrers_upstream_fetch_duration_seconds{registry}`: a whole upstream listing.
    pub upstream_fetch_duration: HistogramVec,
    /// `harbor_referrers_descriptors_served`: descriptors in each served page.
    pub descriptors_served: Histogram,
    /// `harbor_referrers_harbor_api_errors_total{kind}`.
    pub harbor_api_errors: IntCounterVec,
    /// `harbor_referrers_cache_lookups_total{tier,result}`.
    pub cache_lookups: IntCounterVec,
    /// `harbor_referrers_cache_stores_total{tier}`.
    pub cache_stores: IntCounterVec,
    /// `harbor_referrers_cache_evictions_total`: in-process entries pushed out by the size bound.
    pub cache_evictions: IntCounter,
    /// `harbor_referrers_cache_oversize_total`: lists served but not stored (`max_entry_bytes`).
    pub cache_oversize: IntCounter,
    /// `harbor_referrers_cache_refreshes_total{outcome}`: background refreshes of stale entries.
    pub cache_refreshes: IntCounterVec,
    /// `harbor_referrers_cache_coalesced_waits_total`: requests that waited for another's fetch.
    pub cache_coalesced_waits: IntCounter,
    /// `harbor_referrers_core_calls_coalesced_total`: referrers requests that shared another
    /// identical request's call to core instead of making their own.
    pub core_calls_coalesced: IntCounter,
    /// `harbor_referrers_cache_locks_total{result}`: cross-replica fetch locks won or lost.
    pub cache_locks: IntCounterVec,
    /// `harbor_referrers_cache_memory_entries` and `_bytes`: the in-process tier's size.
    pub cache_memory_entries: IntGauge,
    pub cache_memory_bytes: IntGauge,
    /// `harbor_referrers_redis_errors_total`: failed or timed-out Redis calls.
    pub redis_errors: IntCounter,
    /// `harbor_referrers_webhook_events_total{type,result}`: Harbor's webhook events.
    pub webhook_events: IntCounterVec,
    /// `harbor_referrers_webhook_queue_depth`: pulled artifacts waiting for their warm fetch.
    pub webhook_queue_depth: IntGauge,
    /// `harbor_referrers_webhook_warms_total{result}`: warm fetches of pulled artifacts.
    pub webhook_warms: IntCounterVec,
    /// `harbor_referrers_operator_warms_total{result}`: artifacts warmed on an operator's word.
    pub operator_warms: IntCounterVec,
    /// `harbor_referrers_breaker_state{target}`: 0 closed, 1 open, 2 half-open; per registry
    /// and for `redis`.
    pub breaker_state: IntGaugeVec,
    /// `harbor_referrers_served_projects{switch}`: projects served, among those this replica
    /// read from Harbor within `harbor.project_info_ttl`, by the switch that serves them.
    pub served_projects: IntGaugeVec,
    /// `harbor_referrers_operator_requests_total{endpoint,result}`.
    pub operator_requests: IntCounterVec,
    /// `harbor_referrers_cache_purges_total{result}`: purges asked through the operator API.
    pub cache_purges: IntCounterVec,
    /// `harbor_referrers_cache_purges_received_total`: purges other replicas published, applied
    /// to this replica's in-process tier.
    pub cache_purges_received: IntCounter,
    /// `harbor_referrers_cache_purge_subscribed`: 1 while this replica listens for other
    /// replicas' purges (Redis tier only).
    pub cache_purge_subscribed: IntGauge,
    /// `harbor_referrers_store_pulls_total{result}`: upstream referrers offered for storing in
    /// Harbor (`projects.store_in_harbor`), by result: pulled through core, or why not.
    pub store_pulls: IntCounterVec,
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
        let plain_counter = |name: &str, help: &str| {
            let metric = IntCounter::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
            registry.register(Box::new(metric.clone()))?;
            Ok::<_, prometheus::Error>(metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))?;
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
            upstream_rate_limited: counter(
                "upstream_rate_limited_total",
                "Rate limits (429, or 503 with Retry-After) from upstream registries, each starting a rest without calls, by registry.",
                &["registry"],
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
            cache_lookups: counter(
                "cache_lookups_total",
                "Cache lookups by tier and result.",
                &["tier", "result"],
            )?,
            cache_stores: counter(
                "cache_stores_total",
                "Upstream lists stored, by tier.",
                &["tier"],
            )?,
            cache_evictions: plain_counter(
                "cache_evictions_total",
                "In-process entries evicted by the size bound.",
            )?,
            cache_oversize: plain_counter(
                "cache_oversize_total",
                "Upstream lists over cache.max_entry_bytes: served, not stored.",
            )?,
            cache_refreshes: counter(
                "cache_refreshes_total",
                "Background refreshes of stale entries, by outcome.",
                &["outcome"],
            )?,
            cache_coalesced_waits: plain_counter(
                "cache_coalesced_waits_total",
                "Requests that waited for another request's upstream fetch of the same list.",
            )?,
            core_calls_coalesced: plain_counter(
                "core_calls_coalesced_total",
                "Referrers requests that shared an identical request's call to Harbor core in flight instead of making their own.",
            )?,
            cache_locks: counter(
                "cache_locks_total",
                "Cross-replica fetch locks, won or lost.",
                &["result"],
            )?,
            cache_memory_entries: gauge("cache_memory_entries", "Entries in the in-process tier.")?,
            cache_memory_bytes: gauge(
                "cache_memory_bytes",
                "Weight (decoded size) of the in-process tier's entries.",
            )?,
            redis_errors: plain_counter("redis_errors_total", "Failed or timed-out Redis calls.")?,
            webhook_events: counter(
                "webhook_events_total",
                "Harbor webhook events received, by type (pull_artifact, other, unknown) and result.",
                &["type", "result"],
            )?,
            webhook_queue_depth: gauge(
                "webhook_queue_depth",
                "Pulled artifacts waiting for their warm fetch.",
            )?,
            webhook_warms: counter(
                "webhook_warms_total",
                "Background fetches of pulled artifacts' upstream referrers, by result.",
                &["result"],
            )?,
            operator_warms: counter(
                "operator_warms_total",
                "Artifacts warmed through the operator API (referrers-sidecar warm), by result.",
                &["result"],
            )?,
            breaker_state: {
                let metric = IntGaugeVec::new(
                    Opts::new(
                        "breaker_state",
                        "Breaker state per upstream registry and for redis: 0 closed, 1 open, 2 half-open.",
                    )
                    .namespace(NAMESPACE),
                    &["target"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            served_projects: {
                let metric = IntGaugeVec::new(
                    Opts::new(
                        "served_projects",
                        "Projects served, among those read from Harbor within harbor.project_info_ttl, by switch (config or label).",
                    )
                    .namespace(NAMESPACE),
                    &["switch"],
                )?;
                registry.register(Box::new(metric.clone()))?;
                metric
            },
            operator_requests: counter(
                "operator_requests_total",
                "Operator API calls, by endpoint and result.",
                &["endpoint", "result"],
            )?,
            cache_purges: counter(
                "cache_purges_total",
                "Cache purges asked through the operator API, by result.",
                &["result"],
            )?,
            cache_purges_received: plain_counter(
                "cache_purges_received_total",
                "Purges published by other replicas, applied to this replica's in-process tier.",
            )?,
            cache_purge_subscribed: gauge(
                "cache_purge_subscribed",
                "1 while this replica listens for other replicas' purges on Redis.",
            )?,
            store_pulls: counter(
                "store_pulls_total",
                "Upstream referrers offered for storing in Harbor, by result: pulled through Harbor core, or why not.",
                &["result"],
            )?,
            registry,
        };
        for switch in Switch::ALL {
            metrics
                .served_projects
                .with_label_values(&[switch.as_str()]);
        }
        for endpoint in OperatorEndpoint::ALL {
            for result in OperatorResult::ALL {
                metrics
                    .operator_requests
                    .with_label_values(&[endpoint.as_str(), result.as_str()]);
            }
        }
        for result in PurgeResult::ALL {
            metrics.cache_purges.with_label_values(&[result.as_str()]);
        }
        for tier in Tier::ALL {
            for result in CacheResult::ALL {
                metrics
                    .cache_lookups
                    .with_label_values(&[tier.as_str(), result.as_str()]);
            }
            metrics.cache_stores.with_label_values(&[tier.as_str()]);
        }
        for outcome in RefreshOutcome::ALL {
            metrics
                .cache_refreshes
                .with_label_values(&[outcome.as_str()]);
        }
        for result in LockResult::ALL {
            metrics.cache_locks.with_label_values(&[result.as_str()]);
        }
        for event in WebhookEvent::ALL {
            metrics.webhook_events.with_label_values(&event.labels());
        }
        for result in WarmResult::ALL {
            metrics.webhook_warms.with_label_values(&[result.as_str()]);
            metrics.operator_warms.with_label_values(&[result.as_str()]);
        }
        for outcome in RequestOutcome::ALL {
            metrics.requests.with_label_values(&[outcome.as_str()]);
            metrics
                .request_duration
                .with_label_values(&[outcome.as_str()]);
        }
        for class in StatusClass::ALL {
            metrics.passthrough.with_label_values(&[class.as_str()]);
        }
        for kind in HARBOR_API_ERRORS {
            metrics.harbor_api_errors.with_label_values(&[kind]);
        }
        for result in PullResult::ALL {
            metrics.store_pulls.with_label_values(&[result.as_str()]);
        }
        for name in registries {
            metrics.init_registry(name);
        }
        Ok(metrics)
    }

    /// Creates the zero-valued series of one upstream registry label.
    pub fn init_registry(&self, name: &str) {
        for result in UpstreamResult::ALL {
            self.upstream_results
                .with_label_values(&[name, result.as_str()]);
        }
        for kind in UpstreamKind::ALL {
            for class in StatusClass::ALL {
                self.upstream_requests
                    .with_label_values(&[name, kind.as_str(), class.as_str()]);
            }
        }
        self.upstream_fetch_duration.with_label_values(&[name]);
        self.upstream_rate_limited.with_label_values(&[name]);
        self.breaker_state.with_label_values(&[name]);
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
