//! Warming: a pulled artifact of a served project gets its upstream referrers fetched into the
//! cache through the path requests take (the same decision, breakers, rate limits, memory
//! budget, single flight and stores), so the next verification is a hit.

use std::sync::Arc;

use futures_util::StreamExt;
use harbor_client::CoreClient;
use tokio::sync::mpsc;

use super::event::Pulled;
use super::queue::WarmQueue;
use crate::harbor::Decision;
use crate::outcome::WarmResult;
use crate::state::AppState;
use crate::upstream;

/// Artifacts warmed at once: background work leaves the registries' connection bounds
/// (`upstream.max_concurrent_per_registry`) to the requests.
pub const CONCURRENCY: usize = 4;

/// Takes artifacts off `receiver` and warms up to [`CONCURRENCY`] at a time, until every
/// sender is gone. Runs on one thread: Harbor's client (`core`, the robot account) is not
/// `Send`.
pub async fn run(
    mut receiver: mpsc::Receiver<Pulled>,
    queue: Arc<WarmQueue>,
    state: actix_web::web::Data<AppState>,
    core: CoreClient,
) {
    let taken = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    taken
        .for_each_concurrent(CONCURRENCY, |pulled| {
            let (queue, state, core) = (&queue, &state, &core);
            async move {
                queue.taken();
                let result = warm(state, core, &pulled).await;
                tracing::debug!(name = %pulled.name, digest = %pulled.digest, result = result.as_str(), "warm fetch");
                state.metrics.count_warm(result);
                queue.done(&pulled);
            }
        })
        .await;
}

/// Fetches the upstream referrers of `pulled` into the cache, if its project is served.
async fn warm(state: &AppState, core: &CoreClient, pulled: &Pulled) -> WarmResult {
    if pulled.digest.is_zero() {
        return WarmResult::Skipped;
    }
    let project = pulled.name.project();
    let decision = state
        .facts
        .decision_with_project(core, project, &state.settings.projects, &state.metrics)
        .await;
    let (registry_id, facts) = match decision {
        Ok((Decision::Serve { registry_id }, Some(facts))) => (registry_id, facts),
        Ok(_) => return WarmResult::Unserved,
        Err(error) => {
            tracing::warn!(project, error = %error, "cannot read the project from Harbor; not warming");
            return WarmResult::HarborError;
        }
    };
    // A pulled artifact's name always has a repository (checked when parsed).
    let Some(repository) = pulled.name.repository() else {
        return WarmResult::Unserved;
    };
    let target = match upstream::resolve(state, core, registry_id, repository).await {
        Ok(target) => target,
        Err(reason) => {
            tracing::warn!(project, registry_id, %reason, "no upstream call for this project; not warming");
            return WarmResult::HarborError;
        }
    };
    // A repository Harbor's proxy allowlist excludes is never fetched, as for requests.
    if !facts.repository_filter.allows(&target.repository) {
        return WarmResult::Unserved;
    }
    let answer = state
        .cache
        .upstream_referrers(&target, registry_id, &pulled.digest)
        .await;
    if let Some(store) = &state.store {
        store
            .offer(&pulled.name, &pulled.digest, &target, &answer)
            .await;
    }
    answer.upstream.warmed(answer.cache)
}
