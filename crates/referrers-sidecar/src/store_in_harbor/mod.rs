//! Upstream signatures and SBOMs stored in Harbor (`projects.store_in_harbor`, or the project
//! label `projects.store_label`): each upstream referrer of a listed artifact type is pulled by
//! digest through core with the robot account, so that Harbor's own proxy path stores it as an
//! accessory of its subject (Harbor's UI and signature policy then see it). Once per digest
//! (remembered in process, and across replicas in the shared tier when there is one), paced per
//! registry, from a bounded queue, by one background task: never on the request path.

mod pace;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harbor_client::{CoreClient, HarborError};
use moka::Expiry;
use moka::future::Cache;
use oci_referrers::{ArtifactType, Digest, PreparedList, RepositoryName};
use tokio::sync::mpsc;

use crate::cache::{Claim, Claims, UpstreamAnswer};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::outcome::PullResult;
use crate::serving::{Read, Serving};
use crate::upstream::{Admission, Upstream, UpstreamTarget};
use pace::Pace;

/// How long a pull that failed, or was refused or skipped, waits before it is offered again.
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// How many digests are remembered at most.
const MAX_REMEMBERED: u64 = 100_000;

/// One referrer to pull through core.
#[derive(Debug)]
struct Job {
    /// `<repository>@<digest>`: what is remembered.
    key: String,
    project: String,
    /// Where Harbor keeps the subject's content (`<project>/library/<name>` for Docker Hub's
    /// single-segment names).
    repository: RepositoryName,
    digest: Digest,
    registry: String,
}

/// Each key kept for the time it was inserted with.
struct KeepFor;

impl Expiry<String, Duration> for KeepFor {
    fn expire_after_create(&self, _: &String, keep: &Duration, _: Instant) -> Option<Duration> {
        Some(*keep)
    }

    fn expire_after_update(
        &self,
        _: &String,
        keep: &Duration,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(*keep)
    }
}

/// The digests offered lately, each until it may be offered again.
#[derive(Clone)]
struct Remembered(Cache<String, Duration>);

impl Remembered {
    fn new() -> Self {
        Self(
            Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .expire_after(KeepFor)
                .build(),
        )
    }

    /// Remembers `key` for `keep`; false when it was remembered already.
    async fn insert_new(&self, key: &str, keep: Duration) -> bool {
        self.0
            .entry_by_ref(key)
            .or_insert_with(async { keep })
            .await
            .is_fresh()
    }

    async fn keep(&self, key: &str, keep: Duration) {
        self.0.insert(key.to_owned(), keep).await;
    }
}

/// What the referrers use case offers: the queue's sending end.
pub struct StoreInHarbor {
    jobs: mpsc::Sender<Job>,
    artifact_types: Vec<ArtifactType>,
    remembered: Remembered,
    remember_for: Duration,
    /// The list last offered per subject (`<name>@<digest>` → its fetch time): a cache hit
    /// serves the same list again and again, and is offered once, not on every request.
    offered_lists: Cache<String, u64>,
    /// Peeked only: whether a project stores in Harbor is known without a call once a request
    /// or the worker has read the project's facts.
    serving: Arc<Serving>,
    metrics: Arc<Metrics>,
}

impl StoreInHarbor {
    /// Offers the upstream referrers `answer` holds for `subject` in served `name`
    /// (`<project>/<repository>`), fetched from `target`. A list this replica offered already
    /// (the same fetch) is not walked again, and nothing is offered for a project whose cached
    /// facts say it does not store in Harbor.
    pub async fn offer(
        &self,
        name: &RepositoryName,
        subject: &Digest,
        target: &UpstreamTarget,
        answer: &UpstreamAnswer,
    ) {
        let Some(list) = &answer.list else {
            return;
        };
        // `projects.store_label` is on by default, so most projects served do not store: known
        // from the facts the request just used, they cost no memory and no job here. Facts not
        // at hand (never read, or expired) are left to the worker, which reads them.
        if let Ok(false) = self.serving.stores(Read::Peek, name.project()).await {
            return;
        }
        let subject_key = format!("{name}@{subject}");
        if self.offered_lists.get(&subject_key).await == Some(list.fetched_at_ms) {
            return;
        }
        self.offered_lists
            .insert(subject_key, list.fetched_at_ms)
            .await;
        // Pulled where Harbor keeps the subject (`library/` for Docker Hub's short names).
        if let Some(stored_in) = target.harbor_name(name) {
            self.offer_list(
                name.project(),
                &stored_in,
                &target.registry.name,
                &list.descriptors,
            )
            .await;
        }
    }

    /// Offers the referrers in `list` of a subject in `repository` of served `project`, fetched
    /// from `registry`: those of a listed artifact type, not offered lately, are queued. Never
    /// waits: a full queue drops the pull (it is offered again with a later list).
    async fn offer_list(
        &self,
        project: &str,
        repository: &RepositoryName,
        registry: &str,
        list: &PreparedList,
    ) {
        // An empty list of types is no filter to `matches`, but here it means "none".
        if self.artifact_types.is_empty() {
            return;
        }
        for referrer in list.iter() {
            if !referrer.matches(&self.artifact_types) {
                continue;
            }
            let Some(digest) = std::str::from_utf8(referrer.digest)
                .ok()
                .and_then(|d| d.parse::<Digest>().ok())
            else {
                continue;
            };
            let key = format!("{repository}@{digest}");
            if !self.remembered.insert_new(&key, self.remember_for).await {
                continue;
            }
            let job = Job {
                key,
                project: project.to_owned(),
                repository: repository.clone(),
                digest,
                registry: registry.to_owned(),
            };
            if let Err(
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job),
            ) = self.jobs.try_send(job)
            {
                self.remembered.0.invalidate(&job.key).await;
                self.metrics.count_store_pull(PullResult::Dropped);
            }
        }
    }
}

/// What the background task needs besides the queue.
pub struct WorkerParts {
    /// A client of its own, with the robot account.
    pub core: CoreClient,
    pub serving: Arc<Serving>,
    pub upstream: Arc<dyn Upstream>,
    /// Claims in the shared tier, where replicas remember what one of them pulled.
    pub claims: Claims,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// How long a project found not to store in Harbor is believed (`harbor.project_info_ttl`).
    pub facts_ttl: Duration,
}

/// The background task that pulls, one referrer at a time.
pub struct StoreWorker {
    jobs: mpsc::Receiver<Job>,
    parts: WorkerParts,
    remembered: Remembered,
    remember_for: Duration,
    pace: Pace,
}

/// The memory of lists offered, one per subject, for as long as pulled digests are remembered.
fn offered_lists(remember_for: Duration) -> Cache<String, u64> {
    Cache::builder()
        .max_capacity(MAX_REMEMBERED)
        .time_to_live(remember_for)
        .build()
}

/// The queue between the use case and the background task: `queue_size` pulls wait at most,
/// `pulls_per_minute` per registry go; a pulled digest is remembered for `remember_for`.
#[must_use]
pub fn channel(
    artifact_types: Vec<ArtifactType>,
    queue_size: usize,
    pulls_per_minute: u32,
    remember_for: Duration,
    parts: WorkerParts,
) -> (StoreInHarbor, StoreWorker) {
    let (sender, receiver) = mpsc::channel(queue_size.max(1));
    let remembered = Remembered::new();
    let store = StoreInHarbor {
        jobs: sender,
        artifact_types,
        remembered: remembered.clone(),
        remember_for,
        offered_lists: offered_lists(remember_for),
        serving: Arc::clone(&parts.serving),
        metrics: Arc::clone(&parts.metrics),
    };
    let worker = StoreWorker {
        jobs: receiver,
        parts,
        remembered,
        remember_for,
        pace: Pace::per_minute(pulls_per_minute),
    };
    (store, worker)
}

impl StoreWorker {
    /// Pulls what is queued until every sender is gone.
    pub async fn run(mut self) {
        while let Some(job) = self.jobs.recv().await {
            let result = self.pull(&job).await;
            if let Some(result) = result {
                self.parts.metrics.count_store_pull(result);
                if result != PullResult::Pulled && result != PullResult::Already {
                    // Offered again after a while, not with the very next list.
                    self.remembered.keep(&job.key, RETRY_AFTER).await;
                }
            }
        }
    }

    /// Pulls `job`'s referrer if its project stores in Harbor; `None` when it does not.
    async fn pull(&mut self, job: &Job) -> Option<PullResult> {
        let parts = &self.parts;
        match parts
            .serving
            .stores(Read::Load(&parts.core), &job.project)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Asked again once the project's facts may have changed (a label added).
                self.remembered.keep(&job.key, parts.facts_ttl).await;
                return None;
            }
            Err(error) => {
                tracing::warn!(project = %job.project, %error, "cannot tell whether the project stores upstream referrers in Harbor");
                return Some(PullResult::Failed);
            }
        }
        if parts.upstream.admits(&job.registry) != Admission::Admitted {
            return Some(PullResult::Skipped);
        }
        // Taken for `remember_for`; without a shared tier (or with it unavailable),
        // remembered in this process only.
        let claim = match parts.claims.claim(&job.key, self.remember_for).await {
            Claim::Taken => return Some(PullResult::Already),
            claim => claim,
        };
        let wait = self.pace.take(&job.registry, parts.clock.instant());
        parts.clock.sleep(wait).await;
        let result = match parts.core.pull_manifest(&job.repository, &job.digest).await {
            Ok(bytes) => {
                tracing::info!(repository = %job.repository, digest = %job.digest, bytes, "upstream referrer pulled through Harbor, which stores it");
                PullResult::Pulled
            }
            Err(error @ (HarborError::Unauthorized(_) | HarborError::Forbidden(_))) => {
                tracing::error!(%error, "Harbor refused the robot's pull: give it pull on the projects that store upstream referrers in Harbor (see docs/operations.md)");
                PullResult::Refused
            }
            Err(error) => {
                tracing::warn!(repository = %job.repository, digest = %job.digest, %error, "pulling an upstream referrer through Harbor failed");
                PullResult::Failed
            }
        };
        if result != PullResult::Pulled
            && let Claim::Won(token) = &claim
        {
            parts.claims.release(&job.key, token).await;
        }
        Some(result)
    }
}
