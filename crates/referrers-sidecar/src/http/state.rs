//! The state every worker shares: settings, metrics, the serving decision, the referrers cache,
//! the upstream registries' state, the operator API's authorization decisions and budgets, and
//! the queue of referrers to store in Harbor. Only the HTTP layer sees it whole: each use case
//! is handed the parts it uses.

use std::sync::Arc;

use crate::cache::ReferrersCache;
use crate::config::Settings;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::operator::{OperatorAccess, OperatorBudgets, PurgeTargets, StatusSources, WarmTargets};
use crate::referrers::{AnswerMemo, CoreCalls, Referrers};
use crate::replicas::Replicas;
use crate::serving::Serving;
use crate::store_in_harbor::StoreInHarbor;
use crate::upstream::UpstreamFetcher;
use crate::warming::Warming;

/// State shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub serving: Arc<Serving>,
    pub cache: Arc<ReferrersCache>,
    /// Pages written for earlier identical requests (`cache.answer_memo_bytes`).
    pub memo: AnswerMemo,
    /// Purges spread to and heard from the other replicas.
    pub replicas: Arc<Replicas>,
    /// The upstream fetcher the cache uses: its breakers and rate-limit rests.
    pub upstream: Arc<UpstreamFetcher>,
    pub operator: OperatorAccess,
    /// How often each project's purges and statuses are done, and how warm-ups are paced.
    pub operator_budgets: OperatorBudgets,
    /// `None` when no project may store upstream referrers in Harbor.
    pub store: Option<Arc<StoreInHarbor>>,
}

impl AppState {
    /// The referrers use case, asking core through `core`, sharing the worker's identical
    /// calls in flight (`core_calls`).
    #[must_use]
    pub fn referrers<'a>(
        &'a self,
        core: &'a Arc<dyn Core>,
        core_calls: &'a CoreCalls,
    ) -> Referrers<'a> {
        Referrers {
            core,
            core_calls,
            memo: &self.memo,
            serving: &self.serving,
            cache: &self.cache,
            store: self.store.as_deref(),
            response: &self.settings.response,
            metrics: &self.metrics,
        }
    }

    /// What the operator API's status reads.
    #[must_use]
    pub fn status_sources(&self) -> StatusSources<'_> {
        StatusSources {
            serving: &self.serving,
            upstream: &self.upstream,
            cache: &self.cache,
            budget: &self.operator_budgets.status,
        }
    }

    /// What the operator API's warm-up uses.
    #[must_use]
    pub fn warm_targets(&self) -> WarmTargets<'_> {
        WarmTargets {
            warming: Warming {
                serving: Arc::clone(&self.serving),
                cache: Arc::clone(&self.cache),
                store: self.store.clone(),
                metrics: Arc::clone(&self.metrics),
            },
            upstream: &self.upstream,
            pacing: &self.operator_budgets.warm,
            metrics: &self.metrics,
        }
    }

    /// What the operator API's purge uses.
    #[must_use]
    pub fn purge_targets(&self) -> PurgeTargets<'_> {
        PurgeTargets {
            serving: &self.serving,
            replicas: &self.replicas,
            metrics: &self.metrics,
            budget: &self.operator_budgets.purges,
        }
    }
}
