//! Warming: a pulled artifact of a served project gets its upstream referrers fetched into the
//! cache through the path requests take (the same decision, breakers, rate limits, memory
//! budget, single flight and stores), so the next verification is a hit.

use std::sync::Arc;

use futures_util::StreamExt;
use harbor_client::CoreClient;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::event::Pulled;
use super::queue::WarmQueue;
use crate::cache::ReferrersCache;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::WarmResult;
use crate::serving::{NoUpstream, Read, Serving};
use crate::store_in_harbor::StoreInHarbor;
use crate::telemetry;

/// Artifacts warmed at once: background work leaves the registries' connection bounds
/// (`upstream.max_concurrent_per_registry`) to the requests.
pub const CONCURRENCY: usize = 4;

/// What warming uses: the serving decision, the cache, the store offer, the metrics.
pub struct Warming {
    pub serving: Arc<Serving>,
    pub cache: Arc<ReferrersCache>,
    /// `None` when no project may store upstream referrers in Harbor.
    pub store: Option<Arc<StoreInHarbor>>,
    pub metrics: Arc<Metrics>,
}

/// Takes artifacts off `receiver` and warms up to [`CONCURRENCY`] at a time, until every
/// sender is gone. Runs on one thread: Harbor's client (`core`, the robot account) is not
/// `Send`.
pub async fn run(
    mut receiver: mpsc::Receiver<Pulled>,
    queue: Arc<WarmQueue>,
    warming: Warming,
    core: CoreClient,
) {
    let taken = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    taken
        .for_each_concurrent(CONCURRENCY, |pulled| {
            let (queue, warming, core) = (&queue, &warming, &core);
            async move {
                queue.taken();
                let result = warming.warm(core, &pulled).await;
                tracing::debug!(name = %pulled.name, digest = %pulled.digest, result = result.as_str(), "warm fetch");
                warming.metrics.count_warm(result);
                queue.done(&pulled);
            }
        })
        .await;
}

impl Warming {
    /// Fetches the upstream referrers of `pulled` into the cache, if its project is served.
    pub async fn warm(&self, core: &dyn Core, pulled: &Pulled) -> WarmResult {
        let span = tracing::info_span!(
            target: telemetry::SPANS,
            parent: None,
            "warm fetch",
            name = %pulled.name,
            digest = %pulled.digest,
            result = tracing::field::Empty,
        );
        telemetry::follow_current(&span);
        let result = self.fetch(core, pulled).instrument(span.clone()).await;
        span.record("result", result.as_str());
        result
    }

    async fn fetch(&self, core: &dyn Core, pulled: &Pulled) -> WarmResult {
        if pulled.digest.is_zero() {
            return WarmResult::Skipped;
        }
        let project = pulled.name.project();
        let served = match self.serving.project(Read::Load(core), project).await {
            Ok(Ok(served)) => served,
            Ok(Err(_)) => return WarmResult::Unserved,
            Err(error) => {
                tracing::warn!(project, error = %error, "cannot read the project from Harbor; not warming");
                return WarmResult::HarborError;
            }
        };
        // A pulled artifact's name always has a repository (checked when parsed).
        let Some(repository) = pulled.name.repository() else {
            return WarmResult::Unserved;
        };
        let target = match self
            .serving
            .upstream(Read::Load(core), &served, repository)
            .await
        {
            Ok(target) => target,
            // A repository Harbor's proxy allowlist excludes is never fetched, as for requests.
            Err(NoUpstream::NotInAllowlist) => return WarmResult::Unserved,
            Err(reason) => {
                tracing::warn!(
                    project,
                    registry_id = served.registry_id,
                    %reason,
                    "no upstream call for this project; not warming"
                );
                return WarmResult::HarborError;
            }
        };
        let answer = self
            .cache
            .upstream_referrers(&target, served.registry_id, &pulled.digest)
            .await;
        if let Some(store) = &self.store {
            store
                .offer(&pulled.name, &pulled.digest, &target, &answer)
                .await;
        }
        answer.upstream.warmed(answer.cache)
    }
}
