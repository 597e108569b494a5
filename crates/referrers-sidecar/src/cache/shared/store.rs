//! The commands the cache needs from a store replicas share, and Redis's answer to them.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::cache::keys::ListIndex;
use crate::cache::redis::{RedisError, RedisTier};

/// The commands the cache needs from a shared store; Redis in production.
pub trait SharedStore: Send + Sync {
    /// The value under `key`, at most `max_bytes` + 1 bytes of it (a longer one is told by its
    /// length); `None` when there is none.
    fn get<'a>(
        &'a self,
        key: &'a str,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>>;
    /// Stores the list `value` under `key` for `ttl`, and lists it in `index` until then
    /// (`now_ms`: the caller's clock).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        index: &'a ListIndex,
        now_ms: u64,
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
    /// What the index `index` (one of [`ListIndex`]'s) lists as of `now_ms`, soonest to
    /// expire first: `count` members from the `offset`th on.
    fn listed<'a>(
        &'a self,
        index: &'a str,
        now_ms: u64,
        offset: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RedisError>>;
    /// Deletes `lists` of the repository of `index` and takes them out of its index (and the
    /// repository out of its registry's once it lists no more); returns how many existed.
    fn unlist<'a>(
        &'a self,
        index: &'a ListIndex,
        lists: &'a [String],
    ) -> BoxFuture<'a, Result<u64, RedisError>>;
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
    fn get<'a>(
        &'a self,
        key: &'a str,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RedisError>> {
        RedisTier::get(self, key, max_bytes).boxed()
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        index: &'a ListIndex,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(), RedisError>> {
        RedisTier::set(self, key, value, ttl, index, now_ms).boxed()
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

    fn listed<'a>(
        &'a self,
        index: &'a str,
        now_ms: u64,
        offset: usize,
        count: usize,
    ) -> BoxFuture<'a, Result<Vec<String>, RedisError>> {
        RedisTier::listed(self, index, now_ms, offset, count).boxed()
    }

    fn unlist<'a>(
        &'a self,
        index: &'a ListIndex,
        lists: &'a [String],
    ) -> BoxFuture<'a, Result<u64, RedisError>> {
        RedisTier::unlist(self, index, lists).boxed()
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
