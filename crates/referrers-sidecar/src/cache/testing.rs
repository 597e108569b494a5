//! Stand-ins for the cache's seams in unit tests: its configuration, an upstream that answers
//! as told (and counts its fetches), the stub shared store, and the key a list is stored
//! under; shared by the cache's tests and its clients' tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use oci_referrers::{Descriptor, Digest};
use registry_client::{ReferrersSource, Registry, RegistryKind, UpstreamReferrers};
use tokio::sync::Semaphore;

use super::keys::cache_key;
use super::policy::Lifetimes;
pub(crate) use super::shared::stub::{Fault, StubStore};
use super::{CacheConfig, ReferrersCache, SharedStore};
use crate::clock::{Clock, ManualClock};
use crate::metrics::Metrics;
use crate::upstream::{Admission, Fetch, Upstream, UpstreamTarget};

pub(crate) const FRESH_FOR: Duration = Duration::from_secs(600);
pub(crate) const KEEP_STALE_FOR: Duration = Duration::from_secs(7 * 86_400);
pub(crate) const KEEP_EMPTY_FOR: Duration = Duration::from_secs(3_600);
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(10);

pub(crate) fn config() -> CacheConfig {
    CacheConfig {
        namespace: "harbor-a".into(),
        lifetimes: Lifetimes {
            fresh_for: FRESH_FOR,
            keep_stale_for: KEEP_STALE_FOR,
            keep_empty_for: KEEP_EMPTY_FOR,
        },
        max_entry_bytes: 1024 * 1024,
        memory_max_bytes: 64 * 1024 * 1024,
        lock_ttl: LOCK_TTL,
        lock_wait: LOCK_TTL,
    }
}

/// The key the list of `digest` in `target` of Harbor registry `registry_id` is stored under,
/// with [`config`].
pub(crate) fn key_of(registry_id: i64, target: &UpstreamTarget, digest: &Digest) -> String {
    cache_key(
        &config().namespace,
        registry_id,
        &target.cache_scope,
        &target.repository,
        digest,
    )
}

/// What the stub upstream answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// A complete list of this many referrers from the API.
    Referrers(usize),
    /// A list cut short by a cap.
    Truncated(usize),
    /// A page over `upstream.max_page_bytes`.
    TooLarge,
    /// The memory budget refused a page.
    OverBudget,
    Failing,
    /// A rate limit: the registry rests from then on.
    RateLimited,
}

pub(crate) struct StubUpstream {
    pub(crate) answer: Mutex<Answer>,
    pub(crate) fetches: AtomicUsize,
    pub(crate) breaker_open: AtomicBool,
    pub(crate) resting: AtomicBool,
    /// Each fetch takes a permit: none until the test opens the gate, when gated.
    pub(crate) gate: Semaphore,
}

impl StubUpstream {
    pub(crate) fn answering(answer: Answer) -> Arc<Self> {
        Self::new(answer, Semaphore::MAX_PERMITS)
    }

    pub(crate) fn gated(answer: Answer) -> Arc<Self> {
        Self::new(answer, 0)
    }

    pub(crate) fn new(answer: Answer, permits: usize) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            fetches: AtomicUsize::new(0),
            breaker_open: AtomicBool::new(false),
            resting: AtomicBool::new(false),
            gate: Semaphore::new(permits),
        })
    }

    pub(crate) fn answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Upstream for StubUpstream {
    fn admits(&self, _registry: &str) -> Admission {
        if self.resting.load(Ordering::SeqCst) {
            Admission::Resting
        } else if self.breaker_open.load(Ordering::SeqCst) {
            Admission::BreakerOpen
        } else {
            Admission::Admitted
        }
    }

    fn fetch<'a>(
        &'a self,
        _target: &'a UpstreamTarget,
        _digest: &'a Digest,
        _previous: Option<UpstreamReferrers>,
    ) -> BoxFuture<'a, Fetch> {
        async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.breaker_open.load(Ordering::SeqCst) {
                return Fetch::Skipped;
            }
            self.gate.acquire().await.unwrap().forget();
            let answer = *self.answer.lock().unwrap();
            match answer {
                Answer::Referrers(n) => Fetch::Listed(listed(n, false)),
                Answer::Truncated(n) => Fetch::Listed(listed(n, true)),
                Answer::TooLarge => Fetch::TooLarge,
                Answer::OverBudget => Fetch::OverBudget,
                Answer::Failing => Fetch::Failed,
                Answer::RateLimited => {
                    self.resting.store(true, Ordering::SeqCst);
                    Fetch::RateLimited
                }
            }
        }
        .boxed()
    }
}

pub(crate) fn listed(referrers: usize, truncated: bool) -> UpstreamReferrers {
    let mut list = UpstreamReferrers::none();
    list.source = ReferrersSource::Api;
    list.truncated = truncated;
    list.descriptors = (0..referrers)
        .map(|i| {
            serde_json::from_value::<Descriptor>(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{i:064x}"),
                "size": 10,
            }))
            .unwrap()
        })
        .collect();
    list
}

/// The repository the cache's tests list: `library/nginx` on registry `hub`.
pub(crate) fn target() -> UpstreamTarget {
    UpstreamTarget::new(
        Registry {
            name: "hub".into(),
            base_url: "https://registry.example/".parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: false,
            credentials: None,
        },
        "library/nginx".into(),
        false,
    )
}

/// The subject whose list the cache's tests ask for.
pub(crate) fn digest() -> Digest {
    format!("sha256:{}", "d".repeat(64)).parse().unwrap()
}

/// A cache as one replica holds it: over `shared` (if any), `upstream` and `clock`, with metrics
/// of its own.
pub(crate) fn replica_cache(
    shared: Option<&Arc<StubStore>>,
    upstream: &Arc<StubUpstream>,
    clock: &Arc<ManualClock>,
) -> (Arc<ReferrersCache>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let cache = Arc::new(ReferrersCache::new(
        config(),
        shared.map(|store| Arc::clone(store) as Arc<dyn SharedStore>),
        Arc::clone(upstream) as Arc<dyn Upstream>,
        Arc::clone(clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
    ));
    (cache, metrics)
}
