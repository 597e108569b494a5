//! The cache of upstream referrers lists: an in-process tier always, a tier shared by replicas
//! (Redis) when configured, stale-while-revalidate, and one upstream fetch per key at a time
//! (per process, and across replicas with a lock in the shared tier). Spreading a purge to
//! other replicas is not its job: `crate::replicas` does it, through the narrow surface below.

mod answer;
mod channel;
mod claims;
mod config;
mod entry;
mod keys;
mod memory;
mod policy;
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

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outcome::{CacheResult, RefreshOutcome, Tier, UpstreamResult};
use crate::upstream::{Admission, Fetch, Upstream, UpstreamTarget};
pub use answer::UpstreamAnswer;
pub use channel::PurgeChannel;
pub use claims::{Claim, Claims};
pub use config::{CacheConfig, shared_store};
pub use entry::CachedList;
use entry::EntryBounds;
pub use keys::PurgeScope;
use keys::cache_key;
use memory::MemoryTier;
use policy::Freshness;
pub use redis::{RedisError, RedisTier};
use shared::{Lock, REDIS_BREAKER, SharedRead, SharedTier};
pub use shared::{SharedReport, SharedState, SharedStore};
use single_flight::SingleFlight;
use unfetched::Unfetched;

/// The result of one upstream fetch, shared by everyone who waited for it.
#[derive(Debug, Clone)]
enum Fetched {
    Complete(Arc<CachedList>),
    /// Cut short by a cap: served, not stored as whole.
    Truncated(Arc<CachedList>),
    Failed,
    /// The registry's breaker is open.
    Skipped,
    /// The registry rests after a rate limit.
    RateLimited,
    /// Not downloaded (again): too large, truncated, or over the memory budget.
    Unfetched(UpstreamResult),
}

/// What one [`ReferrersCache::look_up`] found under its key, for
/// [`ReferrersCache::answer_from`].
#[derive(Debug)]
pub struct Looked {
    key: String,
    found: Option<Found>,
    misses: Misses,
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
    flights: Arc<SingleFlight<Fetched>>,
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
            memory: MemoryTier::new(config.memory_max_bytes, Arc::clone(&metrics)),
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
                this.fetch(owned_key, owned_target, owned_digest, None)
            })
            .await;
        if waited {
            self.metrics.cache_coalesced_waits.inc();
        }
        match fetched {
            Some(Fetched::Complete(list)) => UpstreamAnswer::served(list, CacheResult::Miss),
            Some(Fetched::Truncated(list)) => UpstreamAnswer {
                list: Some(list),
                upstream: UpstreamResult::Truncated,
                cache: CacheResult::Miss,
            },
            Some(Fetched::Skipped) => {
                UpstreamAnswer::without_list(UpstreamResult::Skipped, CacheResult::Miss)
            }
            Some(Fetched::RateLimited) => {
                UpstreamAnswer::without_list(UpstreamResult::RateLimited, CacheResult::Miss)
            }
            Some(Fetched::Unfetched(why)) => UpstreamAnswer::without_list(why, CacheResult::Miss),
            Some(Fetched::Failed) | None => {
                UpstreamAnswer::without_list(UpstreamResult::Error, CacheResult::Miss)
            }
        }
    }

    /// How many lists of Harbor registry `registry_id` this replica holds in its in-process
    /// tier (every project over it, every credential identity).
    #[must_use]
    pub fn cached_lists(&self, registry_id: i64) -> usize {
        let scope = PurgeScope {
            registry_id,
            repository: None,
            digest: None,
        };
        self.memory
            .count_matching(|key| scope.matches(&self.config.namespace, key))
    }

    /// Removes the lists of `scope` from the shared tier; returns their keys. `None` when there
    /// is no shared tier, or it did not answer.
    pub async fn remove_shared(&self, scope: &PurgeScope) -> Option<Vec<String>> {
        let namespace = &self.config.namespace;
        self.shared
            .as_ref()?
            .remove_matching(&scope.pattern(namespace), |key| {
                scope.matches(namespace, key)
            })
            .await
    }

    /// Drops every list from this replica's in-process tier (what it remembers as not to be
    /// fetched stays); returns how many.
    pub async fn clear_in_process(&self) -> usize {
        self.memory.remove_matching(|_| true).await.len()
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

    /// Drops the lists of `scope` from this replica's in-process tier, and forgets that any was
    /// too large to fetch; returns their keys.
    pub async fn drop_local(&self, scope: &PurgeScope) -> Vec<String> {
        let (namespace, forgotten) = (self.config.namespace.clone(), scope.clone());
        self.unfetched
            .forget_matching(move |key| forgotten.matches(&namespace, key));
        self.memory
            .remove_matching(|key| scope.matches(&self.config.namespace, key))
            .await
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
        if let Some(list) = self.memory.get(key).await {
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
        let found = match shared.read(key).await {
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

    /// Keeps an entry read from the shared tier in memory for the time it has left; `None`
    /// when it has none.
    async fn admit(&self, key: &str, list: CachedList) -> Option<(Arc<CachedList>, Freshness)> {
        let freshness = self.config.lifetimes.freshness(&list, self.clock.now_ms());
        let left = freshness.time_left()?;
        let list = Arc::new(list);
        self.memory.insert(key, Arc::clone(&list), left).await;
        Some((list, freshness))
    }

    /// Re-fetches a stale entry unless a fetch of that key is already running; meanwhile the
    /// stale entry is served, and stays served if the refresh fails.
    fn refresh_in_background(
        self: &Arc<Self>,
        key: String,
        target: &UpstreamTarget,
        digest: &Digest,
        stale: &Arc<CachedList>,
    ) {
        if self.flights.is_running(&key) {
            return;
        }
        let this = Arc::clone(self);
        let (target, digest, stale) = (target.clone(), digest.clone(), Arc::clone(stale));
        tokio::spawn(async move {
            let fetcher = Arc::clone(&this);
            let flight_key = key.clone();
            let (fetched, _) = this
                .flights
                .run(&flight_key, move || {
                    fetcher.fetch(key, target, digest, Some(stale))
                })
                .await;
            let outcome = match fetched {
                Some(Fetched::Complete(_)) => RefreshOutcome::Refreshed,
                Some(Fetched::Truncated(_)) => RefreshOutcome::Truncated,
                Some(Fetched::Skipped) => RefreshOutcome::Skipped,
                Some(Fetched::RateLimited) => RefreshOutcome::RateLimited,
                Some(Fetched::Unfetched(UpstreamResult::TooLarge)) => RefreshOutcome::TooLarge,
                Some(Fetched::Unfetched(UpstreamResult::OverBudget)) => RefreshOutcome::OverBudget,
                Some(Fetched::Unfetched(UpstreamResult::Truncated)) => RefreshOutcome::Truncated,
                Some(Fetched::Unfetched(_) | Fetched::Failed) | None => RefreshOutcome::Failed,
            };
            this.metrics.count_refresh(outcome);
        });
    }

    /// One upstream fetch for `key`, run once however many callers wait for it.
    async fn fetch(
        self: Arc<Self>,
        key: String,
        target: UpstreamTarget,
        digest: Digest,
        previous: Option<Arc<CachedList>>,
    ) -> Fetched {
        // A miss looked the key up before this flight began; a flight for the same key that
        // ended in between has stored a fresh entry, which is the answer.
        if previous.is_none()
            && let Some(list) = self.fresh_in_memory(&key).await
        {
            return Fetched::Complete(list);
        }
        // A refresh first takes a fresher entry another replica already stored.
        if let Some(previous) = &previous
            && let Some(list) = self.fresher_in_shared(&key, previous).await
        {
            return Fetched::Complete(list);
        }
        if let Some(why) = self.unfetched.why(&key, self.clock.instant()).await {
            return Fetched::Unfetched(why);
        }
        // Checked before the lock: an open breaker or a rest costs the shared tier nothing.
        match self.upstream.admits(&target.registry.name) {
            Admission::Admitted => {}
            Admission::BreakerOpen => return Fetched::Skipped,
            Admission::Resting => return Fetched::RateLimited,
        }
        let lock = match &self.shared {
            Some(shared) => shared.lock(&key, self.config.lock_ttl).await,
            None => Lock::Unavailable,
        };
        if lock == Lock::Lost
            && let Some(list) = self.winners_entry(&key).await
        {
            return Fetched::Complete(list);
        }
        let previous = previous.map(|list| list.as_upstream());
        let fetched = match self.upstream.fetch(&target, &digest, previous).await {
            Fetch::Listed(list) => {
                let truncated = list.truncated;
                let cached = Arc::new(CachedList::new(list, self.clock.now_ms()));
                if truncated {
                    tracing::warn!(registry = %target.registry.name, repository = %target.repository, "upstream list cut short by a cap; served, not cached, not fetched again for cache.keep_empty_for");
                    self.remember(&key, UpstreamResult::Truncated).await;
                    Fetched::Truncated(cached)
                } else {
                    if !self.store(&key, &cached).await {
                        self.remember(&key, UpstreamResult::TooLarge).await;
                    }
                    Fetched::Complete(cached)
                }
            }
            Fetch::Failed => Fetched::Failed,
            Fetch::Skipped => Fetched::Skipped,
            Fetch::RateLimited => Fetched::RateLimited,
            Fetch::TooLarge => {
                self.remember(&key, UpstreamResult::TooLarge).await;
                Fetched::Unfetched(UpstreamResult::TooLarge)
            }
            Fetch::OverBudget => {
                self.remember(&key, UpstreamResult::OverBudget).await;
                Fetched::Unfetched(UpstreamResult::OverBudget)
            }
        };
        if let (Lock::Won(token), Some(shared)) = (&lock, &self.shared) {
            shared.unlock(&key, token).await;
        }
        fetched
    }

    /// The in-process entry under `key`, when it is fresh.
    async fn fresh_in_memory(&self, key: &str) -> Option<Arc<CachedList>> {
        let list = self.memory.get(key).await?;
        let freshness = self.config.lifetimes.freshness(&list, self.clock.now_ms());
        matches!(freshness, Freshness::Fresh { .. }).then_some(list)
    }

    /// The entry under `key` in the shared tier, when it was fetched after `previous` and is
    /// fresh.
    async fn fresher_in_shared(&self, key: &str, previous: &CachedList) -> Option<Arc<CachedList>> {
        let SharedRead::Found(list) = self.shared.as_ref()?.read(key).await else {
            return None;
        };
        if list.fetched_at_ms <= previous.fetched_at_ms {
            return None;
        }
        match self.admit(key, list).await? {
            (list, Freshness::Fresh { .. }) => Some(list),
            _ => None,
        }
    }

    /// Another replica is fetching `key`: its entry, if it stores one in time.
    async fn winners_entry(&self, key: &str) -> Option<Arc<CachedList>> {
        let shared = self.shared.as_ref()?;
        let list = shared.wait_for_winner(key, self.config.lock_wait).await?;
        self.admit(key, list).await.map(|(list, _)| list)
    }

    /// Answers `key` without an upstream call for `cache.keep_empty_for`.
    async fn remember(&self, key: &str, why: UpstreamResult) {
        self.unfetched
            .remember(key, why, self.clock.instant())
            .await;
    }

    /// Stores a complete list in every tier, unless its stored form is over the entry bound
    /// (or what it inflates to is over what a reader would inflate: it could never be read
    /// back); says whether it did.
    async fn store(&self, key: &str, list: &Arc<CachedList>) -> bool {
        let Some(bytes) = list.encode_within(EntryBounds::new(self.config.max_entry_bytes)) else {
            self.metrics.cache_oversize.inc();
            tracing::info!(
                key,
                descriptors = list.descriptors.len(),
                limit = self.config.max_entry_bytes,
                "upstream list over cache.max_entry_bytes: served, not cached, not fetched again for cache.keep_empty_for"
            );
            return false;
        };
        let lifetime = self.config.lifetimes.lifetime(list);
        self.memory.insert(key, Arc::clone(list), lifetime).await;
        self.metrics.count_cache_store(Tier::Memory);
        if let Some(shared) = &self.shared {
            shared.put(key, &bytes, lifetime).await;
        }
        true
    }

    fn count_lookup(&self, tier: Tier, result: CacheResult) {
        self.metrics.count_cache_lookup(tier, result);
    }
}
