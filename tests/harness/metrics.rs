//! The sidecar's Prometheus series as tests name them: every metric's name once, here, and
//! label values typed with the service's own outcome enums (`referrers_sidecar::outcome`), so a
//! label the service does not have fails to compile.
//!
//! `sidecar.metric(&metrics::cache_lookups(Tier::Memory, CacheResult::Hit))` reads
//! `harbor_referrers_cache_lookups_total{result="hit",tier="memory"}`.

use std::fmt;
use std::ops::Deref;

pub use referrers_sidecar::outcome::{
    CacheResult, LockResult as Lock, OperatorEndpoint as Endpoint, OperatorResult, PullResult,
    PurgeResult as Purge, RefreshOutcome as Refresh, RequestOutcome as Outcome, StatusClass,
    Switch, Tier, UpstreamKind, UpstreamResult, WarmResult, WebhookEvent,
};

/// `harbor_referrers_requests_total{outcome}`.
pub const REQUESTS: &str = "harbor_referrers_requests_total";
/// `harbor_referrers_request_duration_seconds{outcome}` (a histogram: `_bucket`, `_sum`,
/// `_count`).
pub const REQUEST_DURATION: &str = "harbor_referrers_request_duration_seconds";
/// `harbor_referrers_passthrough_requests_total{status_class}`.
pub const PASSTHROUGH: &str = "harbor_referrers_passthrough_requests_total";
/// `harbor_referrers_upstream_requests_total{registry,kind,status_class}`.
pub const UPSTREAM_REQUESTS: &str = "harbor_referrers_upstream_requests_total";
/// `harbor_referrers_upstream_results_total{registry,result}`.
pub const UPSTREAM_RESULTS: &str = "harbor_referrers_upstream_results_total";
/// `harbor_referrers_upstream_fetch_duration_seconds{registry}` (a histogram).
pub const UPSTREAM_FETCH_DURATION: &str = "harbor_referrers_upstream_fetch_duration_seconds";
/// `harbor_referrers_harbor_api_errors_total{kind}`.
pub const HARBOR_API_ERRORS: &str = "harbor_referrers_harbor_api_errors_total";
/// `harbor_referrers_cache_lookups_total{tier,result}`.
pub const CACHE_LOOKUPS: &str = "harbor_referrers_cache_lookups_total";
/// `harbor_referrers_cache_stores_total{tier}`.
pub const CACHE_STORES: &str = "harbor_referrers_cache_stores_total";
/// `harbor_referrers_cache_oversize_total`.
pub const CACHE_OVERSIZE: &str = "harbor_referrers_cache_oversize_total";
/// `harbor_referrers_cache_refreshes_total{outcome}`.
pub const CACHE_REFRESHES: &str = "harbor_referrers_cache_refreshes_total";
/// `harbor_referrers_cache_locks_total{result}`.
pub const CACHE_LOCKS: &str = "harbor_referrers_cache_locks_total";
/// `harbor_referrers_core_calls_coalesced_total`.
pub const CORE_CALLS_COALESCED: &str = "harbor_referrers_core_calls_coalesced_total";
/// `harbor_referrers_cache_purges_total{result}`.
pub const CACHE_PURGES: &str = "harbor_referrers_cache_purges_total";
/// `harbor_referrers_cache_purges_received_total`.
pub const CACHE_PURGES_RECEIVED: &str = "harbor_referrers_cache_purges_received_total";
/// `harbor_referrers_cache_purge_subscribed`.
pub const CACHE_PURGE_SUBSCRIBED: &str = "harbor_referrers_cache_purge_subscribed";
/// `harbor_referrers_redis_errors_total`.
pub const REDIS_ERRORS: &str = "harbor_referrers_redis_errors_total";
/// `harbor_referrers_webhook_events_total{type,result}`.
pub const WEBHOOK_EVENTS: &str = "harbor_referrers_webhook_events_total";
/// `harbor_referrers_webhook_queue_depth`.
pub const WEBHOOK_QUEUE_DEPTH: &str = "harbor_referrers_webhook_queue_depth";
/// `harbor_referrers_webhook_warms_total{result}`.
pub const WEBHOOK_WARMS: &str = "harbor_referrers_webhook_warms_total";
/// `harbor_referrers_operator_warms_total{result}`.
pub const OPERATOR_WARMS: &str = "harbor_referrers_operator_warms_total";
/// `harbor_referrers_breaker_state{target}`.
pub const BREAKER_STATE: &str = "harbor_referrers_breaker_state";
/// `harbor_referrers_served_projects{switch}`.
pub const SERVED_PROJECTS: &str = "harbor_referrers_served_projects";
/// `harbor_referrers_operator_requests_total{endpoint,result}`.
pub const OPERATOR_REQUESTS: &str = "harbor_referrers_operator_requests_total";
/// `harbor_referrers_store_pulls_total{result}`.
pub const STORE_PULLS: &str = "harbor_referrers_store_pulls_total";

/// One series as the exposition writes it: `name{label="value",…}`, labels sorted by name.
/// Reads as a `&str` wherever a series is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series(String);

impl Series {
    /// `name` with `labels`, in any order.
    #[must_use]
    pub fn new(name: &str, labels: &[(&str, &str)]) -> Self {
        if labels.is_empty() {
            return Self(name.to_owned());
        }
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        let labels: Vec<String> = labels
            .iter()
            .map(|(key, value)| format!("{key}=\"{value}\""))
            .collect();
        Self(format!("{name}{{{}}}", labels.join(",")))
    }
}

impl Deref for Series {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Series {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A label's values as an enum with `ALL` and `as_str`.
macro_rules! label_values {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value),+
                }
            }
        }
    };
}

label_values! {
    /// A failure of Harbor's REST API (`kind`).
    HarborApiError {
        Unreachable => "unreachable",
        Timeout => "timeout",
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        Status => "status",
        TooLarge => "too_large",
        Invalid => "invalid",
    }
}

/// What a breaker guards (`target`): an upstream registry, by its label, or Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Registry(&'a str),
    Redis,
}

impl Target<'_> {
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Registry(name) => name,
            Self::Redis => "redis",
        }
    }
}

/// `harbor_referrers_requests_total{outcome}`.
#[must_use]
pub fn requests(outcome: Outcome) -> Series {
    Series::new(REQUESTS, &[("outcome", outcome.as_str())])
}

/// `harbor_referrers_passthrough_requests_total{status_class}`.
#[must_use]
pub fn passthrough(class: StatusClass) -> Series {
    Series::new(PASSTHROUGH, &[("status_class", class.as_str())])
}

/// `harbor_referrers_upstream_requests_total{registry,kind,status_class}`.
#[must_use]
pub fn upstream_requests(registry: &str, kind: UpstreamKind, class: StatusClass) -> Series {
    Series::new(
        UPSTREAM_REQUESTS,
        &[
            ("registry", registry),
            ("kind", kind.as_str()),
            ("status_class", class.as_str()),
        ],
    )
}

/// `harbor_referrers_upstream_results_total{registry,result}`.
#[must_use]
pub fn upstream_results(registry: &str, result: UpstreamResult) -> Series {
    Series::new(
        UPSTREAM_RESULTS,
        &[("registry", registry), ("result", result.as_str())],
    )
}

/// `harbor_referrers_upstream_fetch_duration_seconds_count{registry}`: upstream listings
/// fetched.
#[must_use]
pub fn upstream_fetches(registry: &str) -> Series {
    Series::new(
        &format!("{UPSTREAM_FETCH_DURATION}_count"),
        &[("registry", registry)],
    )
}

/// `harbor_referrers_harbor_api_errors_total{kind}`.
#[must_use]
pub fn harbor_api_errors(kind: HarborApiError) -> Series {
    Series::new(HARBOR_API_ERRORS, &[("kind", kind.as_str())])
}

/// `harbor_referrers_cache_lookups_total{tier,result}`.
#[must_use]
pub fn cache_lookups(tier: Tier, result: CacheResult) -> Series {
    Series::new(
        CACHE_LOOKUPS,
        &[("tier", tier.as_str()), ("result", result.as_str())],
    )
}

/// `harbor_referrers_cache_stores_total{tier}`.
#[must_use]
pub fn cache_stores(tier: Tier) -> Series {
    Series::new(CACHE_STORES, &[("tier", tier.as_str())])
}

/// `harbor_referrers_cache_oversize_total`.
#[must_use]
pub fn cache_oversize() -> Series {
    Series::new(CACHE_OVERSIZE, &[])
}

/// `harbor_referrers_cache_refreshes_total{outcome}`.
#[must_use]
pub fn cache_refreshes(outcome: Refresh) -> Series {
    Series::new(CACHE_REFRESHES, &[("outcome", outcome.as_str())])
}

/// `harbor_referrers_cache_locks_total{result}`.
#[must_use]
pub fn cache_locks(result: Lock) -> Series {
    Series::new(CACHE_LOCKS, &[("result", result.as_str())])
}

/// `harbor_referrers_cache_purges_total{result}`.
#[must_use]
pub fn cache_purges(result: Purge) -> Series {
    Series::new(CACHE_PURGES, &[("result", result.as_str())])
}

/// `harbor_referrers_cache_purges_received_total`.
#[must_use]
pub fn cache_purges_received() -> Series {
    Series::new(CACHE_PURGES_RECEIVED, &[])
}

/// `harbor_referrers_cache_purge_subscribed`.
#[must_use]
pub fn cache_purge_subscribed() -> Series {
    Series::new(CACHE_PURGE_SUBSCRIBED, &[])
}

/// `harbor_referrers_redis_errors_total`.
#[must_use]
pub fn redis_errors() -> Series {
    Series::new(REDIS_ERRORS, &[])
}

/// `harbor_referrers_webhook_events_total{type,result}`.
#[must_use]
pub fn webhook_events(event: WebhookEvent) -> Series {
    let [event_type, result] = event.labels();
    Series::new(WEBHOOK_EVENTS, &[("type", event_type), ("result", result)])
}

/// `harbor_referrers_webhook_queue_depth`.
#[must_use]
pub fn webhook_queue_depth() -> Series {
    Series::new(WEBHOOK_QUEUE_DEPTH, &[])
}

/// `harbor_referrers_webhook_warms_total{result}`.
#[must_use]
pub fn webhook_warms(result: WarmResult) -> Series {
    Series::new(WEBHOOK_WARMS, &[("result", result.as_str())])
}

/// `harbor_referrers_operator_warms_total{result}`.
#[must_use]
pub fn operator_warms(result: WarmResult) -> Series {
    Series::new(OPERATOR_WARMS, &[("result", result.as_str())])
}

/// `harbor_referrers_breaker_state{target}`: 0 closed, 1 open, 2 half-open.
#[must_use]
pub fn breaker_state(target: Target<'_>) -> Series {
    Series::new(BREAKER_STATE, &[("target", target.as_str())])
}

/// `harbor_referrers_served_projects{switch}`.
#[must_use]
pub fn served_projects(switch: Switch) -> Series {
    Series::new(SERVED_PROJECTS, &[("switch", switch.as_str())])
}

/// `harbor_referrers_operator_requests_total{endpoint,result}`.
#[must_use]
pub fn operator_requests(endpoint: Endpoint, result: OperatorResult) -> Series {
    Series::new(
        OPERATOR_REQUESTS,
        &[("endpoint", endpoint.as_str()), ("result", result.as_str())],
    )
}

/// `harbor_referrers_store_pulls_total{result}`.
#[must_use]
pub fn store_pulls(result: PullResult) -> Series {
    Series::new(STORE_PULLS, &[("result", result.as_str())])
}

/// The sum of every series of the family `name` (`name` and `name{…}`) in an exposition.
#[must_use]
pub fn family_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use referrers_sidecar::metrics as service;

    use super::*;

    #[test]
    fn labels_are_sorted_by_name_as_the_exposition_writes_them() {
        assert_eq!(
            &*cache_lookups(Tier::Memory, CacheResult::Hit),
            "harbor_referrers_cache_lookups_total{result=\"hit\",tier=\"memory\"}"
        );
        assert_eq!(
            &*webhook_events(WebhookEvent::PullQueued),
            "harbor_referrers_webhook_events_total{result=\"queued\",type=\"pull_artifact\"}"
        );
        assert_eq!(&*redis_errors(), "harbor_referrers_redis_errors_total");
    }

    #[test]
    fn every_name_is_in_the_services_namespace() {
        for name in [
            REQUESTS,
            REQUEST_DURATION,
            PASSTHROUGH,
            UPSTREAM_REQUESTS,
            UPSTREAM_RESULTS,
            UPSTREAM_FETCH_DURATION,
            HARBOR_API_ERRORS,
            CACHE_LOOKUPS,
            CACHE_STORES,
            CACHE_OVERSIZE,
            CACHE_REFRESHES,
            CACHE_LOCKS,
            CACHE_PURGES,
            CACHE_PURGES_RECEIVED,
            CACHE_PURGE_SUBSCRIBED,
            REDIS_ERRORS,
            WEBHOOK_EVENTS,
            WEBHOOK_QUEUE_DEPTH,
            WEBHOOK_WARMS,
            BREAKER_STATE,
            SERVED_PROJECTS,
            OPERATOR_REQUESTS,
            STORE_PULLS,
        ] {
            assert!(
                name.starts_with(&format!("{}_", service::NAMESPACE)),
                "{name}"
            );
        }
    }

    /// Every kind of Harbor API error a test can name is one the service registers.
    #[test]
    fn harbor_api_errors_are_the_services() {
        for kind in HarborApiError::ALL {
            assert!(
                service::HARBOR_API_ERRORS.contains(&kind.as_str()),
                "{kind:?}"
            );
        }
    }
}
