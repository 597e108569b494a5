//! The cache of upstream referrers lists: an in-process tier always, a tier shared by replicas
//! (Redis) when configured, stale-while-revalidate, and one upstream fetch per key at a time
//! (per process, and across replicas with a lock in the shared tier).

pub mod answer;
mod config;
pub mod entry;
pub mod memory;
pub mod policy;
pub mod purge;
pub mod redis;
pub mod shared;
pub mod single_flight;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod unfetched;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use oci_referrers::Digest;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outcome::{CacheResult, RefreshOutcome, Tier, UpstreamResult};
use crate::upstream::{Admission, Fetch, Upstream, UpstreamTarget};
pub use answer::UpstreamAnswer;
pub use config::{CacheConfig, shared_store};
use entry::{CachedList, EntryBounds, cache_key};
use memory::MemoryTier;
use policy::Freshness;
pub use purge::PurgeScope;
use purge::purge_channel;
use shared::{Lock, REDIS_BREAKER, SharedRead, SharedReport, SharedStore, SharedTier};
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

/// How long a replica waits before subscribing again to the purge channel, at first and at
/// most (doubling in between while Redis stays away).
const RESUBSCRIBE_FIRST_DELAY: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(5);

/// What one purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Lists dropped, each counted once: from the shared tier, and from this replica's
    /// in-process tier.
    pub lists: usize,
    pub shared: SharedPurge,
}

/// What became of a purge in the shared tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedPurge {
    /// No shared tier: only this replica's in-process tier was purged.
    None,
    /// Purged there, and published to every replica.
    Done,
    /// Redis did not answer: only this replica's in-process tier was purged.
    Unavailable,
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
    /// This process among the replicas: it skips its own purge messages.
    origin: String,
    memory: MemoryTier,
    shared: Option<SharedTier>,
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
            origin: uuid::Uuid::new_v4().to_string(),
            memory: MemoryTier::new(config.memory_max_bytes, Arc::clone(&metrics)),
            shared: shared.map(|store| {
                SharedTier::new(
                    store,
                    EntryBounds::new(config.max_entry_bytes),
                    Arc::clone(&clock),
                    Arc::clone(&metrics),
                )
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

    /// Drops the lists of `scope` from the shared tier, then from this replica's in-process
    /// tier, and publishes the purge so that every other replica drops them from its own.
    pub async fn purge(&self, scope: &PurgeScope) -> Purged {
        let namespace = &self.config.namespace;
        let mut dropped = HashSet::new();
        let shared = match &self.shared {
            None => SharedPurge::None,
            Some(shared) => {
                let removed = shared
                    .remove_matching(&scope.pattern(namespace), |key| {
                        scope.matches(namespace, key)
                    })
                    .await;
                match removed {
                    // Published after the shared tier is purged: a replica that drops its
                    // entry must not read the old one back from Redis.
                    Some(keys)
                        if shared
                            .publish(&purge_channel(namespace), &scope.to_message(&self.origin))
                            .await =>
                    {
                        dropped.extend(keys);
                        SharedPurge::Done
                    }
                    _ => SharedPurge::Unavailable,
                }
            }
        };
        dropped.extend(self.drop_local(scope).await);
        Purged {
            lists: dropped.len(),
            shared,
        }
    }

    /// Listens for other replicas' purges on the shared tier until the process ends,
    /// subscribing again whenever the subscription ends (Redis restarted, a failover).
    /// Without a shared tier, returns at once.
    pub async fn listen_for_purges(self: Arc<Self>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let channel = purge_channel(&self.config.namespace);
        let mut delay = RESUBSCRIBE_FIRST_DELAY;
        // Whether purges may have been published while this replica was not listening.
        let mut missed = false;
        loop {
            match shared.store().subscribe(&channel).await {
                Ok(mut messages) => {
                    self.metrics.cache_purge_subscribed.set(1);
                    delay = RESUBSCRIBE_FIRST_DELAY;
                    if missed {
                        // A purge missed would leave a purged list served here until it
                        // expires: drop them all instead.
                        let dropped = self.memory.remove_matching(|_| true).await;
                        tracing::info!(
                            dropped = dropped.len(),
                            "listening for purges again; the in-process tier was cleared, as purges published meanwhile were missed"
                        );
                    } else {
                        tracing::info!(channel, "listening for other replicas' purges");
                    }
                    while let Some(message) = messages.next().await {
                        self.apply_purge_message(&message).await;
                    }
                    self.metrics.cache_purge_subscribed.set(0);
                    tracing::warn!(
                        "the purge subscription ended (Redis restarted or failed over); subscribing again"
                    );
                }
                Err(error) => {
                    if !missed {
                        tracing::warn!(error = %error, "cannot listen for purges on Redis; trying again");
                    }
                }
            }
            missed = true;
            self.clock.sleep(delay).await;
            delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
        }
    }

    /// Applies a purge another replica published.
    async fn apply_purge_message(&self, message: &[u8]) {
        match PurgeScope::from_message(message) {
            Some((origin, _)) if origin == self.origin => {}
            Some((_, scope)) => {
                let dropped = self.drop_local(&scope).await;
                self.metrics.cache_purges_received.inc();
                tracing::info!(
                    registry_id = scope.registry_id,
                    repository = scope.repository.as_deref(),
                    digest = scope.digest.as_ref().map(ToString::to_string),
                    dropped = dropped.len(),
                    "purge from another replica applied"
                );
            }
            None => tracing::warn!("unreadable message on the purge channel; ignored"),
        }
    }

    /// Drops the lists of `scope` from the in-process tier, and forgets that any was too large
    /// to fetch; returns their keys.
    async fn drop_local(&self, scope: &PurgeScope) -> Vec<String> {
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
        self.shared.as_ref().map(SharedTier::report)
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
