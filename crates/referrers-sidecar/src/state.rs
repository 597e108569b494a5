//! The state every worker shares: settings, metrics, Harbor's facts, the referrers cache, the
//! upstream registries' state and the operator API's authorization decisions.

use std::sync::Arc;

use crate::cache::ReferrersCache;
use crate::config::Settings;
use crate::harbor::HarborFacts;
use crate::metrics::Metrics;
use crate::operator::OperatorAccess;
use crate::upstream::UpstreamFetcher;

/// State shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub facts: HarborFacts,
    pub cache: Arc<ReferrersCache>,
    /// The upstream fetcher the cache uses: its breakers and rate-limit rests.
    pub upstream: Arc<UpstreamFetcher>,
    pub operator: OperatorAccess,
}
