//! The `cache` section: the in-process tier's bounds, the shared Redis tier, and how long lists
//! are served.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RedisUrl;
use super::human_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// `memory` or `redis`; the in-process tier is always on.
    pub backend: CacheBackend,
    /// `redis://`, `rediss://` or Harbor's `redis+sentinel://h1:26379,h2:26379/<master>/<db>`.
    pub redis_url: RedisUrl,
    pub redis_pool_size: usize,
    #[serde(with = "human_duration")]
    pub redis_timeout: Duration,
    #[serde(with = "human_duration")]
    pub fresh_for: Duration,
    #[serde(with = "human_duration")]
    pub keep_stale_for: Duration,
    #[serde(with = "human_duration")]
    pub keep_empty_for: Duration,
    pub max_entry_bytes: usize,
    pub memory_max_bytes: u64,
    /// Written answers kept for identical requests (and their gzip form), in bytes; 0: none.
    pub answer_memo_bytes: u64,
    #[serde(with = "human_duration")]
    pub lock_ttl: Duration,
    /// Keeps this Harbor's entries apart from another's sharing the Redis DB; `None`: a hash
    /// of `harbor.url`.
    pub namespace: Option<String>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            redis_url: "redis://harbor-redis:6379/10"
                .parse()
                .expect("the default Redis URL parses"),
            redis_pool_size: 16,
            redis_timeout: Duration::from_millis(250),
            fresh_for: Duration::from_secs(10 * 60),
            keep_stale_for: Duration::from_secs(7 * 24 * 3600),
            keep_empty_for: Duration::from_secs(3600),
            max_entry_bytes: 1024 * 1024,
            memory_max_bytes: 64 * 1024 * 1024,
            answer_memo_bytes: 16 * 1024 * 1024,
            lock_ttl: Duration::from_secs(10),
            namespace: None,
        }
    }
}
