//! The shared tier as the cache uses it: a store replicas share (Redis) behind its breaker and
//! with its metrics — read and decode, store (listed in the indexes purges read), the
//! cross-replica lock and the wait for another replica's entry. Every failure is "no shared
//! tier right now", never an error to the caller.

mod store;
#[cfg(test)]
pub mod stub;
#[cfg(test)]
mod tests;

pub use store::SharedStore;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::entry::{CachedList, EntryBounds};
use super::keys::{ListIndex, lock_key};
use super::redis::RedisError;
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

/// The most of a lock's value read to tell that it is there (its token is a UUID).
const LOCK_TOKEN_BYTES: usize = 64;

/// The breaker label of the shared tier.
pub const REDIS_BREAKER: &str = "redis";

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
        let Some(found) = self.call(self.store.get(key, self.bounds.stored)).await else {
            return SharedRead::Unavailable;
        };
        let Some(bytes) = found else {
            return SharedRead::Missing;
        };
        if bytes.len() > self.bounds.stored {
            tracing::warn!(
                key,
                limit = self.bounds.stored,
                "a value over cache.max_entry_bytes under a cache key (read no further); treated as a miss"
            );
            return SharedRead::Missing;
        }
        match CachedList::decode(&bytes, self.bounds) {
            Some(list) => SharedRead::Found(list),
            None => {
                tracing::warn!(key, "unreadable value under a cache key; treated as a miss");
                SharedRead::Missing
            }
        }
    }

    /// Stores an encoded entry for `ttl`, listed in `index`; true when it was stored.
    pub async fn put(&self, key: &str, bytes: &[u8], ttl: Duration, index: &ListIndex) -> bool {
        let now_ms = self.clock.now_ms();
        let stored = self
            .call(self.store.set(key, bytes, ttl, index, now_ms))
            .await
            .is_some();
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

    /// What `index` lists now, `count` members from the `offset`th on; `None` when the tier
    /// is unavailable.
    pub async fn listed(&self, index: &str, offset: usize, count: usize) -> Option<Vec<String>> {
        let now_ms = self.clock.now_ms();
        self.call(self.store.listed(index, now_ms, offset, count))
            .await
    }

    /// Deletes `lists` of the repository of `index`, and takes them out of the index; `None`
    /// when the tier is unavailable.
    pub async fn unlist(&self, index: &ListIndex, lists: &[String]) -> Option<u64> {
        if lists.is_empty() {
            return Some(0);
        }
        self.call(self.store.unlist(index, lists)).await
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
            self.call(self.store.get(&lock, LOCK_TOKEN_BYTES)).await??;
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
