//! The cache of upstream referrers lists: an in-process tier always, a tier shared by replicas
//! (Redis) when configured, stale-while-revalidate, and one upstream fetch per key at a time
//! (per process, and across replicas with a lock in the shared tier). Spreading a purge to
//! other replicas is not its job: the replicas module does it, through the narrow surface below.

mod answer;
mod channel;
mod claims;
mod config;
mod entry;
mod flight;
mod keys;
mod memory;
mod policy;
mod purge;
mod redis;
mod shared;
mod single_flight;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod unfetched;

use std::sync::Arc;
use std::time::Duration;

use oci_referrers::Digest;
use tracing::Instrument as _;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outcome::{CacheResult, Tier, UpstreamResult};
use crate::telemetry;
use crate::upstream::{Admission, Upstream, UpstreamTarget};
pub use answer::UpstreamAnswer;
pub use channel::PurgeChannel;
pub use claims::{Claim, Claims};
pub use config::{CacheConfig, shared_store};
pub use entry::CachedList;
use entry::EntryBounds;
use keys::cache_key;
pub use keys::{ListIndex, PurgeScope};
use memory::MemoryTier;
use policy::Freshness;
pub use redis::{RedisError, RedisTier};
use shared::{REDIS_BREAKER, SharedRead, SharedTier};
pub use shared::{SharedReport, SharedState, SharedStore};
use single_flight::SingleFlight;
use unfetched::Unfetched;

/// What one [`ReferrersCache::look_up`] found under its key, for
/// [`ReferrersCache::answer_from`].
#[derive(Debug)]
pub struct Looked {
    key: String,
    found: Option<Found>,
    misses: Misses,
}

impl Looked {
    /// Whether the lookup found a fresh list: one a request is served without an upstream call.
    #[must_use]
    pub fn is_fresh(&self) -> bool {
        self.found
            .as_ref()
            .is_some_and(|found| matches!(found.freshness, Freshness::Fresh { .. }))
    }
}

/// A live entry a lookup found.
#[derive(Debug)]
struct Found {
    list: Arc<CachedList>,
    freshness: Freshness,
    tier: Tier,
    /// For an entry read from the shared tier: how long the in-process tier keeps it, once
    /// the lookup is used (a lookup whose request core refused changes no tier).
    admit_for: Option<Duration>,
}

/// The tiers a lookup missed, counted only when its result is used: a lookup whose request
/// core refused counts nowhere.
#[derive(Debug, Default, Clone, Copy)]
struct Misses {
    memory: bool,
    /// The shared tier's miss or bypass.
    shared: Option<CacheResult>,
}

impl Misses {
    fn count(self, cache: &ReferrersCache) {
        if self.memory {
            cache.count_lookup(Tier::Memory, CacheResult::Miss);
        }
        if let Some(result) = self.shared {
            cache.count_lookup(Tier::Redis, result);
        }
    }
}

pub struct ReferrersCache {
    config: CacheConfig,
    memory: MemoryTier,
    /// Shared with the handles the cache gives out ([`Claims`], [`PurgeChannel`]): one breaker.
    shared: Option<Arc<SharedTier>>,
    /// Each flight gives everyone who waited for it the answer to a miss.
    flights: Arc<SingleFlight<UpstreamAnswer>>,
    unfetched: Unfetched,
    upstream: Arc<dyn Upstream>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl ReferrersCache {
    #[must_use]
    pub fn new(
        config: CacheConfig,
        shared: Option<Arc<dyn SharedStore>>,
        upstream: Arc<dyn Upstream>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Exported from the start, with or without a shared tier.
        metrics.set_breaker_state(REDIS_BREAKER, 0);
        Self {
            memory: MemoryTier::new(
                config.memory_max_bytes,
                config.namespace.clone(),
                Arc::clone(&metrics),
            ),
            shared: shared.map(|store| {
                Arc::new(SharedTier::new(
                    store,
                    EntryBounds::new(config.max_entry_bytes),
                    Arc::clone(&clock),
                    Arc::clone(&metrics),
                ))
            }),
            unfetched: Unfetched::new(config.lifetimes.keep_empty_for),
            config,
            flights: Arc::new(SingleFlight::default()),
            upstream,
            clock,
            metrics,
        }
    }

    /// The upstream referrers of `digest` for `target`, from the cache when it has them.
    pub async fn upstream_referrers(
        self: &Arc<Self>,
        target: &UpstreamTarget,
        registry_id: i64,
        digest: &Digest,
    ) -> UpstreamAnswer {
        let looked = self.look_up(target, registry_id, digest).await;
        self.answer_from(looked, target, digest).await
    }

    /// Reads the cached list of `digest` for `target` (in-process tier, then the shared one),
    /// and nothing else: no upstream call, no refresh, nothing counted or stored. What it found
    /// is used by [`answer_from`](Self::answer_from).
    pub async fn look_up(
        &self,
        target: &UpstreamTarget,
        registry_id: i64,
        digest: &Digest,
    ) -> Looked {
        let key = cache_key(
            &self.config.namespace,
            registry_id,
            &target.cache_scope,
            &target.repository,
            digest,
        );
        let mut misses = Misses::default();
        let found = self.lookup(&key, &mut misses).await;
        Looked { key, found, misses }
    }

    /// The upstream referrers of `digest` for `target`, from what `looked` found (a lookup of
    /// the same target and digest): served from it, refreshed in the background when stale,
    /// fetched when missing.
    pub async fn answer_from(
        self: &Arc<Self>,
        looked: Looked,
        target: &UpstreamTarget,
        digest: &Digest,
    ) -> UpstreamAnswer {
        let Looked { key, found, misses } = looked;
        misses.count(self);
        if let Some(Found {
            list,
            freshness,
            tier,
            admit_for,
        }) = found
        {
            if let Some(left) = admit_for {
                self.memory.insert(&key, Arc::clone(&list), left).await;
            }
            if matches!(freshness, Freshness::Fresh { .. }) {
                self.count_lookup(tier, CacheResult::Hit);
                return UpstreamAnswer::served(list, CacheResult::Hit);
            }
            self.count_lookup(tier, CacheResult::Stale);
            // A resting registry gets no refresh; the answer says why its list is stale.
            if self.upstream.admits(&target.registry.name) == Admission::Resting {
                return UpstreamAnswer {
                    list: Some(list),
                    upstream: UpstreamResult::RateLimited,
                    cache: CacheResult::Stale,
                    kept: true,
                };
            }
            self.refresh_in_background(key, target, digest, &list);
            return UpstreamAnswer::served(list, CacheResult::Stale);
        }

        let this = Arc::clone(self);
        let (owned_key, owned_target, owned_digest) = (key.clone(), target.clone(), digest.clone());
        let (fetched, waited) = self
            .flights
            .run(&key, move || {
                let span = flight::fetch_span(&owned_target, "upstream fetch");
                this.fetch(owned_key, owned_target, owned_digest, None)
                    .instrument(span)
            })
            .await;
        if waited {
            self.metrics.cache_coalesced_waits.inc();
        }
        // A flight whose task panicked gave no answer.
        fetched.unwrap_or_else(|| {
            UpstreamAnswer::without_list(UpstreamResult::Error, CacheResult::Miss)
        })
    }

    /// The channel replicas publish their purges on, in the shared tier: `None` without one.
    #[must_use]
    pub fn purge_channel(&self) -> Option<PurgeChannel> {
        self.shared.as_ref().map(|shared| {
            PurgeChannel::new(
                Arc::clone(shared),
                keys::purge_channel(&self.config.namespace),
            )
        })
    }

    /// Claims in the shared tier, behind its breaker, on work one replica does for all.
    #[must_use]
    pub fn claims(&self) -> Claims {
        Claims::new(self.shared.clone(), self.config.namespace.clone())
    }

    /// The shared tier's address and state, for `/readyz`: `None` without one.
    #[must_use]
    pub fn redis_report(&self) -> Option<SharedReport> {
        self.shared.as_ref().map(|shared| shared.report())
    }

    /// The in-process tier first, then the shared one; an entry expired in either is not there.
    /// The tiers missed on the way are noted in `misses`.
    async fn lookup(&self, key: &str, misses: &mut Misses) -> Option<Found> {
        // The policy decides, not the in-process tier's own expiry timing.
        let in_memory = self
            .memory
            .get(key)
            .instrument(
                tracing::info_span!(target: telemetry::SPANS, "cache lookup", tier = "memory"),
            )
            .await;
        if let Some(list) = in_memory {
            let freshness = self.config.lifetimes.freshness(&list, self.clock.now_ms());
            if freshness != Freshness::Expired {
                return Some(Found {
                    list,
                    freshness,
                    tier: Tier::Memory,
                    admit_for: None,
                });
            }
        }
        misses.memory = true;
        let shared = self.shared.as_ref()?;
        let read = shared
            .read(key)
            .instrument(
                tracing::info_span!(target: telemetry::SPANS, "cache lookup", tier = "redis"),
            )
            .await;
        let found = match read {
            SharedRead::Found(list) => {
                let freshness = self.config.lifetimes.freshness(&list, self.clock.now_ms());
                freshness.time_left().map(|left| Found {
                    list: Arc::new(list),
                    freshness,
                    tier: Tier::Redis,
                    admit_for: Some(left),
                })
            }
            SharedRead::Missing => None,
            SharedRead::Unavailable => {
                misses.shared = Some(CacheResult::Bypass);
                return None;
            }
        };
        if found.is_none() {
            misses.shared = Some(CacheResult::Miss);
        }
        found
    }

    fn count_lookup(&self, tier: Tier, result: CacheResult) {
        self.metrics.count_cache_lookup(tier, result);
    }
}
