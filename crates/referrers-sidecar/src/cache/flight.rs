//! One upstream fetch per key at a time: a miss's fetch, shared by every request waiting for
//! it, and the background refresh of a stale entry; each first looks for an entry another
//! flight or replica stored meanwhile, then takes the cross-replica lock, fetches and stores.

use std::sync::Arc;

use oci_referrers::Digest;
use tracing::{Instrument as _, Span};

use super::entry::{CachedList, EntryBounds};
use super::keys::ListIndex;
use super::policy::Freshness;
use super::shared::{Lock, SharedRead};
use super::{ReferrersCache, UpstreamAnswer};
use crate::outcome::{CacheResult, Tier, UpstreamResult};
use crate::telemetry;
use crate::upstream::{Admission, Fetch, UpstreamTarget};

impl ReferrersCache {
    /// Keeps an entry read from the shared tier in memory for the time it has left; `None`
    /// when it has none.
    pub(super) async fn admit(
        &self,
        key: &str,
        list: CachedList,
    ) -> Option<(Arc<CachedList>, Freshness)> {
        let freshness = self.config.lifetimes.freshness(&list, self.clock.now_ms());
        let left = freshness.time_left()?;
        let list = Arc::new(list);
        self.memory.insert(key, Arc::clone(&list), left).await;
        Some((list, freshness))
    }

    /// Re-fetches a stale entry unless a fetch of that key is already running; meanwhile the
    /// stale entry is served, and stays served if the refresh fails.
    pub(super) fn refresh_in_background(
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
        let span = fetch_span(target, "upstream refresh");
        let (target, digest, stale) = (target.clone(), digest.clone(), Arc::clone(stale));
        tokio::spawn(async move {
            let fetcher = Arc::clone(&this);
            let flight_key = key.clone();
            let (fetched, _) = this
                .flights
                .run(&flight_key, move || {
                    fetcher
                        .fetch(key, target, digest, Some(stale))
                        .instrument(span)
                })
                .await;
            let upstream = fetched.map_or(UpstreamResult::Error, |answer| answer.upstream);
            this.metrics.count_refresh(upstream.refreshed());
        });
    }

    /// One upstream fetch for `key`, run once however many callers wait for it: the answer to
    /// a miss (a refresh counts what it says of the upstream).
    pub(super) async fn fetch(
        self: Arc<Self>,
        key: String,
        target: UpstreamTarget,
        digest: Digest,
        previous: Option<Arc<CachedList>>,
    ) -> UpstreamAnswer {
        // A miss looked the key up before this flight began; a flight for the same key that
        // ended in between has stored a fresh entry, which is the answer.
        if previous.is_none()
            && let Some(list) = self.fresh_in_memory(&key).await
        {
            return UpstreamAnswer::served(list, CacheResult::Miss);
        }
        // A refresh first takes a fresher entry another replica already stored.
        if let Some(previous) = &previous
            && let Some(list) = self.fresher_in_shared(&key, previous).await
        {
            return UpstreamAnswer::served(list, CacheResult::Miss);
        }
        if let Some(why) = self.unfetched.why(&key, self.clock.instant()).await {
            return UpstreamAnswer::without_list(why, CacheResult::Miss);
        }
        // Checked before the lock: an open breaker or a rest costs the shared tier nothing.
        match self.upstream.admits(&target.registry.name) {
            Admission::Admitted => {}
            Admission::BreakerOpen => {
                return UpstreamAnswer::without_list(UpstreamResult::Skipped, CacheResult::Miss);
            }
            Admission::Resting => {
                return UpstreamAnswer::without_list(
                    UpstreamResult::RateLimited,
                    CacheResult::Miss,
                );
            }
        }
        let lock = match &self.shared {
            Some(shared) => shared.lock(&key, self.config.lock_ttl).await,
            None => Lock::Unavailable,
        };
        if lock == Lock::Lost
            && let Some(list) = self.winners_entry(&key).await
        {
            return UpstreamAnswer::served(list, CacheResult::Miss);
        }
        let previous = previous.map(|list| list.as_upstream());
        let fetched = match self.upstream.fetch(&target, &digest, previous).await {
            Fetch::Listed(list) => {
                let truncated = list.truncated;
                let cached = Arc::new(CachedList::new(list, self.clock.now_ms()));
                if truncated {
                    tracing::warn!(registry = %target.registry.name, repository = %target.repository, "upstream list cut short by a cap; served, not cached, not fetched again for cache.keep_empty_for");
                    self.remember(&key, UpstreamResult::Truncated).await;
                    UpstreamAnswer::served_once(cached, true)
                } else if self.store(&key, &cached).await {
                    UpstreamAnswer::served(cached, CacheResult::Miss)
                } else {
                    self.remember(&key, UpstreamResult::TooLarge).await;
                    UpstreamAnswer::served_once(cached, false)
                }
            }
            Fetch::Failed => UpstreamAnswer::without_list(UpstreamResult::Error, CacheResult::Miss),
            Fetch::Skipped => {
                UpstreamAnswer::without_list(UpstreamResult::Skipped, CacheResult::Miss)
            }
            Fetch::RateLimited => {
                UpstreamAnswer::without_list(UpstreamResult::RateLimited, CacheResult::Miss)
            }
            Fetch::TooLarge => {
                self.remember(&key, UpstreamResult::TooLarge).await;
                UpstreamAnswer::without_list(UpstreamResult::TooLarge, CacheResult::Miss)
            }
            Fetch::OverBudget => {
                self.remember(&key, UpstreamResult::OverBudget).await;
                UpstreamAnswer::without_list(UpstreamResult::OverBudget, CacheResult::Miss)
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
        // Shared listed in its indexes, for purges; a key no purge could find (none: keys are
        // built by `cache_key`) stays in this replica.
        if let Some(shared) = &self.shared
            && let Some(index) = ListIndex::of(&self.config.namespace, key)
        {
            shared.put(key, &bytes, lifetime, &index).await;
        }
        true
    }
}

/// The span of an upstream fetch (`name`: a miss's fetch or a refresh): in the trace of the
/// request that started it, which it may outlive (others share it, a refresh goes on after the
/// answer), so it holds no span open.
pub(super) fn fetch_span(target: &UpstreamTarget, name: &'static str) -> Span {
    let span = tracing::info_span!(
        target: telemetry::SPANS,
        parent: None,
        "upstream fetch",
        otel.name = name,
        registry = %target.registry.name,
        repository = %target.repository,
    );
    telemetry::follow_current(&span);
    span
}
