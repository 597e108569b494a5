//! The cache of upstream referrers lists: an in-process tier always, a Redis tier shared by
//! replicas when configured, stale-while-revalidate, one upstream fetch per key at a time
//! (per process, and across replicas with a Redis lock), and breakers that keep a failing
//! upstream or Redis from costing anything.

pub mod breaker;
pub mod entry;
pub mod memory;
pub mod redis;
pub mod single_flight;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_referrers::Digest;
use registry_client::RegistryClient;

use crate::config::{CacheBackend, Settings};
use crate::metrics::Metrics;
use crate::upstream::UpstreamTarget;
use breaker::{Breaker, BreakerState};
use entry::{CachedList, cache_key, lock_key};
use memory::MemoryTier;
use redis::{RedisError, RedisTier};
use single_flight::SingleFlight;

/// Consecutive Redis errors or timeouts that open its breaker, and how long it stays open:
/// while open, Redis costs nothing and the in-process tier answers alone.
const REDIS_BREAKER_FAILURES: u32 = 3;
const REDIS_BREAKER_COOLDOWN: Duration = Duration::from_secs(10);

/// How often a replica that lost the lock looks for the winner's entry.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The breaker label of the Redis tier.
pub const REDIS_BREAKER: &str = "redis";

/// What the cache did for a request (`X-Referrers-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Stale,
    Miss,
    Bypass,
}

impl CacheResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// The upstream's contribution to an answer.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    /// The upstream list, if there is one to serve.
    pub list: Option<Arc<CachedList>>,
    /// `api`, `tag`, `none`, `error`, `truncated` or `skipped` (`X-Referrers-Upstream`).
    pub upstream: &'static str,
    pub cache: CacheResult,
}

impl UpstreamAnswer {
    /// No upstream call is made for this request (no upstream, or the all-zero digest).
    #[must_use]
    pub fn skipped() -> Self {
        Self {
            list: None,
            upstream: "skipped",
            cache: CacheResult::Bypass,
        }
    }

    fn served(list: Arc<CachedList>, cache: CacheResult) -> Self {
        let upstream = source_label(&list.source);
        Self {
            list: Some(list),
            upstream,
            cache,
        }
    }
}

fn source_label(source: &str) -> &'static str {
    match source {
        "api" => "api",
        "tag" => "tag",
        _ => "none",
    }
}

/// The result of one upstream fetch, shared by everyone who waited for it.
#[derive(Debug, Clone)]
enum Fetched {
    Complete(Arc<CachedList>),
    /// Cut short by a cap: served, not stored as whole.
    Truncated(Arc<CachedList>),
    Failed,
    /// The registry's breaker is open.
    Skipped,
}

/// A cross-replica lock, as far as this replica got with it.
enum Lock {
    Won(String),
    Lost,
    /// No Redis, or Redis unavailable: go ahead alone.
    None,
}

pub struct ReferrersCache {
    settings: Settings,
    memory: MemoryTier,
    redis: Option<RedisTier>,
    redis_breaker: Breaker,
    registry_breakers: Mutex<HashMap<String, Arc<Breaker>>>,
    flights: Arc<SingleFlight<Fetched>>,
    client: RegistryClient,
    metrics: Arc<Metrics>,
}

impl ReferrersCache {
    /// The tiers `settings.cache` asks for; a Redis URL that cannot be used is an error.
    pub fn new(
        settings: &Settings,
        client: RegistryClient,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RedisError> {
        let cache = &settings.cache;
        let redis = match cache.backend {
            CacheBackend::Redis => Some(RedisTier::new(
                cache.redis_url.expose(),
                cache.redis_pool_size,
                cache.redis_timeout,
            )?),
            CacheBackend::Memory => None,
        };
        metrics
            .breaker_state
            .with_label_values(&[REDIS_BREAKER])
            .set(0);
        Ok(Self {
            memory: MemoryTier::new(cache.memory_max_bytes, Arc::clone(&metrics)),
            redis,
            redis_breaker: Breaker::new(REDIS_BREAKER_FAILURES, REDIS_BREAKER_COOLDOWN),
            registry_breakers: Mutex::new(HashMap::new()),
            flights: Arc::new(SingleFlight::default()),
            client,
            metrics,
            settings: settings.clone(),
        })
    }

    /// The upstream referrers of `digest` for `target`, from the cache when it has them.
    pub async fn upstream_referrers(
        self: &Arc<Self>,
        target: &UpstreamTarget,
        registry_id: i64,
        digest: &Digest,
    ) -> UpstreamAnswer {
        let key = cache_key(
            registry_id,
            &target.registry.base_url,
            &target.repository,
            digest,
        );
        if let Some((list, tier)) = self.lookup(&key).await {
            if list.age() < self.settings.cache.fresh_for {
                self.count_lookup(tier, CacheResult::Hit);
                return UpstreamAnswer::served(list, CacheResult::Hit);
            }
            self.count_lookup(tier, CacheResult::Stale);
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
                upstream: "truncated",
                cache: CacheResult::Miss,
            },
            Some(Fetched::Skipped) => UpstreamAnswer {
                list: None,
                upstream: "skipped",
                cache: CacheResult::Miss,
            },
            Some(Fetched::Failed) | None => UpstreamAnswer {
                list: None,
                upstream: "error",
                cache: CacheResult::Miss,
            },
        }
    }

    /// The Redis tier's state for `/readyz`: `None` without Redis.
    #[must_use]
    pub fn redis_status(&self) -> Option<(String, BreakerState)> {
        self.redis
            .as_ref()
            .map(|redis| (redis.describe(), self.redis_breaker.state()))
    }

    /// The memory tier first, then Redis; an entry found in Redis is kept in memory too.
    async fn lookup(&self, key: &str) -> Option<(Arc<CachedList>, &'static str)> {
        // The age check keeps the lifetime exact, whatever the tier's own expiry timing.
        if let Some(list) = self.memory.get(key).await
            && list.age() < self.lifetime(&list)
        {
            return Some((list, "memory"));
        }
        self.count_lookup("memory", CacheResult::Miss);
        let redis = self.redis.as_ref()?;
        if !self.redis_allows() {
            self.count_lookup("redis", CacheResult::Bypass);
            return None;
        }
        match redis.get(key).await {
            Ok(Some(bytes)) => {
                self.redis_succeeded();
                let Some(list) = CachedList::decode(&bytes) else {
                    tracing::warn!(key, "unreadable value under a cache key; treated as a miss");
                    self.count_lookup("redis", CacheResult::Miss);
                    return None;
                };
                let lifetime = self.lifetime(&list);
                let Some(left) = lifetime.checked_sub(list.age()).filter(|d| !d.is_zero()) else {
                    self.count_lookup("redis", CacheResult::Miss);
                    return None;
                };
                let list = Arc::new(list);
                self.memory.insert(key, Arc::clone(&list), left).await;
                Some((list, "redis"))
            }
            Ok(None) => {
                self.redis_succeeded();
                self.count_lookup("redis", CacheResult::Miss);
                None
            }
            Err(error) => {
                self.redis_failed(&error);
                self.count_lookup("redis", CacheResult::Bypass);
                None
            }
        }
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
                Some(Fetched::Complete(_)) => "refreshed",
                Some(Fetched::Truncated(_)) => "truncated",
                Some(Fetched::Skipped) => "skipped",
                Some(Fetched::Failed) | None => "failed",
            };
            this.metrics
                .cache_refreshes
                .with_label_values(&[outcome])
                .inc();
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
        // A refresh first takes a fresher entry another replica already stored.
        if let Some(previous) = &previous
            && let Some(list) = self.fresher_in_redis(&key, previous).await
        {
            return Fetched::Complete(list);
        }
        let name = target.registry.name.as_str();
        let breaker = self.registry_breaker(name);
        // Checked before the lock: an open breaker costs Redis nothing either.
        if !breaker.would_allow() {
            self.track_breaker(name, &breaker);
            return Fetched::Skipped;
        }
        let lock = self.lock(&key).await;
        if matches!(lock, Lock::Lost)
            && let Some(list) = self.wait_for_winner(&key).await
        {
            return Fetched::Complete(list);
        }
        let fetched = self
            .fetch_upstream(&key, &target, &digest, previous, &breaker)
            .await;
        if let (Lock::Won(token), Some(redis)) = (&lock, &self.redis)
            && let Err(error) = redis.unlock(&lock_key(&key), token).await
        {
            self.redis_failed(&error);
        }
        fetched
    }

    /// The entry under `key` in Redis, when it was fetched after `previous` and is fresh.
    async fn fresher_in_redis(&self, key: &str, previous: &CachedList) -> Option<Arc<CachedList>> {
        let redis = self.redis.as_ref()?;
        if !self.redis_allows() {
            return None;
        }
        let bytes = match redis.get(key).await {
            Ok(found) => {
                self.redis_succeeded();
                found?
            }
            Err(error) => {
                self.redis_failed(&error);
                return None;
            }
        };
        let list = CachedList::decode(&bytes)?;
        if list.fetched_at_ms <= previous.fetched_at_ms
            || list.age() >= self.settings.cache.fresh_for
        {
            return None;
        }
        let list = Arc::new(list);
        let left = self.lifetime(&list).saturating_sub(list.age());
        self.memory.insert(key, Arc::clone(&list), left).await;
        Some(list)
    }

    async fn fetch_upstream(
        &self,
        key: &str,
        target: &UpstreamTarget,
        digest: &Digest,
        previous: Option<Arc<CachedList>>,
        breaker: &Breaker,
    ) -> Fetched {
        let name = target.registry.name.as_str();
        if !breaker.allow() {
            self.track_breaker(name, breaker);
            return Fetched::Skipped;
        }
        self.track_breaker(name, breaker);
        let previous = previous.map(|list| list.as_upstream());
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
        let fetched = match result {
            Ok(list) => {
                breaker.record_success();
                let cached = Arc::new(CachedList::fetched_now(&list));
                if list.truncated {
                    tracing::warn!(registry = name, repository = %target.repository, "upstream list cut short by a cap; served, not cached");
                    Fetched::Truncated(cached)
                } else {
                    self.store(key, &cached).await;
                    Fetched::Complete(cached)
                }
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
                } else if breaker.record_failure() {
                    tracing::warn!(
                        registry = name,
                        cooldown = ?self.settings.upstream.breaker_cooldown,
                        "upstream breaker open: serving cached or local referrers only"
                    );
                }
                Fetched::Failed
            }
        };
        self.track_breaker(name, breaker);
        fetched
    }

    /// Stores a complete list in every tier, unless its stored form is over the entry bound.
    async fn store(&self, key: &str, list: &Arc<CachedList>) {
        let bytes = list.encode();
        if bytes.len() > self.settings.cache.max_entry_bytes {
            self.metrics.cache_oversize.inc();
            tracing::info!(
                key,
                bytes = bytes.len(),
                limit = self.settings.cache.max_entry_bytes,
                "upstream list over cache.max_entry_bytes: served, not cached"
            );
            return;
        }
        let lifetime = self.lifetime(list);
        self.memory.insert(key, Arc::clone(list), lifetime).await;
        self.metrics
            .cache_stores
            .with_label_values(&["memory"])
            .inc();
        let Some(redis) = &self.redis else {
            return;
        };
        if !self.redis_allows() {
            return;
        }
        match redis.set(key, &bytes, lifetime).await {
            Ok(()) => {
                self.redis_succeeded();
                self.metrics
                    .cache_stores
                    .with_label_values(&["redis"])
                    .inc();
            }
            Err(error) => self.redis_failed(&error),
        }
    }

    /// Takes the cross-replica lock of `key` when Redis is there to hold it.
    async fn lock(&self, key: &str) -> Lock {
        let Some(redis) = &self.redis else {
            return Lock::None;
        };
        if !self.redis_allows() {
            return Lock::None;
        }
        let token = uuid::Uuid::new_v4().to_string();
        match redis
            .try_lock(&lock_key(key), &token, self.settings.cache.lock_ttl)
            .await
        {
            Ok(true) => {
                self.redis_succeeded();
                self.metrics.cache_locks.with_label_values(&["won"]).inc();
                Lock::Won(token)
            }
            Ok(false) => {
                self.redis_succeeded();
                self.metrics.cache_locks.with_label_values(&["lost"]).inc();
                Lock::Lost
            }
            Err(error) => {
                self.redis_failed(&error);
                Lock::None
            }
        }
    }

    /// Another replica is fetching `key`: wait briefly for its entry.
    async fn wait_for_winner(&self, key: &str) -> Option<Arc<CachedList>> {
        let redis = self.redis.as_ref()?;
        let deadline = Instant::now()
            + self
                .settings
                .cache
                .lock_ttl
                .min(self.settings.upstream.timeout);
        while Instant::now() < deadline {
            tokio::time::sleep(LOCK_POLL_INTERVAL).await;
            if !self.redis_allows() {
                return None;
            }
            match redis.get(key).await {
                Ok(Some(bytes)) => {
                    self.redis_succeeded();
                    let list = Arc::new(CachedList::decode(&bytes)?);
                    let left = self.lifetime(&list).saturating_sub(list.age());
                    self.memory.insert(key, Arc::clone(&list), left).await;
                    return Some(list);
                }
                Ok(None) => self.redis_succeeded(),
                Err(error) => {
                    self.redis_failed(&error);
                    return None;
                }
            }
            // The winner let go without storing (failed, truncated or oversize): stop waiting.
            match redis.get(&lock_key(key)).await {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(error) => {
                    self.redis_failed(&error);
                    return None;
                }
            }
        }
        None
    }

    fn lifetime(&self, list: &CachedList) -> Duration {
        list.lifetime(
            self.settings.cache.keep_stale_for,
            self.settings.cache.keep_empty_for,
        )
    }

    fn registry_breaker(&self, name: &str) -> Arc<Breaker> {
        let mut breakers = self
            .registry_breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(breakers.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(Breaker::new(
                self.settings.upstream.breaker_failures,
                self.settings.upstream.breaker_cooldown,
            ))
        }))
    }

    fn track_breaker(&self, name: &str, breaker: &Breaker) {
        self.metrics
            .breaker_state
            .with_label_values(&[name])
            .set(breaker.state().gauge());
    }

    fn redis_allows(&self) -> bool {
        let allowed = self.redis_breaker.allow();
        self.track_breaker(REDIS_BREAKER, &self.redis_breaker);
        allowed
    }

    fn redis_succeeded(&self) {
        if self.redis_breaker.state() != BreakerState::Closed {
            tracing::info!("Redis answers again: the shared cache tier is back");
        }
        self.redis_breaker.record_success();
        self.track_breaker(REDIS_BREAKER, &self.redis_breaker);
    }

    fn redis_failed(&self, error: &RedisError) {
        self.metrics.redis_errors.inc();
        if self.redis_breaker.record_failure() {
            tracing::warn!(
                error = %error,
                cooldown = ?REDIS_BREAKER_COOLDOWN,
                "Redis unavailable: breaker open, answering from the in-process tier"
            );
        } else {
            tracing::debug!(error = %error, "Redis call failed");
        }
        self.track_breaker(REDIS_BREAKER, &self.redis_breaker);
    }

    fn count_lookup(&self, tier: &str, result: CacheResult) {
        self.metrics
            .cache_lookups
            .with_label_values(&[tier, result.as_str()])
            .inc();
    }
}
