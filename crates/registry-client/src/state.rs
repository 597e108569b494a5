//! State shared by every listing, each bounded and kept per [`RegistryKey`]: concurrency
//! limiters, and the memory of repositories whose registry has no referrers API.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use tokio::sync::Semaphore;

use crate::registry::Registry;

/// Entries kept per map; past it the least useful are evicted.
pub(crate) const MAX_ENTRIES: u64 = 4096;

/// Whose state an entry is: the origin the client talks to and the identity it talks as.
/// Never a display name alone, which another registry could share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RegistryKey {
    /// `scheme://host:port`.
    origin: String,
    /// [`Registry::credential_identity`].
    identity: String,
}

impl RegistryKey {
    pub(crate) fn of(registry: &Registry) -> Self {
        Self {
            origin: registry.base_url.origin().ascii_serialization(),
            identity: registry.credential_identity(),
        }
    }
}

/// One semaphore per registry: bounds requests in flight to it.
#[derive(Debug)]
pub(crate) struct Limiters {
    permits: usize,
    by_registry: Cache<RegistryKey, Arc<Semaphore>>,
}

impl Limiters {
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            permits: permits.max(1),
            // Registries are few (config aliases); the bound only guards against surprises.
            // An evicted semaphore still in use lives on in the listings that hold it.
            by_registry: Cache::new(MAX_ENTRIES),
        }
    }

    pub(crate) async fn for_registry(&self, key: &RegistryKey) -> Arc<Semaphore> {
        self.by_registry
            .get_with_by_ref(key, async { Arc::new(Semaphore::new(self.permits)) })
            .await
    }
}

/// "No referrers API here" per (registry, repository), remembered for a while so later
/// listings go straight to the fallback tag.
#[derive(Debug)]
pub(crate) struct ApiAbsence {
    /// `None` when absence is not to be remembered at all.
    absent: Option<Cache<(RegistryKey, String), ()>>,
}

impl ApiAbsence {
    pub(crate) fn new(ttl: Duration) -> Self {
        let absent = (!ttl.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build()
        });
        Self { absent }
    }

    pub(crate) fn is_absent(&self, key: &RegistryKey, repository: &str) -> bool {
        self.absent
            .as_ref()
            .is_some_and(|absent| absent.contains_key(&(key.clone(), repository.to_owned())))
    }

    pub(crate) async fn remember(&self, key: &RegistryKey, repository: &str) {
        if let Some(absent) = &self.absent {
            absent
                .insert((key.clone(), repository.to_owned()), ())
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::*;
    use crate::registry::{Credentials, RegistryKind};

    fn registry(name: &str, url: &str, username: Option<&str>) -> Registry {
        let base_url: Url = url.parse().unwrap();
        Registry {
            name: name.into(),
            credentials: username.map(|username| Credentials {
                username: username.into(),
                password: "secret".into(),
                bound_host: base_url.host_str().unwrap().into(),
            }),
            base_url,
            kind: RegistryKind::Distribution,
            insecure: false,
        }
    }

    #[test]
    fn keys_follow_origin_and_credentials_not_the_display_name() {
        let key = |name, url, user| RegistryKey::of(&registry(name, url, user));
        let hub = key("hub", "https://a.example", Some("robot"));
        assert_eq!(hub, key("hub", "https://a.example:443/", Some("robot")));
        assert_ne!(hub, key("hub", "https://b.example", Some("robot")));
        assert_ne!(hub, key("hub", "https://a.example:8443", Some("robot")));
        assert_ne!(hub, key("hub", "https://a.example", Some("other")));
        assert_ne!(hub, key("hub", "https://a.example", None));
        // Anonymous access to one origin is the same whatever the registry is called.
        assert_eq!(
            key("one", "https://a.example", None),
            key("two", "https://a.example", None)
        );
    }

    #[tokio::test]
    async fn absence_is_remembered_per_registry_and_bounded() {
        let key = RegistryKey::of(&registry("r", "https://a.example", None));
        let other = RegistryKey::of(&registry("r", "https://b.example", None));
        let absence = ApiAbsence::new(Duration::from_secs(60));
        assert!(!absence.is_absent(&key, "app"));
        absence.remember(&key, "app").await;
        assert!(absence.is_absent(&key, "app"));
        assert!(!absence.is_absent(&key, "other"));
        assert!(!absence.is_absent(&other, "app"));
        for i in 0..(MAX_ENTRIES * 2) {
            absence.remember(&key, &i.to_string()).await;
        }
        let cache = absence.absent.as_ref().unwrap();
        cache.run_pending_tasks().await;
        assert!(cache.entry_count() <= MAX_ENTRIES);
        let forgetful = ApiAbsence::new(Duration::ZERO);
        forgetful.remember(&key, "app").await;
        assert!(!forgetful.is_absent(&key, "app"));
    }

    #[tokio::test]
    async fn one_limiter_per_registry() {
        let limiters = Limiters::new(2);
        let a = RegistryKey::of(&registry("r", "https://a.example", None));
        let b = RegistryKey::of(&registry("r", "https://b.example", None));
        let semaphore = limiters.for_registry(&a).await;
        assert!(Arc::ptr_eq(&semaphore, &limiters.for_registry(&a).await));
        assert!(!Arc::ptr_eq(&semaphore, &limiters.for_registry(&b).await));
        assert_eq!(semaphore.available_permits(), 2);
    }
}
