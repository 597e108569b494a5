//! The upstream fetch: one registry's referrers listing behind that registry's breaker and
//! rate-limit rest, timed, counted and logged.

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
use crate::breaker::{Breaker, BreakerState, Change, Verdict};
use crate::clock::Clock;
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::outcome::{StatusClass, UpstreamKind};

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

/// Whether a registry may be called now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Its breaker is open.
    BreakerOpen,
    /// It rests after a rate limit.
    Resting,
}

/// A registry's breaker and rate-limit rest as they are now, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryState {
    pub breaker: BreakerState,
    /// How long the registry still rests after a rate limit; `None` when it does not.
    pub rest_left: Option<Duration>,
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

/// The registry client behind one breaker and one rate-limit rest per registry (by its label).
pub struct UpstreamFetcher {
    client: RegistryClient,
    breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    rests: Rests,
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
        if self.rests.is_resting(name, self.clock.instant()) {
            return Fetch::RateLimited;
        }
        let breaker = self.breaker(name);
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
        let Some(called) = breaker
            .call(
                || self.clock.instant(),
                |state| self.metrics.set_breaker_state(name, state.gauge()),
                listing,
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
            return Fetch::Skipped;
        };
        match called.value {
            Ok(list) => Fetch::Listed(list),
            Err(UpstreamError::RateLimited { retry_after }) => {
                let rest = self.rests.start(name, self.clock.instant(), retry_after);
                self.metrics.count_rate_limited(name);
                tracing::warn!(
                    registry = name,
                    repository = %target.repository,
                    ?retry_after,
                    ?rest,
                    "upstream rate limit: no calls to this registry until the rest ends; serving cached or local referrers only"
                );
                Fetch::RateLimited
            }
            Err(error) => {
                tracing::warn!(
                    registry = name,
                    repository = %target.repository,
                    step = error.step(),
                    error = %error,
                    "upstream referrers unavailable"
                );
                if called.change == Some(Change::Opened) {
                    tracing::warn!(
                        registry = name,
                        cooldown = ?self.breaker_cooldown,
                        "upstream breaker open: serving cached or local referrers only"
                    );
                }
                match error {
                    UpstreamError::Limit { .. } => Fetch::TooLarge,
                    UpstreamError::OverBudget(_) => Fetch::OverBudget,
                    _ => Fetch::Failed,
                }
            }
        }
    }

    /// The breaker and rest of the registry labelled `name`, without changing either (a
    /// registry never called yet is closed and not resting).
    #[must_use]
    pub fn registry_state(&self, name: &str) -> RegistryState {
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .map_or(BreakerState::Closed, |breaker| breaker.state());
        RegistryState {
            breaker,
            rest_left: self.rests.rest_left(name, self.clock.instant()),
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

/// Counts every upstream request in `harbor_referrers_upstream_requests_total`.
pub struct UpstreamRequestMetrics(pub Arc<Metrics>);

impl RequestObserver for UpstreamRequestMetrics {
    fn on_request(&self, registry: &str, kind: RequestKind, status: Option<u16>, _: Duration) {
        let kind = match kind {
            RequestKind::Api => UpstreamKind::Api,
            RequestKind::Tag => UpstreamKind::Tag,
            RequestKind::Token => UpstreamKind::Token,
        };
        let class = status.map_or(StatusClass::Error, StatusClass::of);
        self.0.count_upstream_request(registry, kind, class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;
    use crate::clock::ManualClock;
    use crate::outcome::{StatusClass, UpstreamKind};
    use registry_client::{Registry, RegistryKind};

    /// A registry on a port nothing listens on: every fetch is a refused connection, which
    /// counts against the breaker.
    fn refusing_target() -> UpstreamTarget {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        UpstreamTarget::new(
            Registry {
                name: "refusing".into(),
                base_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
                kind: RegistryKind::Distribution,
                insecure: true,
                credentials: None,
            },
            "library/nginx".into(),
            false,
        )
    }

    /// A registry answering every request with the status in `status`, with `Retry-After:
    /// 120` on a 429.
    async fn registry_answering(status: Arc<std::sync::atomic::AtomicU16>) -> UpstreamTarget {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let status = status.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let retry_after = if status == 429 {
                        "Retry-After: 120\r\n"
                    } else {
                        ""
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\n{retry_after}Content-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        UpstreamTarget::new(
            Registry {
                name: "limited".into(),
                base_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
                kind: RegistryKind::Distribution,
                insecure: true,
                credentials: None,
            },
            "library/nginx".into(),
            false,
        )
    }

    fn fetcher(
        settings: &UpstreamSettings,
        clock: &Arc<ManualClock>,
    ) -> (UpstreamFetcher, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new(&[]).unwrap());
        let observer: Arc<dyn RequestObserver> =
            Arc::new(UpstreamRequestMetrics(Arc::clone(&metrics)));
        let client = RegistryClient::new(settings.client_config(Some(observer))).unwrap();
        let fetcher = UpstreamFetcher::new(
            client,
            settings,
            Arc::clone(clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
        );
        (fetcher, metrics)
    }

    #[tokio::test]
    async fn a_rate_limit_rests_the_registry_until_retry_after_and_a_limited_probe_keeps_the_breaker_open()
     {
        use std::sync::atomic::{AtomicU16, Ordering};
        let settings = UpstreamSettings {
            breaker_failures: 1,
            breaker_cooldown: Duration::from_secs(30),
            ..UpstreamSettings::default()
        };
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let (fetcher, metrics) = fetcher(&settings, &clock);
        let status = Arc::new(AtomicU16::new(503));
        let target = registry_answering(Arc::clone(&status)).await;
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let requests = || {
            UpstreamKind::ALL
                .iter()
                .flat_map(|kind| StatusClass::ALL.iter().map(move |class| (kind, class)))
                .map(|(kind, class)| {
                    metrics
                        .upstream_requests
                        .with_label_values(&["limited", kind.as_str(), class.as_str()])
                        .get()
                })
                .sum::<u64>()
        };
        let limited = || {
            metrics
                .upstream_rate_limited
                .with_label_values(&["limited"])
                .get()
        };

        // A 503 without Retry-After is a failure: the breaker opens.
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Failed
        ));
        assert_eq!(fetcher.breaker("limited").state(), BreakerState::Open);

        // The probe after the cool-down is answered 429: the breaker stays open, and the
        // registry rests for the 120 s it asked for.
        clock.advance(settings.breaker_cooldown);
        status.store(429, Ordering::SeqCst);
        assert_eq!(fetcher.admits("limited"), Admission::Admitted);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::RateLimited
        ));
        assert_eq!(fetcher.breaker("limited").state(), BreakerState::Open);
        assert_eq!(
            metrics.breaker_state.with_label_values(&["limited"]).get(),
            1
        );
        assert_eq!(limited(), 1);
        let made = requests();

        // Resting: no call, even once the breaker's cool-down is over.
        clock.advance(settings.breaker_cooldown);
        assert_eq!(fetcher.admits("limited"), Admission::Resting);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::RateLimited
        ));
        clock.advance(
            Duration::from_secs(120) - settings.breaker_cooldown - Duration::from_millis(1),
        );
        assert_eq!(fetcher.admits("limited"), Admission::Resting);
        assert_eq!(requests(), made, "no upstream call while resting");
        assert_eq!(limited(), 1, "only an upstream answer counts");

        // The rest is over: the next fetch is the breaker's probe, and calls the registry.
        clock.advance(Duration::from_millis(1));
        assert_eq!(fetcher.admits("limited"), Admission::Admitted);
        status.store(503, Ordering::SeqCst);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Failed
        ));
        assert!(requests() > made);
        assert_eq!(fetcher.admits("another"), Admission::Admitted);
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
            assert_eq!(fetcher.admits("refusing"), Admission::Admitted);
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
        assert_eq!(fetcher.admits("refusing"), Admission::BreakerOpen);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Skipped
        ));
        assert_eq!(requests(), made);

        // After the cool-down one probe goes; it fails, so the breaker opens again.
        clock.advance(settings.breaker_cooldown);
        assert_eq!(fetcher.admits("refusing"), Admission::Admitted);
        assert!(matches!(
            fetcher.fetch(&target, &digest, None).await,
            Fetch::Failed
        ));
        assert!(requests() > made);
        assert_eq!(gauge(), 1);
        assert_eq!(fetcher.admits("refusing"), Admission::BreakerOpen);
        // Another registry has a breaker of its own.
        assert_eq!(fetcher.admits("another"), Admission::Admitted);
    }
}
