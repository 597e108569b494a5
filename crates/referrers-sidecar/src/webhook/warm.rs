//! The webhook warm-up: artifacts Harbor's pull webhooks queued are warmed in the background, a
//! few at a time (see [`crate::warming`]).

use std::sync::Arc;

use futures_util::StreamExt;
use harbor_client::CoreClient;
use tokio::sync::mpsc;

use super::event::Pulled;
use super::queue::WarmQueue;
use crate::warming::Warming;

/// Artifacts warmed at once: background work leaves the registries' connection bounds
/// (`upstream.max_concurrent_per_registry`) to the requests.
pub const CONCURRENCY: usize = 4;

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
                let result = warming.warm(core, &pulled.name, &pulled.digest).await;
                tracing::debug!(name = %pulled.name, digest = %pulled.digest, result = result.as_str(), "warm fetch");
                warming.metrics.count_warm(result);
                queue.done(&pulled);
            }
        })
        .await;
}
