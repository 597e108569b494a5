//! The upstream fetch: one registry's referrers listing, or one referrer's manifest, behind that
//! registry's breaker and rate-limit rest, timed, counted and logged.

mod state;
#[cfg(test)]
mod tests;

use state::Heard;
pub use state::{RegistryState, Trouble};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use oci_referrers::Digest;
use registry_client::{
    RegistryClient, RequestKind, RequestObserver, UpstreamError, UpstreamReferrers,
};

use super::rest::Rests;
use super::target::UpstreamTarget;
use crate::breaker::{Breaker, Change, Verdict};
use crate::clock::Clock;
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::outcome::{StatusClass, UpstreamKind};
use crate::telemetry;

/// What one upstream fetch gave.
#[derive(Debug)]
pub enum Fetch {
    /// The registry's list (perhaps cut short by a cap: see `truncated`).
    Listed(UpstreamReferrers),
    /// The registry did not answer usably; logged here.
    Failed,
    /// A page was over `upstream.max_page_bytes` before any could be read.
    TooLarge,
    /// The upstream memory budget could not spare a page; nothing was kept.
    OverBudget,
    /// The registry's breaker is open: no call was made.
    Skipped,
    /// The registry rate-limited us, now or earlier: it rests, and no further call is made
    /// until its rest ends.
    RateLimited,
}

/// What one read of a referrer's manifest gave.
#[derive(Debug)]
pub enum ManifestRead {
    /// The manifest's bytes, at most the bound asked for (whether they are the manifest asked
    /// for is the reader's to check).
    Read(Vec<u8>),
    /// The registry did not answer usably, or has no such manifest; logged here.
    Failed,
    /// The manifest is over the bound: nothing was kept.
    TooLarge,
    /// The registry's breaker is open: no call was made.
    Skipped,
    /// The registry rate-limited us, now or earlier: it rests.
    RateLimited,
}

/// What a call behind a registry's rest and breaker gave.
enum Guarded<T> {
    Answered(T),
    /// Its breaker is open: no call was made.
    BreakerOpen,
    /// It rests after a rate limit, or this call's rate limit started a rest.
    RateLimited,
    /// The call failed; logged.
    Failed(UpstreamError),
}

/// Whether a registry may be called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Its breaker is open.
    BreakerOpen,
    /// It rests after a rate limit.
    Resting,
}

/// Where the cache gets upstream lists from.
pub trait Upstream: Send + Sync {
    /// Whether a fetch from `registry` would be let through now. Takes no probe: the cache
    /// asks before taking the cross-replica lock, so an open breaker or a rest costs Redis
    /// nothing.
    fn admits(&self, registry: &str) -> Admission;

    /// The referrers of `digest` in `target`; `previous` is the list cached before, which lets
    /// a Docker Hub fallback tag that has not changed be confirmed without a `GET`.
    fn fetch<'a>(
        &'a self,
        target: &'a UpstreamTarget,
        digest: &'a Digest,
        previous: Option<UpstreamReferrers>,
    ) -> BoxFuture<'a, Fetch>;
}

/// Where referrers' manifests are read before Harbor is asked to store them: the same
/// registries, behind the same breakers and rests, as the lists.
pub trait Manifests: Upstream {
    /// The manifest `digest` in `target`, read only when it is at most `max_bytes`. On Docker
    /// Hub this is a pull.
    fn manifest<'a>(
        &'a self,
        target: &'a UpstreamTarget,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> BoxFuture<'a, ManifestRead>;
}

/// The registry client behind one breaker and one rate-limit rest per registry (by its label).
pub struct UpstreamFetcher {
    client: RegistryClient,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    rests: Rests,
    /// Per registry label, the trouble its last call found (one entry per registry, as the
    /// breakers).
    troubles: Mutex<HashMap<String, Trouble>>,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl UpstreamFetcher {
    #[must_use]
    pub fn new(
        client: RegistryClient,
        settings: &UpstreamSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            breakers: Mutex::new(HashMap::new()),
            rests: Rests::default(),
            troubles: Mutex::new(HashMap::new()),
            breaker_failures: settings.breaker_failures,
            breaker_cooldown: settings.breaker_cooldown,
            clock,
            metrics,
        }
    }

    async fn list(
        &self,
        target: &UpstreamTarget,
        digest: &Digest,
        previous: Option<UpstreamReferrers>,
    ) -> Fetch {
        let name = target.registry.name.as_str();
        let listing = async {
            let started = Instant::now();
            let result = self
                .client
                .list_referrers(
                    &target.registry,
                    &target.repository,
                    digest,
                    previous.as_ref(),
                )
                .await;
            self.metrics
                .observe_upstream_fetch(name, started.elapsed().as_secs_f64());
            result
        };
        match self.guarded(target, "upstream referrers", listing).await {
            Guarded::Answered(list) => Fetch::Listed(list),
            Guarded::BreakerOpen => Fetch::Skipped,
            Guarded::RateLimited => Fetch::RateLimited,
            Guarded::Failed(UpstreamError::Limit { .. }) => Fetch::TooLarge,
            Guarded::Failed(UpstreamError::OverBudget(_)) => Fetch::OverBudget,
            Guarded::Failed(_) => Fetch::Failed,
        }
    }

    /// `call` to the registry of `target`, unless it rests or its breaker is open; what it
    /// says of the registry is heard, a rate limit starts a rest, a failure is logged as
    /// `what` unavailable.
    async fn guarded<T>(
        &self,
        target: &UpstreamTarget,
        what: &'static str,
        call: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Guarded<T> {
        let name = target.registry.name.as_str();
        if self.rests.is_resting(name, self.clock.instant()) {
            return Guarded::RateLimited;
        }
        let breaker = self.breaker(name);
        let Some(called) = breaker
            .call(
                || self.clock.instant(),
                |state| self.metrics.set_breaker_state(name, state.gauge()),
                call,
                |result| match result {
                    Ok(_) => Verdict::Healthy,
                    // It answered, and asked for a rest: no verdict on its health.
                    Err(UpstreamError::RateLimited { .. }) => Verdict::Inconclusive,
                    Err(error) if error.counts_against_breaker() => Verdict::Failed,
                    Err(_) => Verdict::Healthy,
                },
            )
            .await
        else {
            return Guarded::BreakerOpen;
        };
        self.hear(
            name,
            match &called.value {
                Ok(_) => Heard::Answered,
                Err(error) => Heard::of(error),
            },
        );
        match called.value {
            Ok(value) => Guarded::Answered(value),
            Err(UpstreamError::RateLimited { retry_after }) => {
                let rest = self.rests.start(name, self.clock.instant(), retry_after);
                self.metrics.count_rate_limited(name);
                tracing::warn!(
                    registry = name,
                    repository = %target.repository,
                    call = what,
                    ?retry_after,
                    ?rest,
                    "upstream rate limit: no calls to this registry until the rest ends; serving cached or local referrers only"
                );
                Guarded::RateLimited
            }
            Err(error) => {
                tracing::warn!(
                    registry = name,
                    repository = %target.repository,
                    step = error.step(),
                    error = %error,
                    "{what} unavailable"
                );
                if called.change == Some(Change::Opened) {
                    tracing::warn!(
                        registry = name,
                        cooldown = ?self.breaker_cooldown,
                        "upstream breaker open: serving cached or local referrers only"
                    );
                }
                Guarded::Failed(error)
            }
        }
    }

    fn breaker(&self, name: &str) -> Arc<Breaker> {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(breakers.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Breaker::new(self.breaker_failures, self.breaker_cooldown))
        }))
    }

    fn track(&self, name: &str, breaker: &Breaker) {
        self.metrics
            .set_breaker_state(name, breaker.state().gauge());
    }
}

impl Upstream for UpstreamFetcher {
    fn admits(&self, registry: &str) -> Admission {
        let now = self.clock.instant();
        if self.rests.is_resting(registry, now) {
            return Admission::Resting;
        }
        let breaker = self.breaker(registry);
        let admits = breaker.would_allow(now);
        self.track(registry, &breaker);
        if admits {
            Admission::Admitted
        } else {
            Admission::BreakerOpen
        }
    }

    fn fetch<'a>(
        &'a self,
        target: &'a UpstreamTarget,
        digest: &'a Digest,
        previous: Option<UpstreamReferrers>,
    ) -> BoxFuture<'a, Fetch> {
        self.list(target, digest, previous).boxed()
    }
}

impl Manifests for UpstreamFetcher {
    fn manifest<'a>(
        &'a self,
        target: &'a UpstreamTarget,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> BoxFuture<'a, ManifestRead> {
        async move {
            let read =
                self.client
                    .get_manifest(&target.registry, &target.repository, digest, max_bytes);
            match self
                .guarded(target, "upstream referrer's manifest", read)
                .await
            {
                Guarded::Answered(bytes) => ManifestRead::Read(bytes),
                Guarded::BreakerOpen => ManifestRead::Skipped,
                Guarded::RateLimited => ManifestRead::RateLimited,
                Guarded::Failed(UpstreamError::Limit { .. }) => ManifestRead::TooLarge,
                Guarded::Failed(_) => ManifestRead::Failed,
            }
        }
        .boxed()
    }
}

/// Counts every upstream request in `harbor_referrers_upstream_requests_total`, and gives it
/// the trace it is part of. Only `traceparent` goes to an upstream: the caller's `tracestate`
/// may carry its vendors' data, which is no third party's business.
pub struct UpstreamRequestMetrics(pub Arc<Metrics>);

impl RequestObserver for UpstreamRequestMetrics {
    fn on_request(&self, registry: &str, kind: RequestKind, status: Option<u16>, _: Duration) {
        let kind = match kind {
            RequestKind::Api => UpstreamKind::Api,
            RequestKind::Tag => UpstreamKind::Tag,
            RequestKind::Manifest => UpstreamKind::Manifest,
            RequestKind::Token => UpstreamKind::Token,
        };
        let class = status.map_or(StatusClass::Error, StatusClass::of);
        self.0.count_upstream_request(registry, kind, class);
    }

    fn trace_context(&self, span: &tracing::Span) -> Vec<(&'static str, String)> {
        let mut context = telemetry::context_headers(span).unwrap_or_default();
        context.retain(|(name, _)| *name == "traceparent");
        context
    }
}
