//! The in-process tier, always on: lists in their prepared form, ready to serve, bounded by the
//! bytes that form takes (`cache.memory_max_bytes`), each expiring at the end of its own
//! lifetime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::entry::CachedList;
use crate::metrics::Metrics;

/// Held in moka's own entry, not behind another `Arc`: cloning it for a read is one reference
/// count, and an entry saves an allocation.
#[derive(Debug, Clone)]
struct Stored {
    list: Arc<CachedList>,
    weight: u32,
    /// Time left to live when stored.
    time_to_live: Duration,
}

struct PerEntryLifetime;

impl Expiry<String, Stored> for PerEntryLifetime {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Stored,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.time_to_live)
    }

    /// A refreshed entry lives from its new fetch time, not its first one.
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.time_to_live)
    }
}

/// What an entry costs beyond its descriptors and its key: moka's node (with its place in the
/// eviction and expiry queues), the `Arc`s and the allocator's rounding. Measured: 10,000
/// entries of 10 descriptors took 450 bytes of RSS per descriptor (`scripts/bench.sh memory`)
/// where this weight, at 256, counted 388; at 880 the weight matches, so
/// `cache.memory_max_bytes` bounds what the tier really takes.
const ENTRY_OVERHEAD: usize = 880;

pub struct MemoryTier {
    cache: Cache<String, Stored>,
    metrics: Arc<Metrics>,
}

impl MemoryTier {
    #[must_use]
    pub fn new(max_bytes: u64, metrics: Arc<Metrics>) -> Self {
        let evictions = Arc::clone(&metrics);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, value: &Stored| value.weight)
            .expire_after(PerEntryLifetime)
            .eviction_listener(move |_key, _value, cause| {
                if cause == RemovalCause::Size {
                    evictions.cache_evictions.inc();
                }
            })
            .build();
        Self { cache, metrics }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<CachedList>> {
        self.cache.get(key).await.map(|stored| stored.list)
    }

    /// Keeps `list` for `time_to_live`, weighed by what it takes in memory: its descriptors'
    /// JSON and their index, plus the key and a fixed overhead (not its compressed stored form,
    /// which is several times smaller).
    pub async fn insert(&self, key: &str, list: Arc<CachedList>, time_to_live: Duration) {
        if time_to_live.is_zero() {
            return;
        }
        let weight = key.len() + ENTRY_OVERHEAD + list.descriptors.heap_size();
        let stored = Stored {
            list,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            time_to_live,
        };
        self.cache.insert(key.to_owned(), stored).await;
        self.track_size().await;
    }

    /// How many entries have a key `matches` accepts (a walk over the whole tier).
    pub fn count_matching(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.cache.iter().filter(|(key, _)| matches(key)).count()
    }

    /// Drops every entry whose key `matches` accepts; returns their keys.
    pub async fn remove_matching(&self, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let keys: Vec<String> = self
            .cache
            .iter()
            .filter(|(key, _)| matches(key))
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        for key in &keys {
            self.cache.invalidate(key).await;
        }
        self.track_size().await;
        keys
    }

    async fn track_size(&self) {
        self.cache.run_pending_tasks().await;
        self.metrics
            .cache_memory_entries
            .set(i64::try_from(self.cache.entry_count()).unwrap_or(i64::MAX));
        self.metrics
            .cache_memory_bytes
            .set(i64::try_from(self.cache.weighted_size()).unwrap_or(i64::MAX));
    }
}
