//! What the cache takes from the configuration, and the shared tier `cache.backend` asks for.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::keys;
use super::policy::Lifetimes;
use super::redis::{RedisError, RedisTier};
use super::shared::SharedStore;
use crate::config::{CacheBackend, CacheSettings};

/// What the cache takes from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The first segment of every key after the version (`cache.namespace`, else a hash of
    /// `harbor.url`).
    pub namespace: String,
    pub lifetimes: Lifetimes,
    /// Lists whose stored form is larger are served, not stored (`cache.max_entry_bytes`).
    pub max_entry_bytes: usize,
    /// The in-process tier's bound (`cache.memory_max_bytes`).
    pub memory_max_bytes: u64,
    /// How long the cross-replica lock is held at most (`cache.lock_ttl`).
    pub lock_ttl: Duration,
    /// How long a replica that lost the lock waits for the winner's entry: no longer than the
    /// lock, nor than the winner's fetch may take (`upstream.timeout`).
    pub lock_wait: Duration,
}

impl CacheConfig {
    #[must_use]
    pub fn new(cache: &CacheSettings, upstream_timeout: Duration, harbor_url: &Url) -> Self {
        Self {
            namespace: keys::namespace(cache.namespace.as_deref(), harbor_url),
            lifetimes: Lifetimes {
                fresh_for: cache.fresh_for,
                keep_stale_for: cache.keep_stale_for,
                keep_empty_for: cache.keep_empty_for,
            },
            max_entry_bytes: cache.max_entry_bytes,
            memory_max_bytes: cache.memory_max_bytes,
            lock_ttl: cache.lock_ttl,
            lock_wait: cache.lock_ttl.min(upstream_timeout),
        }
    }
}

/// The shared tier `cache.backend` asks for; a Redis URL that cannot be used is an error.
pub fn shared_store(cache: &CacheSettings) -> Result<Option<Arc<dyn SharedStore>>, RedisError> {
    Ok(match cache.backend {
        CacheBackend::Redis => Some(Arc::new(RedisTier::new(
            &cache.redis_url,
            cache.redis_pool_size,
            cache.redis_timeout,
        )?)),
        CacheBackend::Memory => None,
    })
}
