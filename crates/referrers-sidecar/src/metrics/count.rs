//! The typed methods every call site counts with: each label comes from an enum of
//! `crate::outcome` (or is a registry's label), never a string written at the call site.

use harbor_client::HarborError;

use super::Metrics;
use crate::outcome::{
    CacheResult, LockResult, OperatorEndpoint, OperatorResult, PullResult, PurgeResult,
    RefreshOutcome, RequestOutcome, StatusClass, Switch, Tier, UpstreamKind, UpstreamResult,
    WarmResult, WebhookEvent,
};

impl Metrics {
    /// Counts one finished referrers request.
    pub fn observe_request(&self, outcome: RequestOutcome, seconds: f64) {
        self.requests.with_label_values(&[outcome.as_str()]).inc();
        self.request_duration
            .with_label_values(&[outcome.as_str()])
            .observe(seconds);
    }

    /// Counts one referrers request that shared an identical request's call to core.
    pub fn count_core_call_coalesced(&self) {
        self.core_calls_coalesced.inc();
    }

    /// Counts one request passed through to core, by its answer's status class.
    pub fn count_passthrough(&self, class: StatusClass) {
        self.passthrough.with_label_values(&[class.as_str()]).inc();
    }

    /// Counts one HTTP request to registry `registry`.
    pub fn count_upstream_request(&self, registry: &str, kind: UpstreamKind, class: StatusClass) {
        self.upstream_requests
            .with_label_values(&[registry, kind.as_str(), class.as_str()])
            .inc();
    }

    /// Counts what registry `registry` contributed to a served answer.
    pub fn count_upstream_result(&self, registry: &str, result: UpstreamResult) {
        self.upstream_results
            .with_label_values(&[registry, result.as_str()])
            .inc();
    }

    /// Counts a rate limit from registry `registry`.
    pub fn count_rate_limited(&self, registry: &str) {
        self.upstream_rate_limited
            .with_label_values(&[registry])
            .inc();
    }

    /// Observes one whole upstream listing from registry `registry`.
    pub fn observe_upstream_fetch(&self, registry: &str, seconds: f64) {
        self.upstream_fetch_duration
            .with_label_values(&[registry])
            .observe(seconds);
    }

    /// Sets the breaker gauge of `target` (a registry's label, or `redis`): 0 closed, 1 open,
    /// 2 half-open.
    pub fn set_breaker_state(&self, target: &str, gauge: i64) {
        self.breaker_state.with_label_values(&[target]).set(gauge);
    }

    /// Counts a failed call to Harbor's REST API with the robot account.
    pub fn count_harbor_api_error(&self, error: &HarborError) {
        self.harbor_api_errors
            .with_label_values(&[error.kind()])
            .inc();
    }

    /// Counts one lookup in `tier`.
    pub fn count_cache_lookup(&self, tier: Tier, result: CacheResult) {
        self.cache_lookups
            .with_label_values(&[tier.as_str(), result.as_str()])
            .inc();
    }

    /// Counts one list stored in `tier`.
    pub fn count_cache_store(&self, tier: Tier) {
        self.cache_stores.with_label_values(&[tier.as_str()]).inc();
    }

    /// Counts one background refresh of a stale entry.
    pub fn count_refresh(&self, outcome: RefreshOutcome) {
        self.cache_refreshes
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Counts one cross-replica lock attempt.
    pub fn count_lock(&self, result: LockResult) {
        self.cache_locks.with_label_values(&[result.as_str()]).inc();
    }

    /// Counts one webhook event.
    pub fn count_webhook_event(&self, event: WebhookEvent) {
        self.webhook_events.with_label_values(&event.labels()).inc();
    }

    /// Counts one warm fetch of a pulled artifact.
    pub fn count_warm(&self, result: WarmResult) {
        self.webhook_warms
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Counts one artifact warmed through the operator API.
    pub fn count_operator_warm(&self, result: WarmResult) {
        self.operator_warms
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Sets how many projects this replica knows to be served by `switch`.
    pub fn set_served_projects(&self, switch: Switch, count: i64) {
        self.served_projects
            .with_label_values(&[switch.as_str()])
            .set(count);
    }

    /// Counts one operator API call.
    pub fn count_operator_request(&self, endpoint: OperatorEndpoint, result: OperatorResult) {
        self.operator_requests
            .with_label_values(&[endpoint.as_str(), result.as_str()])
            .inc();
    }

    /// Counts one purge asked through the operator API.
    pub fn count_purge(&self, result: PurgeResult) {
        self.cache_purges
            .with_label_values(&[result.as_str()])
            .inc();
    }

    /// Counts one referrer offered for storing in Harbor.
    pub fn count_store_pull(&self, result: PullResult) {
        self.count_store_pulls(result, 1);
    }

    /// Counts `count` referrers offered for storing in Harbor, all with `result` (the
    /// referrers of one list refused whole).
    pub fn count_store_pulls(&self, result: PullResult, count: u64) {
        self.store_pulls
            .with_label_values(&[result.as_str()])
            .inc_by(count);
    }
}
