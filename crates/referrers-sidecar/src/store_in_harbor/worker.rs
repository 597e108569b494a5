//! The background task that pulls: one lane per upstream registry, each with its own queue
//! and pace, so a slow or rate-limited registry holds its own referrers only. In a lane, one
//! referrer at a time: its manifest is read from the upstream and checked, then core is asked
//! to pull it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use harbor_client::{CoreClient, HarborError};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::check::{Allowed, MAX_MANIFEST_BYTES, check};
use super::{Job, Memory, RETRY_AFTER};
use crate::cache::{Claim, Claims};
use crate::clock::Clock;
use crate::config::StoreSettings;
use crate::metrics::Metrics;
use crate::outcome::PullResult;
use crate::pace::Pace;
use crate::serving::{Read, Serving};
use crate::telemetry;
use crate::upstream::{Admission, ManifestRead, Manifests};

/// What the background task needs besides the queue.
pub struct WorkerParts {
    /// A client of its own, with the robot account.
    pub core: CoreClient,
    pub serving: Arc<Serving>,
    /// Where referrers' manifests are read, behind each registry's breaker and rest.
    pub upstream: Arc<dyn Manifests>,
    /// Claims in the shared tier, where replicas remember what one of them pulled.
    pub claims: Claims,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// How long a project found not to store in Harbor is believed (`harbor.project_info_ttl`).
    pub facts_ttl: Duration,
}

/// The background task: hands each referrer queued to its registry's lane.
pub struct StoreWorker {
    jobs: mpsc::Receiver<Job>,
    /// Each lane's queue (`store.queue_size`).
    queue_size: usize,
    pulls_per_hour: u32,
    puller: Puller,
}

/// What every lane does with a referrer.
struct Puller {
    parts: WorkerParts,
    memory: Memory,
    allowed: Allowed,
}

/// Whether `result` leaves the referrer to be offered again: nothing was decided of it.
const fn undecided(result: PullResult) -> bool {
    matches!(
        result,
        PullResult::Refused
            | PullResult::Failed
            | PullResult::Skipped
            | PullResult::Dropped
            | PullResult::CheckFailed
    )
}

impl StoreWorker {
    pub(super) fn new(
        jobs: mpsc::Receiver<Job>,
        store: &StoreSettings,
        allowed: Allowed,
        memory: Memory,
        parts: WorkerParts,
    ) -> Self {
        Self {
            jobs,
            queue_size: store.queue_size.max(1),
            pulls_per_hour: store.pulls_per_hour,
            puller: Puller {
                parts,
                memory,
                allowed,
            },
        }
    }

    /// Pulls what is queued until every sender is gone: a lane per registry, started with its
    /// first referrer, all driven by this one task.
    pub async fn run(self) {
        let Self {
            mut jobs,
            queue_size,
            pulls_per_hour,
            puller,
        } = self;
        let mut queues: HashMap<String, mpsc::Sender<Job>> = HashMap::new();
        let mut lanes = FuturesUnordered::new();
        loop {
            tokio::select! {
                job = jobs.recv() => {
                    let Some(job) = job else {
                        break;
                    };
                    let queue = queues
                        .entry(job.target.registry.name.clone())
                        .or_insert_with(|| {
                            let (queue, waiting) = mpsc::channel(queue_size);
                            lanes.push(puller.lane(waiting, Pace::per_hour(pulls_per_hour)));
                            queue
                        });
                    if let Err(
                        mpsc::error::TrySendError::Full(job)
                        | mpsc::error::TrySendError::Closed(job),
                    ) = queue.try_send(job)
                    {
                        puller
                            .memory
                            .undecided(&job, PullResult::Dropped, Duration::ZERO)
                            .await;
                    }
                }
                // Lanes end only once their queues are dropped, below.
                Some(()) = lanes.next(), if !lanes.is_empty() => {}
            }
        }
        drop(queues);
        while lanes.next().await.is_some() {}
    }
}

impl Puller {
    /// One registry's lane: its referrers one at a time, at its pace.
    async fn lane(&self, mut waiting: mpsc::Receiver<Job>, mut pace: Pace) {
        while let Some(job) = waiting.recv().await {
            if let Some(result) = self.pull(&job, &mut pace).await {
                self.settle(&job, result).await;
            }
        }
    }

    /// Counts what became of `job`; one not decided is offered again after a while, not with
    /// the very next list.
    async fn settle(&self, job: &Job, result: PullResult) {
        let memory = &self.memory;
        match result {
            PullResult::Pulled | PullResult::Already => memory.metrics.count_store_pull(result),
            result if undecided(result) => memory.undecided(job, result, RETRY_AFTER).await,
            refusal => {
                memory
                    .refused(&job.subject_key, &job.listed.digest, refusal, 1)
                    .await;
            }
        }
    }

    /// Checks then pulls `job`'s referrer if its project stores in Harbor; `None` when it does
    /// not.
    async fn pull(&self, job: &Job, pace: &mut Pace) -> Option<PullResult> {
        let parts = &self.parts;
        match parts
            .serving
            .stores(Read::Load(&parts.core), &job.project)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Asked again once the project's facts may have changed (a label added).
                self.memory.set_aside(job, parts.facts_ttl).await;
                return None;
            }
            Err(error) => {
                tracing::warn!(project = %job.project, %error, "cannot tell whether the project stores upstream referrers in Harbor");
                return Some(PullResult::Failed);
            }
        }
        self.wait_turn(pace).await;
        if parts.upstream.admits(&job.target.registry.name) != Admission::Admitted {
            return Some(PullResult::Skipped);
        }
        // Taken for as long as digests are remembered (kept when the referrer is refused: it
        // was decided); without a shared tier (or with it unavailable), remembered in this
        // process only.
        let claim = match parts.claims.claim(&job.key, self.memory.remember_for).await {
            Claim::Taken => return Some(PullResult::Already),
            claim => claim,
        };
        let span = tracing::info_span!(
            target: telemetry::SPANS,
            parent: None,
            "store pull",
            repository = %job.repository,
            digest = %job.listed.digest,
            result = tracing::field::Empty,
        );
        let result = self
            .check_then_pull(job, pace)
            .instrument(span.clone())
            .await;
        span.record("result", result.as_str());
        if undecided(result)
            && let Claim::Won(token) = &claim
        {
            parts.claims.release(&job.key, token).await;
        }
        Some(result)
    }

    /// Reads the referrer's manifest from the upstream and checks it against what its list
    /// said; then, in the registry's next slot (core's pull is an upstream manifest `GET` too),
    /// has core pull it.
    async fn check_then_pull(&self, job: &Job, pace: &mut Pace) -> PullResult {
        let parts = &self.parts;
        let listed = &job.listed;
        match parts
            .upstream
            .manifest(&job.target, &listed.digest, MAX_MANIFEST_BYTES)
            .await
        {
            ManifestRead::Read(bytes) => {
                if let Err(refusal) = check(&bytes, listed, &self.allowed) {
                    return refusal.into();
                }
            }
            ManifestRead::TooLarge => return PullResult::TooLarge,
            ManifestRead::Failed => return PullResult::CheckFailed,
            ManifestRead::Skipped | ManifestRead::RateLimited => return PullResult::Skipped,
        }
        self.wait_turn(pace).await;
        match parts
            .core
            .pull_manifest(&job.repository, &listed.digest)
            .await
        {
            Ok(bytes) => {
                tracing::info!(repository = %job.repository, digest = %listed.digest, bytes, "upstream referrer pulled through Harbor, which stores it");
                PullResult::Pulled
            }
            Err(error @ (HarborError::Unauthorized(_) | HarborError::Forbidden(_))) => {
                tracing::error!(%error, "Harbor refused the robot's pull: give it pull on the projects that store upstream referrers in Harbor (see docs/operations.md)");
                PullResult::Refused
            }
            Err(error) => {
                tracing::warn!(repository = %job.repository, digest = %listed.digest, %error, "pulling an upstream referrer through Harbor failed");
                PullResult::Failed
            }
        }
    }

    /// Waits for the registry's next slot.
    async fn wait_turn(&self, pace: &mut Pace) {
        let wait = pace.take(self.parts.clock.instant());
        self.parts.clock.sleep(wait).await;
    }
}
