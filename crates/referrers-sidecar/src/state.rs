//! The state every worker shares: settings, metrics, Harbor's facts, the referrers cache, the
//! upstream registries' state, the operator API's authorization decisions and the queue of
//! referrers to store in Harbor.

use std::sync::Arc;

use crate::cache::ReferrersCache;
use crate::config::Settings;
use crate::harbor::HarborFacts;
use crate::metrics::Metrics;
use crate::operator::OperatorAccess;
use crate::store_in_harbor::StoreInHarbor;
use crate::upstream::{ResolvedRegistries, UpstreamFetcher};

/// State shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub facts: Arc<HarborFacts>,
    /// Harbor's registries as the upstream client calls them, from those facts.
    pub registries: ResolvedRegistries,
    pub cache: Arc<ReferrersCache>,
    /// The upstream fetcher the cache uses: its breakers and rate-limit rests.
    pub upstream: Arc<UpstreamFetcher>,
    pub operator: OperatorAccess,
    /// `None` when no project may store upstream referrers in Harbor.
    pub store: Option<StoreInHarbor>,
}
