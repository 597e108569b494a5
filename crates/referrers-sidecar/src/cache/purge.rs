//! What a purge asks of the cache, by [`PurgeScope`]: how many lists this replica holds, and
//! dropping them here or in the shared tier. Spreading a purge to the other replicas is
//! the replicas module's job.

use super::keys::{self, ListIndex};
use super::{PurgeScope, ReferrersCache};

/// Members of an index read per call: each call is short, however many lists a purge takes.
const LIST_PAGE: usize = 500;

impl ReferrersCache {
    /// How many lists of Harbor registry `registry_id` this replica holds in its in-process
    /// tier (every project over it, every credential identity), without walking the tier.
    #[must_use]
    pub fn cached_lists(&self, registry_id: i64) -> usize {
        self.memory.count_of(registry_id)
    }

    /// Removes the lists of `scope` from the shared tier; returns their keys. `None` when there
    /// is no shared tier, or it did not answer. The lists are found by their indexes: the
    /// registry's (for a registry's purge), then each repository's, read a page at a time —
    /// never by walking the keyspace.
    pub async fn remove_shared(&self, scope: &PurgeScope) -> Option<Vec<String>> {
        let (shared, namespace) = (self.shared.as_ref()?, &self.config.namespace);
        let repositories = match &scope.repository {
            Some(repository) => vec![repository.clone()],
            // Read whole before any is purged: a purged repository leaves this index.
            None => {
                let registry_index = keys::registry_index(namespace, scope.registry_id);
                let mut repositories = Vec::new();
                loop {
                    let page = shared
                        .listed(&registry_index, repositories.len(), LIST_PAGE)
                        .await?;
                    let last = page.len() < LIST_PAGE;
                    repositories.extend(page);
                    if last {
                        break repositories;
                    }
                }
            }
        };
        let mut removed = Vec::new();
        for repository in repositories {
            let index = ListIndex::new(namespace, scope.registry_id, &repository);
            // The lists a page takes leave the index: the next page starts after those kept.
            let mut kept = 0;
            loop {
                let page = shared
                    .listed(&index.repository_index, kept, LIST_PAGE)
                    .await?;
                let last = page.len() < LIST_PAGE;
                let (lists, others): (Vec<String>, Vec<String>) = page
                    .into_iter()
                    .partition(|key| scope.matches(namespace, key));
                shared.unlist(&index, &lists).await?;
                kept += others.len();
                removed.extend(lists);
                if last {
                    break;
                }
            }
        }
        Some(removed)
    }

    /// Drops every list from this replica's in-process tier (what it remembers as not to be
    /// fetched stays); returns how many.
    pub async fn clear_in_process(&self) -> usize {
        self.memory.clear().await
    }

    /// Drops the lists of `scope` from this replica's in-process tier (looking at its registry's
    /// keys only), and forgets that any was too large to fetch; returns their keys.
    pub async fn drop_local(&self, scope: &PurgeScope) -> Vec<String> {
        let (namespace, forgotten) = (self.config.namespace.clone(), scope.clone());
        self.unfetched
            .forget_matching(move |key| forgotten.matches(&namespace, key));
        self.memory
            .remove_of(scope.registry_id, |key| {
                scope.matches(&self.config.namespace, key)
            })
            .await
    }
}
