//! The upstream fetch: one registry's referrers listing behind that registry's breaker, timed,
//! counted and logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use oci_referrers::Digest;
use registry_client::{RegistryClient, RequestKind, RequestObserver, UpstreamReferrers};

use super::target::UpstreamTarget;
use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::config::UpstreamSettings;
use crate::metrics::{Metrics, status_class};

/// What one upstream fetch gave.
#[derive(Debug)]
pub enum Fetch {
    /// The registry's list (perhaps cut short by a cap: see `truncated`).
    Listed(UpstreamReferrers),
    /// The registry did not answer usably; logged here.
    Failed,
    /// The registry's breaker is open: no call was made.
    Skipped,
}

/// Where the cache gets upstream lists from.
pub trait Upstream: Send + Sync {
    /// Whether a fetch from `registry` would be let through now. Takes no probe: the cache
    /// asks before taking the cross-replica lock, so an open breaker costs Redis nothing.
    fn admits(&self, registry: &str) -> bool;

    /// The referrers of `digest` in `target`; `previous` is the list cached before, which lets
    /// a Docker Hub fallback tag that has not changed be confirmed without a `GET`.
    fn fetch<'a>(
        &'a self,
        target: &'a UpstreamTarget,
        digest: &'a Digest,
        previous: Option<UpstreamReferrers>,
    ) -> BoxFuture<'a, Fetch>;
}

/// The registry client behind one breaker per registry (by its label).
pub struct UpstreamFetcher {
    client: RegistryClient,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
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
        let breaker = self.breaker(name);
        let allowed = breaker.allow(self.clock.instant());
        self.track(name, &breaker);
        if !allowed {
            return Fetch::Skipped;
        }
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
            .upstream_fetch_duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        let fetch = match result {
            Ok(list) => {
                breaker.record_success();
                Fetch::Listed(list)
            }
            Err(error) => {
                tracing::warn!(
                    registry = name,
                    repository = %target.repository,
                    step = error.step(),
                    error = %error,
                    "upstream referrers unavailable"
                );
                if !error.counts_against_breaker() {
                    breaker.record_success();
                } else if breaker.record_failure(self.clock.instant()) {
                    tracing::warn!(
                        registry = name,
                        cooldown = ?self.breaker_cooldown,
                        "upstream breaker open: serving cached or local referrers only"
                    );
                }
                Fetch::Failed
            }
        };
        self.track(name, &breaker);
        fetch
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
            .breaker_state
            .with_label_values(&[name])
            .set(breaker.state().gauge());
    }
}

impl Upstream for UpstreamFetcher {
    fn admits(&self, registry: &str) -> bool {
        let breaker = self.breaker(registry);
        let admits = breaker.would_allow(self.clock.instant());
        self.track(registry, &breaker);
        admits
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

/// Counts every upstream request in `harbor_referrers_upstream_requests_total`.
pub struct UpstreamRequestMetrics(pub Arc<Metrics>);

impl RequestObserver for UpstreamRequestMetrics {
    fn on_request(&self, registry: &str, kind: RequestKind, status: Option<u16>, _: Duration) {
        let class = status.map_or("error", status_class);
        self.0
            .upstream_requests
            .with_label_values(&[registry, kind.as_str(), class])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::clock::ManualClock;
    use registry_client::{Registry, RegistryKind};

    /// A registry on a port nothing listens on: every fetch is a refused connection, which
    /// counts against the breaker.
    fn refusing_target() -> UpstreamTarget {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        UpstreamTarget {
            registry: Registry {
                name: "refusing".into(),
                base_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
                kind: RegistryKind::Distribution,
                insecure: true,
                credentials: None,
            },
            repository: "library/nginx".into(),
            library_mapped: false,
        }
    }

    #[tokio::test]
    async fn the_registry_breaker_opens_skips_then_probes_after_its_cool_down() {
        let settings = UpstreamSettings {
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(30),
            ..UpstreamSettings::default()
        };
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let metrics = Arc::new(Metrics::new(&[]).unwrap());
        let observer: Arc<dyn RequestObserver> =
            Arc::new(UpstreamRequestMetrics(Arc::clone(&metrics)));
        let client = RegistryClient::new(settings.client_config(Some(observer))).unwrap();
        let fetcher = UpstreamFetcher::new(
            client,
            &settings,
            Arc::clone(&clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
        );
        let target = refusing_target();
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let requests = || {
            metrics
                .upstream_requests
                .with_label_values(&["refusing", "api", "error"])
                .get()
        };
        let gauge = || metrics.breaker_state.with_label_values(&["refusing"]).get();

        for _ in 0..2 {
            assert!(fetcher.admits("refusing"));
            assert!(matches!(
                fetcher.fetch(&target, &digest, None).await,
                Fetch::Failed
            ));
        }
        assert_eq!(fetcher.breaker("refusing").state(), BreakerState::Open);
        assert_eq!(gauge(), 1);
        let made = requests();
        assert!(made >= 2, "each fetch reached the registry: {made}");

        // Open: no call at all.
        assert!(!fetcher.admits("refusing"));
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Skipped
        ));
        assert_eq!(requests(), made);

        // After the cool-down one probe goes; it fails, so the breaker opens again.
        clock.advance(settings.breaker_cooldown);
        assert!(fetcher.admits("refusing"));
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Failed
        ));
        assert!(requests() > made);
        assert_eq!(gauge(), 1);
        assert!(!fetcher.admits("refusing"));
        // Another registry has a breaker of its own.
        assert!(fetcher.admits("another"));
    }
}
