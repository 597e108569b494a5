//! The in-process tier, always on: lists in their prepared form, ready to serve, bounded by the
//! bytes that form takes (`cache.memory_max_bytes`), each expiring at the end of its own
//! lifetime; and which keys each Harbor registry has there, so that a purge or a count looks at
//! that registry's keys only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::entry::CachedList;
use super::keys::ListKey;
use crate::metrics::Metrics;

/// Held in moka's own entry, not behind another `Arc`: cloning it for a read is one reference
/// count, and an entry saves an allocation.
#[derive(Debug, Clone)]
struct Stored {
    list: Arc<CachedList>,
    weight: u32,
    /// Time left to live when stored.
    time_to_live: Duration,
    /// The Harbor registry whose list it is, as its key says.
    registry_id: Option<i64>,
}

/// The keys of each Harbor registry in the tier, each with how many of its values moka holds
/// or has yet to report removed: a value is counted when inserted and uncounted when moka
/// reports it gone (replaced, expired, evicted or invalidated, each reported once), so the
/// count stays right whatever order concurrent inserts and removals of a key take.
#[derive(Default)]
struct RegistryKeys(Mutex<HashMap<i64, HashMap<String, u32>>>);

impl RegistryKeys {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, HashMap<String, u32>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn inserted(&self, registry_id: i64, key: &str) {
        let mut registries = self.lock();
        let keys = registries.entry(registry_id).or_default();
        match keys.get_mut(key) {
            Some(values) => *values += 1,
            None => {
                keys.insert(key.to_owned(), 1);
            }
        }
    }

    fn removed(&self, registry_id: i64, key: &str) {
        let mut registries = self.lock();
        let Some(keys) = registries.get_mut(&registry_id) else {
            return;
        };
        if let Some(values) = keys.get_mut(key) {
            *values -= 1;
            if *values == 0 {
                keys.remove(key);
            }
        }
        if keys.is_empty() {
            registries.remove(&registry_id);
        }
    }

    /// The keys of `registry_id` that `matches` accepts.
    fn matching(&self, registry_id: i64, matches: impl Fn(&str) -> bool) -> Vec<String> {
        self.lock()
            .get(&registry_id)
            .map(|keys| keys.keys().filter(|key| matches(key)).cloned().collect())
            .unwrap_or_default()
    }

    fn count(&self, registry_id: i64) -> usize {
        self.lock().get(&registry_id).map_or(0, HashMap::len)
    }
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

/// What an entry's place in [`RegistryKeys`] costs beyond its key's bytes: the key's `String`
/// and the count, and the hash table's slot around them (estimated, not measured).
const REGISTRY_KEY_OVERHEAD: usize = 64;

pub struct MemoryTier {
    cache: Cache<String, Stored>,
    registries: Arc<RegistryKeys>,
    /// The namespace of the keys, to read a key's registry.
    namespace: String,
    metrics: Arc<Metrics>,
}

impl MemoryTier {
    #[must_use]
    pub fn new(max_bytes: u64, namespace: String, metrics: Arc<Metrics>) -> Self {
        let evictions = Arc::clone(&metrics);
        let registries = Arc::new(RegistryKeys::default());
        let removed = Arc::clone(&registries);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, value: &Stored| value.weight)
            .expire_after(PerEntryLifetime)
            .eviction_listener(move |key: Arc<String>, value: Stored, cause| {
                if cause == RemovalCause::Size {
                    evictions.cache_evictions.inc();
                }
                if let Some(registry_id) = value.registry_id {
                    removed.removed(registry_id, &key);
                }
            })
            .build();
        Self {
            cache,
            registries,
            namespace,
            metrics,
        }
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
        let registry_id = ListKey::parse(&self.namespace, key).map(|list| list.registry_id);
        let weight =
            2 * key.len() + ENTRY_OVERHEAD + REGISTRY_KEY_OVERHEAD + list.descriptors.heap_size();
        let stored = Stored {
            list,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            time_to_live,
            registry_id,
        };
        // Counted before moka holds it: moka reports its removal, at the earliest, after.
        if let Some(registry_id) = registry_id {
            self.registries.inserted(registry_id, key);
        }
        self.cache.insert(key.to_owned(), stored).await;
        self.track_size().await;
    }

    /// How many keys Harbor registry `registry_id` has in the tier (its own keys are counted,
    /// no others are looked at).
    pub fn count_of(&self, registry_id: i64) -> usize {
        self.registries.count(registry_id)
    }

    /// Drops the entries of Harbor registry `registry_id` whose key `matches` accepts; returns
    /// their keys. Only that registry's keys are looked at.
    pub async fn remove_of(&self, registry_id: i64, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let mut keys = self.registries.matching(registry_id, matches);
        // One expired, and not yet reported gone, is not dropped by the purge.
        keys.retain(|key| self.cache.contains_key(key));
        for key in &keys {
            self.cache.invalidate(key).await;
        }
        self.track_size().await;
        keys
    }

    /// Drops every entry (a walk over the whole tier); returns how many.
    pub async fn clear(&self) -> usize {
        let keys: Vec<Arc<String>> = self.cache.iter().map(|(key, _)| key).collect();
        for key in &keys {
            self.cache.invalidate(key.as_str()).await;
        }
        self.track_size().await;
        keys.len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::keys::cache_key;
    use crate::cache::testing::listed;

    const NAMESPACE: &str = "ns";
    const HOUR: Duration = Duration::from_secs(3_600);

    fn key(registry_id: i64, repository: &str, subject: u32) -> String {
        let digest = format!("sha256:{subject:064x}").parse().unwrap();
        cache_key(NAMESPACE, registry_id, "0a:1b", repository, &digest)
    }

    fn tier(max_bytes: u64) -> MemoryTier {
        let metrics = Arc::new(Metrics::new(&[]).unwrap());
        MemoryTier::new(max_bytes, NAMESPACE.into(), metrics)
    }

    fn list() -> Arc<CachedList> {
        Arc::new(CachedList::new(listed(2, false), 0))
    }

    /// Each registry's keys are counted and purged on their own, a replaced value is one key,
    /// and an entry dropped by a purge is gone from the tier.
    #[tokio::test]
    async fn a_registrys_keys_are_counted_and_dropped_without_the_others() {
        let tier = tier(64 * 1024 * 1024);
        let (nginx, app, other) = (
            key(3, "library/nginx", 1),
            key(3, "team/app", 1),
            key(4, "library/nginx", 1),
        );
        for key in [&nginx, &app, &other, &nginx] {
            tier.insert(key, list(), HOUR).await;
        }
        tier.insert("not a list's key", list(), HOUR).await;
        tier.cache.run_pending_tasks().await;
        assert_eq!(
            (tier.count_of(3), tier.count_of(4), tier.count_of(5)),
            (2, 1, 0)
        );

        let dropped = tier
            .remove_of(3, |key| key.contains(":library/nginx@"))
            .await;
        assert_eq!(dropped, std::slice::from_ref(&nginx));
        assert!(tier.get(&nginx).await.is_none());
        assert!(tier.get(&app).await.is_some() && tier.get(&other).await.is_some());
        assert_eq!((tier.count_of(3), tier.count_of(4)), (1, 1));
        assert!(tier.remove_of(3, |_| false).await.is_empty());

        assert_eq!(tier.clear().await, 3);
        assert_eq!((tier.count_of(3), tier.count_of(4)), (0, 0));
    }

    /// Entries evicted for room are no longer counted.
    #[tokio::test]
    async fn evicted_entries_leave_the_count() {
        let tier = tier(8 * 1024);
        for subject in 0..100 {
            tier.insert(&key(3, "library/nginx", subject), list(), HOUR)
                .await;
        }
        tier.cache.run_pending_tasks().await;
        let held = usize::try_from(tier.cache.entry_count()).unwrap();
        assert!(held < 100, "{held} entries held");
        assert_eq!(tier.count_of(3), held);
    }
}
