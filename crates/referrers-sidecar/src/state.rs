//! The state every worker shares: settings, metrics, Harbor's facts and the referrers cache.

use std::sync::Arc;

use crate::cache::ReferrersCache;
use crate::config::Settings;
use crate::harbor::HarborFacts;
use crate::metrics::Metrics;

/// State shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub facts: HarborFacts,
    pub cache: Arc<ReferrersCache>,
}
