//! What `check-config` and the start say about a valid configuration: the worst case of a
//! request's time budget, and the choices that are valid but risky.

use std::time::Duration;

use super::validate::HARBOR_TAKEN_REDIS_DBS;
use super::{CacheBackend, Settings};

impl Settings {
    /// The worst case of a referrers request's time, as `check-config` prints it: the whole
    /// budget, and what core's answer and the upstream's list may take of it.
    #[must_use]
    pub fn budget_summary(&self) -> Vec<String> {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        let deadline = self.response.deadline;
        vec![
            format!(
                "every referrers request is answered within {} (response.deadline); a caller may ask for less with the header X-Referrers-Deadline",
                show(deadline)
            ),
            format!(
                "core's answer may take up to {} of it (harbor.timeout {}): past it, 504",
                show(deadline.min(self.harbor.timeout)),
                show(self.harbor.timeout)
            ),
            format!(
                "the upstream's list may take what core leaves, up to {} (upstream.timeout {} per listing): past it, the local referrers are served and the fetch goes on to fill the cache",
                show(deadline.min(self.upstream.timeout)),
                show(self.upstream.timeout)
            ),
        ]
    }

    /// Warnings about valid but risky choices, for the log at start.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.cache.backend == CacheBackend::Redis
            && HARBOR_TAKEN_REDIS_DBS.contains(&self.cache.redis_url.db())
        {
            warnings.push(format!(
                "cache.redis_url uses Redis DB {}, which Harbor itself uses; pick a free index such as 10",
                self.cache.redis_url.db()
            ));
        }
        for (alias, registry) in &self.registries {
            if let Some(registry_type) = registry.registry_type
                && let Some(reason) = registry_type.unsupported_reason()
            {
                warnings.push(format!(
                    "registries.{alias}.type {registry_type} is not supported ({reason}): no upstream call is made for it"
                ));
            }
        }
        if let Some(per_minute) = self.store.pulls_per_minute {
            warnings.push(format!(
                "store.pulls_per_minute ({per_minute}) is no longer read: store.pulls_per_hour ({}) paces the store, and counts the check of each referrer as well as core's pull",
                self.store.pulls_per_hour
            ));
        }
        if self.harbor.password.is_none() {
            warnings.push(
                "no Harbor password configured (harbor.password / harbor.password_file): Harbor's API is called anonymously".into(),
            );
        }
        warnings
    }
}
