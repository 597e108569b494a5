//! Warming, a client of the cache and not a part of it: an artifact of a served project gets its
//! upstream referrers fetched into the cache through the path requests take (the same decision,
//! breakers, rate-limit rests, memory budget, single flight and stores), so that the next
//! verification is a hit. Harbor's pull webhooks warm one artifact at a time; the operator API
//! warms a whole project, paced, asking first whether the list is fresh.

use std::sync::Arc;

use oci_referrers::{Digest, RepositoryName};
use tracing::Instrument as _;

use crate::cache::ReferrersCache;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::WarmResult;
use crate::serving::{NoUpstream, Read, Serving};
use crate::store_in_harbor::StoreInHarbor;
use crate::telemetry;
use crate::upstream::UpstreamTarget;

/// What warming uses: the serving decision, the cache, the store offer, the metrics.
pub struct Warming {
    pub serving: Arc<Serving>,
    pub cache: Arc<ReferrersCache>,
    /// `None` when no project may store upstream referrers in Harbor.
    pub store: Option<Arc<StoreInHarbor>>,
    pub metrics: Arc<Metrics>,
}

/// Where an artifact's upstream referrers are fetched from: the decision a request would get.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The Harbor registry the project proxies.
    pub registry_id: i64,
    pub target: UpstreamTarget,
}

impl Warming {
    /// Fetches the upstream referrers of `digest` in `name` (`<project>/<repository>`) into
    /// the cache, if its project is served, in a span of its own.
    pub async fn warm(
        &self,
        core: &dyn Core,
        name: &RepositoryName,
        digest: &Digest,
    ) -> WarmResult {
        let span = tracing::info_span!(
            target: telemetry::SPANS,
            parent: None,
            "warm fetch",
            name = %name,
            digest = %digest,
            result = tracing::field::Empty,
        );
        telemetry::follow_current(&span);
        let warmed = async {
            match self.resolve(core, name, digest).await {
                Ok(resolved) => self.fetch(name, digest, &resolved).await,
                Err(result) => result,
            }
        };
        let result = warmed.instrument(span.clone()).await;
        span.record("result", result.as_str());
        result
    }

    /// Where the upstream referrers of `digest` in `name` come from, or why none are fetched:
    /// its project is not served, the repository is outside Harbor's proxy allowlist, Harbor's
    /// facts cannot be had, or the digest is all zeros (a client's probe).
    pub async fn resolve(
        &self,
        core: &dyn Core,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Resolved, WarmResult> {
        if digest.is_zero() {
            return Err(WarmResult::Skipped);
        }
        let project = name.project();
        let served = match self.serving.project(Read::Load(core), project).await {
            Ok(Ok(served)) => served,
            Ok(Err(_)) => return Err(WarmResult::Unserved),
            Err(error) => {
                tracing::warn!(project, error = %error, "cannot read the project from Harbor; not warming");
                return Err(WarmResult::HarborError);
            }
        };
        let Some(repository) = name.repository() else {
            return Err(WarmResult::Unserved);
        };
        match self
            .serving
            .upstream(Read::Load(core), &served, repository)
            .await
        {
            Ok(target) => Ok(Resolved {
                registry_id: served.registry_id,
                target,
            }),
            // A repository Harbor's proxy allowlist excludes is never fetched, as for requests.
            Err(NoUpstream::NotInAllowlist) => Err(WarmResult::Unserved),
            Err(reason) => {
                tracing::warn!(
                    project,
                    registry_id = served.registry_id,
                    %reason,
                    "no upstream call for this project; not warming"
                );
                Err(WarmResult::HarborError)
            }
        }
    }

    /// Whether the cache holds a fresh list of `digest` for `resolved`: one a request would be
    /// served without an upstream call. Nothing is fetched, counted or stored.
    pub async fn is_fresh(&self, resolved: &Resolved, digest: &Digest) -> bool {
        self.cache
            .look_up(&resolved.target, resolved.registry_id, digest)
            .await
            .is_fresh()
    }

    /// Fetches the upstream referrers of `digest` in `name` from `resolved` into the cache (a
    /// fresh list is not fetched again, a stale one is refreshed in the background), and
    /// offers them for storing in Harbor.
    pub async fn fetch(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        resolved: &Resolved,
    ) -> WarmResult {
        let answer = self
            .cache
            .upstream_referrers(&resolved.target, resolved.registry_id, digest)
            .await;
        if let Some(store) = &self.store {
            store.offer(name, digest, &resolved.target, &answer).await;
        }
        answer.upstream.warmed(answer.cache)
    }
}
