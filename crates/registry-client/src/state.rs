//! State shared by every listing: per-registry concurrency limiters and the memory of
//! repositories whose registry has no referrers API. Every map is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Entries kept per map before expired ones are swept (and, failing that, all).
pub(crate) const MAX_ENTRIES: usize = 4096;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a consistent map; keep using it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a map bounded: when full, drop what `keep` rejects; if still full, drop all.
pub(crate) fn sweep<K, V>(map: &mut HashMap<K, V>, keep: impl Fn(&V) -> bool) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, value| keep(value));
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
}

/// One semaphore per registry label: bounds requests in flight to it.
#[derive(Debug)]
pub(crate) struct Limiters {
    permits: usize,
    by_registry: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Limiters {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            permits: permits.max(1),
            by_registry: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn for_registry(&self, name: &str) -> Arc<Semaphore> {
        let mut map = lock(&self.by_registry);
        if let Some(semaphore) = map.get(name) {
            return Arc::clone(semaphore);
        }
        // Registries are few (config aliases); a sweep only guards against surprises.
        // A semaphore still in use survives in the listings that hold it.
        sweep(&mut map, |_| false);
        let semaphore = Arc::new(Semaphore::new(self.permits));
        map.insert(name.to_owned(), Arc::clone(&semaphore));
        semaphore
    }
}

/// "No referrers API here" per (registry, repository), remembered for a while so later
/// listings go straight to the fallback tag.
#[derive(Debug)]
pub(crate) struct ApiAbsence {
    ttl: Duration,
    until: Mutex<HashMap<String, Instant>>,
}

impl ApiAbsence {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            until: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn is_absent(&self, key: &str) -> bool {
        lock(&self.until)
            .get(key)
            .is_some_and(|until| *until > Instant::now())
    }

    pub(crate) fn remember(&self, key: String) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = lock(&self.until);
        let now = Instant::now();
        sweep(&mut map, |until| *until > now);
        map.insert(key, now + self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absence_is_remembered_until_ttl_and_bounded() {
        let absence = ApiAbsence::new(Duration::from_secs(60));
        assert!(!absence.is_absent("a"));
        absence.remember("a".into());
        assert!(absence.is_absent("a"));
        for i in 0..(MAX_ENTRIES * 2) {
            absence.remember(i.to_string());
        }
        assert!(lock(&absence.until).len() <= MAX_ENTRIES);
        let forgetful = ApiAbsence::new(Duration::ZERO);
        forgetful.remember("a".into());
        assert!(!forgetful.is_absent("a"));
    }

    #[test]
    fn one_limiter_per_registry() {
        let limiters = Limiters::new(2);
        let a = limiters.for_registry("a");
        assert!(Arc::ptr_eq(&a, &limiters.for_registry("a")));
        assert!(!Arc::ptr_eq(&a, &limiters.for_registry("b")));
        assert_eq!(a.available_permits(), 2);
    }
}
