//! The shared tier as the cache uses it: a store replicas share (Redis) behind its breaker and
//! with its metrics — read and decode, store, the cross-replica lock and the wait for another
//! replica's entry. Every failure is "no shared tier right now", never an error to the caller.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use super::entry::{CachedList, EntryBounds};
use super::keys::lock_key;
use super::redis::{RedisError, RedisTier};
use crate::breaker::{Breaker, BreakerState, Change, Verdict};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outcome::{LockResult, Tier};

/// Consecutive errors or timeouts that open the breaker, and how long it stays open: while
/// open, the shared tier costs nothing and the in-process tier answers alone.
const BREAKER_FAILURES: u32 = 3;
const BREAKER_COOLDOWN: Duration = Duration::from_secs(10);

/// How often a replica that lost the lock looks for the winner's entry.
const LOCK_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The breaker label of the shared tier.
pub const REDIS_BREAKER: &str = "redis";

/// The commands the cache needs from a shared store; Redis in production.
pub trait SharedStore: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>>;
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RedisError>>;
    /// Sets `key` to `token` for `ttl` unless it exists: true when this caller set it.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, RedisError>>;
    /// Deletes `key` only while it holds `token`.
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), RedisError>>;
    /// Every key matching the glob `pattern`.
    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, RedisError>>;
    /// Deletes `keys`; returns how many existed.
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, RedisError>>;
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RedisError>>;
    /// The messages of `channel` from now on, until the connection ends.
    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, RedisError>>;
    /// Where the store is, with any password masked.
    fn describe(&self) -> String;
}

impl SharedStore for RedisTier {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>> {
        RedisTier::get(self, key).boxed()
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        RedisTier::set(self, key, value, ttl).boxed()
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        token: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, RedisError>> {
        RedisTier::try_lock(self, key, token, ttl).boxed()
    }

    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> BoxFuture<'a, Result<(), RedisError>> {
        RedisTier::unlock(self, key, token).boxed()
    }

    fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, RedisError>> {
        RedisTier::scan(self, pattern).boxed()
    }

    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, RedisError>> {
        RedisTier::delete(self, keys).boxed()
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        message: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        RedisTier::publish(self, channel, message).boxed()
    }

    fn subscribe<'a>(
        &'a self,
        channel: &'a str,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, RedisError>> {
        RedisTier::subscribe(self, channel).boxed()
    }

    fn describe(&self) -> String {
        RedisTier::describe(self)
    }
}

/// What a read of the shared tier found.
#[derive(Debug)]
pub enum SharedRead {
    Found(CachedList),
    /// Nothing under the key, or a value this version cannot read (later overwritten).
    Missing,
    /// The breaker is open or the call failed.
    Unavailable,
}

/// A cross-replica lock or claim, as far as this replica got with it.
#[derive(Debug, PartialEq, Eq)]
pub enum Lock {
    /// Held with this token until released or its TTL runs out.
    Won(String),
    /// Another replica holds it.
    Lost,
    /// The shared tier is unavailable: go ahead alone.
    Unavailable,
}

/// The shared tier's state, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    Up,
    /// The breaker is open: not called until its cool-down ends.
    Down,
    /// One call is out to find out whether it is back.
    Probing,
}

impl SharedState {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Probing => "probing",
        }
    }
}

/// Where the shared tier is (password masked) and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedReport {
    pub url: String,
    pub state: SharedState,
}

pub struct SharedTier {
    store: Arc<dyn SharedStore>,
    /// A value over these is a miss: another writer's, or hostile.
    bounds: EntryBounds,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl SharedTier {
    #[must_use]
    pub fn new(
        store: Arc<dyn SharedStore>,
        bounds: EntryBounds,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let tier = Self {
            store,
            bounds,
            breaker: Breaker::new(BREAKER_FAILURES, BREAKER_COOLDOWN),
            clock,
            metrics,
        };
        tier.metrics
            .set_breaker_state(REDIS_BREAKER, tier.breaker.state().gauge());
        tier
    }

    #[must_use]
    pub fn report(&self) -> SharedReport {
        SharedReport {
            url: self.store.describe(),
            state: match self.breaker.state() {
                BreakerState::Closed => SharedState::Up,
                BreakerState::Open => SharedState::Down,
                BreakerState::HalfOpen => SharedState::Probing,
            },
        }
    }

    /// The entry under `key`, decoded.
    pub async fn read(&self, key: &str) -> SharedRead {
        let Some(found) = self.call(self.store.get(key)).await else {
            return SharedRead::Unavailable;
        };
        let Some(bytes) = found else {
            return SharedRead::Missing;
        };
        match CachedList::decode(&bytes, self.bounds) {
            Some(list) => SharedRead::Found(list),
            None => {
                tracing::warn!(key, "unreadable value under a cache key; treated as a miss");
                SharedRead::Missing
            }
        }
    }

    /// Stores an encoded entry for `ttl`; true when it was stored.
    pub async fn put(&self, key: &str, bytes: &[u8], ttl: Duration) -> bool {
        let stored = self.call(self.store.set(key, bytes, ttl)).await.is_some();
        if stored {
            self.metrics.count_cache_store(Tier::Redis);
        }
        stored
    }

    /// Takes the cross-replica lock of `key` for `ttl`.
    pub async fn lock(&self, key: &str, ttl: Duration) -> Lock {
        let lock = self.take(&lock_key(key), ttl).await;
        match lock {
            Lock::Won(_) => self.metrics.count_lock(LockResult::Won),
            Lock::Lost => self.metrics.count_lock(LockResult::Lost),
            Lock::Unavailable => {}
        }
        lock
    }

    /// Releases a lock this replica won; one another replica took after it expired stays.
    pub async fn unlock(&self, key: &str, token: &str) {
        self.release(&lock_key(key), token).await;
    }

    /// Sets `key` (a lock or a claim, as [`super::keys`] names it) to a new token for `ttl`,
    /// unless it exists.
    pub async fn take(&self, key: &str, ttl: Duration) -> Lock {
        let token = uuid::Uuid::new_v4().to_string();
        match self.call(self.store.try_lock(key, &token, ttl)).await {
            Some(true) => Lock::Won(token),
            Some(false) => Lock::Lost,
            None => Lock::Unavailable,
        }
    }

    /// Deletes `key` while it holds `token`: what [`Self::take`] won.
    pub async fn release(&self, key: &str, token: &str) {
        let _ = self.call(self.store.unlock(key, token)).await;
    }

    /// Deletes the keys matching `pattern` that `matches` accepts (a `SCAN` pattern may take
    /// more than a purge does: lock keys); returns them, `None` when the tier is unavailable.
    pub async fn remove_matching(
        &self,
        pattern: &str,
        matches: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        let mut keys = self.call(self.store.scan(pattern)).await?;
        keys.retain(|key| matches(key));
        self.call(self.store.delete(&keys)).await?;
        Some(keys)
    }

    /// Publishes `message` on `channel`; false when the tier is unavailable.
    pub async fn publish(&self, channel: &str, message: &[u8]) -> bool {
        self.call(self.store.publish(channel, message))
            .await
            .is_some()
    }

    /// The store, for a subscription: a long-lived connection of its own, outside the
    /// breaker (it reconnects at its own pace).
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SharedStore> {
        &self.store
    }

    /// Another replica holds the lock of `key`: polls for its entry until it is stored, the
    /// lock is let go without one (the winner failed, or its list is not stored whole), the
    /// shared tier fails, or `patience` runs out.
    pub async fn wait_for_winner(&self, key: &str, patience: Duration) -> Option<CachedList> {
        let deadline = self.clock.instant() + patience;
        let lock = lock_key(key);
        while self.clock.instant() < deadline {
            self.clock.sleep(LOCK_POLL_INTERVAL).await;
            match self.read(key).await {
                SharedRead::Found(list) => return Some(list),
                SharedRead::Unavailable => return None,
                SharedRead::Missing => {}
            }
            // The winner let go without storing (failed, truncated or oversize): stop waiting.
            self.call(self.store.get(&lock)).await??;
        }
        None
    }

    /// Runs one call behind the breaker: `None` when the breaker is open or the call failed.
    async fn call<T>(&self, call: BoxFuture<'_, Result<T, RedisError>>) -> Option<T> {
        let called = self
            .breaker
            .call(
                || self.clock.instant(),
                |state| self.metrics.set_breaker_state(REDIS_BREAKER, state.gauge()),
                call,
                |result| match result {
                    Ok(_) => Verdict::Healthy,
                    Err(_) => Verdict::Failed,
                },
            )
            .await?;
        match &called.value {
            Ok(_) if called.change == Some(Change::Closed) => {
                tracing::info!("Redis answers again: the shared cache tier is back");
            }
            Ok(_) => {}
            Err(error) => {
                self.metrics.redis_errors.inc();
                if called.change == Some(Change::Opened) {
                    tracing::warn!(
                        error = %error,
                        cooldown = ?self.breaker.cooldown(),
                        "Redis unavailable: breaker open, answering from the in-process tier"
                    );
                } else {
                    tracing::debug!(error = %error, "Redis call failed");
                }
            }
        }
        called.value.ok()
    }
}

#[cfg(test)]
pub mod stub {
    //! A shared store in process, with failure injection.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// How the stub store misbehaves.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        None,
        /// Refuses every call, as a stopped Redis does.
        Down,
        /// Every call runs into the timeout, as a frozen or black-holed Redis does.
        Slow,
        /// Every read returns bytes that are not an entry.
        Corrupt,
        /// Reads never answer: their caller gives up or goes away first.
        Hang,
    }

    #[derive(Default)]
    struct State {
        values: HashMap<String, Vec<u8>>,
        ttls: HashMap<String, Duration>,
        calls: HashMap<&'static str, usize>,
        published: Vec<(String, Vec<u8>)>,
        fault: Option<Fault>,
    }

    #[derive(Default)]
    pub struct StubStore {
        state: Mutex<State>,
    }

    impl StubStore {
        pub fn inject(&self, fault: Fault) {
            self.lock().fault = Some(fault).filter(|f| *f != Fault::None);
        }

        /// Calls of a command so far (`get`, `set`, `try_lock`, `unlock`).
        pub fn calls(&self, command: &'static str) -> usize {
            self.lock().calls.get(command).copied().unwrap_or(0)
        }

        pub fn value(&self, key: &str) -> Option<Vec<u8>> {
            self.lock().values.get(key).cloned()
        }

        pub fn ttl(&self, key: &str) -> Option<Duration> {
            self.lock().ttls.get(key).copied()
        }

        /// Writes as another replica would.
        pub fn put(&self, key: &str, value: &[u8]) {
            self.lock().values.insert(key.to_owned(), value.to_vec());
        }

        /// Messages published so far, by channel.
        pub fn published(&self) -> Vec<(String, Vec<u8>)> {
            self.lock().published.clone()
        }

        pub fn remove(&self, key: &str) {
            self.lock().values.remove(key);
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, State> {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        fn enter(
            &self,
            command: &'static str,
        ) -> Result<std::sync::MutexGuard<'_, State>, RedisError> {
            let mut state = self.lock();
            *state.calls.entry(command).or_default() += 1;
            match state.fault {
                Some(Fault::Down) => Err(RedisError::Pool("connection refused".into())),
                Some(Fault::Slow) => Err(RedisError::Timeout),
                _ => Ok(state),
            }
        }
    }

    // Each call does its work when polled, as Redis calls do: one the breaker stops never
    // reaches the store.
    impl SharedStore for StubStore {
        fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>> {
            async move {
                let found = {
                    let state = self.enter("get")?;
                    match state.fault {
                        Some(Fault::Hang) => None,
                        Some(Fault::Corrupt) => Some(Some(b"RS\x02 not deflate".to_vec())),
                        _ => Some(state.values.get(key).cloned()),
                    }
                };
                match found {
                    Some(value) => Ok(value),
                    None => futures_util::future::pending().await,
                }
            }
            .boxed()
        }

        fn set<'a>(
            &'a self,
            key: &'a str,
            value: &'a [u8],
            ttl: Duration,
        ) -> BoxFuture<'a, Result<(), RedisError>> {
            async move {
                let mut state = self.enter("set")?;
                state.values.insert(key.to_owned(), value.to_vec());
                state.ttls.insert(key.to_owned(), ttl);
                Ok(())
            }
            .boxed()
        }

        fn try_lock<'a>(
            &'a self,
            key: &'a str,
            token: &'a str,
            ttl: Duration,
        ) -> BoxFuture<'a, Result<bool, RedisError>> {
            async move {
                let mut state = self.enter("try_lock")?;
                if state.values.contains_key(key) {
                    return Ok(false);
                }
                state
                    .values
                    .insert(key.to_owned(), token.as_bytes().to_vec());
                state.ttls.insert(key.to_owned(), ttl);
                Ok(true)
            }
            .boxed()
        }

        fn unlock<'a>(
            &'a self,
            key: &'a str,
            token: &'a str,
        ) -> BoxFuture<'a, Result<(), RedisError>> {
            async move {
                let mut state = self.enter("unlock")?;
                if state
                    .values
                    .get(key)
                    .is_some_and(|held| held == token.as_bytes())
                {
                    state.values.remove(key);
                }
                Ok(())
            }
            .boxed()
        }

        fn scan<'a>(&'a self, pattern: &'a str) -> BoxFuture<'a, Result<Vec<String>, RedisError>> {
            async move {
                // Prefix patterns only: what the purge tests need.
                let prefix = pattern.split('*').next().unwrap_or_default();
                let state = self.enter("scan")?;
                Ok(state
                    .values
                    .keys()
                    .filter(|key| key.starts_with(prefix))
                    .cloned()
                    .collect())
            }
            .boxed()
        }

        fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<u64, RedisError>> {
            async move {
                let mut state = self.enter("delete")?;
                Ok(keys
                    .iter()
                    .filter(|key| state.values.remove(key.as_str()).is_some())
                    .count() as u64)
            }
            .boxed()
        }

        fn publish<'a>(
            &'a self,
            channel: &'a str,
            message: &'a [u8],
        ) -> BoxFuture<'a, Result<(), RedisError>> {
            async move {
                let mut state = self.enter("publish")?;
                state.published.push((channel.to_owned(), message.to_vec()));
                Ok(())
            }
            .boxed()
        }

        fn subscribe<'a>(
            &'a self,
            _channel: &'a str,
        ) -> BoxFuture<'a, Result<BoxStream<'static, Vec<u8>>, RedisError>> {
            async move {
                drop(self.enter("subscribe")?);
                Ok(futures_util::StreamExt::boxed(
                    futures_util::stream::pending::<Vec<u8>>(),
                ))
            }
            .boxed()
        }

        fn describe(&self) -> String {
            "redis://stub:6379/10".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stub::{Fault, StubStore};
    use super::*;
    use crate::clock::ManualClock;
    use oci_referrers::PreparedList;
    use registry_client::ReferrersSource;

    const KEY: &str = "referrers-sidecar:v2:ns:1:abc:def:library/nginx@sha256:0";

    struct World {
        store: Arc<StubStore>,
        clock: Arc<ManualClock>,
        metrics: Arc<Metrics>,
        tier: SharedTier,
    }

    fn world() -> World {
        let store = Arc::new(StubStore::default());
        let clock = Arc::new(ManualClock::at(1_700_000_000_000));
        let metrics = Arc::new(Metrics::new(&[]).unwrap());
        let tier = SharedTier::new(
            Arc::clone(&store) as Arc<dyn SharedStore>,
            EntryBounds::new(1024 * 1024),
            Arc::clone(&clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
        );
        World {
            store,
            clock,
            metrics,
            tier,
        }
    }

    fn list() -> CachedList {
        CachedList {
            fetched_at_ms: 1_700_000_000_000,
            source: ReferrersSource::Api,
            tag_digest: None,
            descriptors: PreparedList::default(),
        }
    }

    impl World {
        fn breaker_gauge(&self) -> i64 {
            self.metrics
                .breaker_state
                .with_label_values(&[REDIS_BREAKER])
                .get()
        }
    }

    #[tokio::test]
    async fn reads_what_was_put_and_counts_the_store() {
        let w = world();
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
        let ttl = Duration::from_secs(60);
        assert!(w.tier.put(KEY, &list().encode(), ttl).await);
        assert_eq!(w.store.ttl(KEY), Some(ttl));
        match w.tier.read(KEY).await {
            SharedRead::Found(found) => assert_eq!(found, list()),
            other => panic!("{other:?}"),
        }
        let stores = w.metrics.cache_stores.with_label_values(&["redis"]).get();
        assert_eq!(stores, 1);
        assert_eq!(w.tier.report().state, SharedState::Up);
    }

    #[tokio::test]
    async fn a_corrupt_value_is_a_miss_and_no_failure() {
        let w = world();
        w.store.inject(Fault::Corrupt);
        for _ in 0..5 {
            assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
        }
        assert_eq!(w.tier.report().state, SharedState::Up);
        assert_eq!(w.metrics.redis_errors.get(), 0);
    }

    #[tokio::test]
    async fn a_down_store_opens_the_breaker_then_costs_nothing_until_a_probe_closes_it() {
        let w = world();
        w.store.inject(Fault::Down);
        for _ in 0..BREAKER_FAILURES {
            assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        }
        assert_eq!(w.tier.report().state, SharedState::Down);
        assert_eq!(w.breaker_gauge(), 1);
        assert_eq!(w.metrics.redis_errors.get(), u64::from(BREAKER_FAILURES));

        // Open: nothing reaches the store.
        let calls = w.store.calls("get");
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        assert!(!w.tier.put(KEY, b"v", Duration::from_secs(1)).await);
        assert_eq!(
            w.tier.lock(KEY, Duration::from_secs(1)).await,
            Lock::Unavailable
        );
        assert_eq!(w.store.calls("get"), calls);
        assert_eq!(w.store.calls("set") + w.store.calls("try_lock"), 0);

        // After the cool-down one probe goes; it fails, so the breaker opens again.
        w.clock.advance(BREAKER_COOLDOWN);
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        assert_eq!(w.store.calls("get"), calls + 1);
        assert_eq!(w.tier.report().state, SharedState::Down);

        // Back up: the next probe succeeds and closes it.
        w.store.inject(Fault::None);
        w.clock.advance(BREAKER_COOLDOWN);
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
        assert_eq!(w.tier.report().state, SharedState::Up);
        assert_eq!(w.breaker_gauge(), 0);
        assert!(w.tier.put(KEY, b"v", Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn a_probe_whose_caller_went_away_reports_probing_until_the_next_cool_down() {
        let w = world();
        w.store.inject(Fault::Down);
        for _ in 0..BREAKER_FAILURES {
            assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        }
        w.clock.advance(BREAKER_COOLDOWN);
        w.store.inject(Fault::Hang);
        assert!(w.tier.read(KEY).now_or_never().is_none(), "the probe hangs");
        assert_eq!(w.tier.report().state, SharedState::Probing);
        assert_eq!(w.breaker_gauge(), 2);
        w.store.inject(Fault::None);
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        w.clock.advance(BREAKER_COOLDOWN);
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
        assert_eq!(w.tier.report().state, SharedState::Up);
    }

    #[tokio::test]
    async fn slow_calls_count_as_failures() {
        let w = world();
        w.store.inject(Fault::Slow);
        assert_eq!(
            w.tier.lock(KEY, Duration::from_secs(1)).await,
            Lock::Unavailable
        );
        assert!(!w.tier.put(KEY, b"v", Duration::from_secs(1)).await);
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
        assert_eq!(w.tier.report().state, SharedState::Down);
    }

    #[tokio::test]
    async fn the_lock_is_won_once_and_released_by_its_holder() {
        let w = world();
        let ttl = Duration::from_secs(10);
        let Lock::Won(token) = w.tier.lock(KEY, ttl).await else {
            panic!("the first caller wins");
        };
        assert_eq!(w.store.ttl(&lock_key(KEY)), Some(ttl));
        assert_eq!(w.tier.lock(KEY, ttl).await, Lock::Lost);
        w.tier.unlock(KEY, "another replica's token").await;
        assert_eq!(w.tier.lock(KEY, ttl).await, Lock::Lost);
        w.tier.unlock(KEY, &token).await;
        assert!(matches!(w.tier.lock(KEY, ttl).await, Lock::Won(_)));
        let locks = |result| w.metrics.cache_locks.with_label_values(&[result]).get();
        assert_eq!((locks("won"), locks("lost")), (2, 2));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_winners_entry() {
        let w = world();
        w.store.put(&lock_key(KEY), b"winner");
        let waiting = w.tier.wait_for_winner(KEY, Duration::from_secs(10));
        let (found, ()) = futures_util::join!(waiting, async {
            // The winner stores its entry while the loser polls.
            while w.store.calls("get") < 4 {
                tokio::task::yield_now().await;
            }
            w.store.put(KEY, &list().encode());
            w.store.remove(&lock_key(KEY));
        });
        assert_eq!(found, Some(list()));
    }

    #[tokio::test]
    async fn a_lock_let_go_without_an_entry_ends_the_wait() {
        let w = world();
        w.store.put(&lock_key(KEY), b"winner");
        let started = w.clock.instant();
        let waiting = w.tier.wait_for_winner(KEY, Duration::from_secs(10));
        let (found, ()) = futures_util::join!(waiting, async {
            while w.store.calls("get") < 4 {
                tokio::task::yield_now().await;
            }
            w.store.remove(&lock_key(KEY));
        });
        assert_eq!(found, None);
        assert!(w.clock.instant() - started < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_lock_held_to_the_end_ends_the_wait_at_its_deadline() {
        let w = world();
        w.store
            .put(&lock_key(KEY), b"abandoned by a replica that died");
        let started = w.clock.instant();
        let patience = Duration::from_secs(10);
        assert_eq!(w.tier.wait_for_winner(KEY, patience).await, None);
        let waited = w.clock.instant() - started;
        assert!(waited >= patience && waited < patience + LOCK_POLL_INTERVAL * 2);
    }

    #[tokio::test]
    async fn a_failing_store_ends_the_wait() {
        let w = world();
        w.store.put(&lock_key(KEY), b"winner");
        w.store.inject(Fault::Down);
        assert_eq!(
            w.tier.wait_for_winner(KEY, Duration::from_secs(10)).await,
            None
        );
        assert_eq!(w.store.calls("get"), 1);
    }
}
