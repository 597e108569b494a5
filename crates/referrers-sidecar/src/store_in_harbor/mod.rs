//! Upstream signatures and SBOMs stored in Harbor (`projects.store_in_harbor`, or the project
//! label `projects.store_label`): each upstream referrer of a listed artifact type is pulled by
//! digest through core with the robot account, so that Harbor's own proxy path stores it as an
//! accessory of its subject (Harbor's UI and signature policy then see it).
//!
//! Nothing an upstream lists is taken on trust: a list cut short or too large to cache stores
//! nothing, a subject takes `store.max_per_subject` referrers at most, and each referrer's
//! manifest is read from the upstream and checked (`check`) before core is asked to pull it.
//! Once per digest (remembered in process, and across replicas in the shared tier when there
//! is one), in the background (`worker`): a bounded queue and a pace per registry, never on the
//! request path.

mod budget;
mod check;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use oci_referrers::{ArtifactType, Digest, PreparedList, RepositoryName};
use tokio::sync::mpsc;

use crate::cache::UpstreamAnswer;
use crate::config::StoreSettings;
use crate::metrics::Metrics;
use crate::outcome::{PullResult, UpstreamResult};
use crate::serving::{Read, Serving};
use crate::upstream::UpstreamTarget;
use budget::Budgets;
use check::{Allowed, Listed};
pub use worker::{StoreWorker, WorkerParts};

/// How long a referrer nothing was decided of (a pull that failed, was skipped or dropped)
/// waits before it is offered again.
const RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

/// How many digests are remembered at most.
const MAX_REMEMBERED: u64 = 100_000;

/// One referrer to check, then pull through core.
#[derive(Debug)]
struct Job {
    /// `<repository>@<digest>`: what is remembered.
    key: String,
    /// `<repository>@<subject>`: whose budget it takes.
    subject_key: String,
    project: String,
    /// Where Harbor keeps the subject's content (`<project>/library/<name>` for Docker Hub's
    /// single-segment names).
    repository: RepositoryName,
    /// What its list said of it.
    listed: Listed,
    /// Where its manifest is read: the registry, with its credentials, and the repository
    /// there.
    target: UpstreamTarget,
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

/// What the use case and the background task share: the digests offered lately, each
/// subject's budget, and the count of what became of each referrer.
#[derive(Clone)]
struct Memory {
    remembered: Remembered,
    budgets: Budgets,
    remember_for: Duration,
    metrics: Arc<Metrics>,
}

impl Memory {
    /// `job` was not decided (dropped, skipped, failed): counted, and set aside for `wait`.
    async fn undecided(&self, job: &Job, result: PullResult, wait: Duration) {
        self.metrics.count_store_pull(result);
        self.set_aside(job, wait).await;
    }

    /// `job` is offered again after `wait`, and gives its subject's place back until then.
    async fn set_aside(&self, job: &Job, wait: Duration) {
        self.remembered.keep(&job.key, wait).await;
        self.budgets.give_back(&job.subject_key).await;
    }

    /// `count` referrers of the subject `subject_key` refused with `result` (the first of
    /// them `digest`): counted each, logged once per subject and reason.
    async fn refused(&self, subject_key: &str, digest: &Digest, result: PullResult, count: u64) {
        self.metrics.count_store_pulls(result, count);
        if self.budgets.first(subject_key, result).await {
            tracing::warn!(
                subject = subject_key,
                %digest,
                reason = result.as_str(),
                "upstream referrer not stored in Harbor (logged once per subject and reason; harbor_referrers_store_pulls_total counts each)"
            );
        }
    }
}

/// What the use cases offer to: the queue's sending end.
pub struct StoreInHarbor {
    jobs: mpsc::Sender<Job>,
    artifact_types: Vec<ArtifactType>,
    memory: Memory,
    /// The list last offered per subject (`<name>@<digest>` → its fetch time): a cache hit
    /// serves the same list again and again, and is offered once, not on every request.
    offered_lists: Cache<String, u64>,
    /// Peeked only: whether a project stores in Harbor is known without a call once a request
    /// or the worker has read the project's facts.
    serving: Arc<Serving>,
}

/// A subject's list offered: where Harbor keeps the subject, and where the list came from.
struct Offered<'a> {
    project: &'a str,
    repository: &'a RepositoryName,
    subject: &'a Digest,
    target: &'a UpstreamTarget,
}

impl Offered<'_> {
    /// `<repository>@<subject>`: the subject's budget.
    fn subject_key(&self) -> String {
        format!("{}@{}", self.repository, self.subject)
    }
}

impl StoreInHarbor {
    /// Offers the upstream referrers `answer` holds for `subject` in served `name`
    /// (`<project>/<repository>`), fetched from `target`. A list this replica offered already
    /// (the same fetch) is not walked again, and nothing is offered for a project whose cached
    /// facts say it does not store in Harbor. A list the cache does not keep (cut short by a
    /// cap, or over `cache.max_entry_bytes`) stores nothing.
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
        let list_key = format!("{name}@{subject}");
        if self.offered_lists.get(&list_key).await == Some(list.fetched_at_ms) {
            return;
        }
        self.offered_lists
            .insert(list_key, list.fetched_at_ms)
            .await;
        // Pulled where Harbor keeps the subject (`library/` for Docker Hub's short names).
        let Some(stored_in) = target.harbor_name(name) else {
            return;
        };
        let offered = Offered {
            project: name.project(),
            repository: &stored_in,
            subject,
            target,
        };
        if answer.kept {
            self.offer_list(&offered, &list.descriptors).await;
        } else {
            let result = if answer.upstream == UpstreamResult::Truncated {
                PullResult::TruncatedList
            } else {
                PullResult::OversizeList
            };
            self.refuse_list(&offered, &list.descriptors, result).await;
        }
    }

    /// The referrers of `list` of a listed artifact type, with that type.
    fn storable<'a>(
        &'a self,
        list: &'a PreparedList,
    ) -> impl Iterator<Item = (Digest, ArtifactType)> + 'a {
        // An empty list of types is no filter to `matches`, but here it means "none".
        list.iter()
            .filter(|referrer| {
                !self.artifact_types.is_empty() && referrer.matches(&self.artifact_types)
            })
            .filter_map(|referrer| {
                let digest = std::str::from_utf8(referrer.digest).ok()?.parse().ok()?;
                let artifact_type = std::str::from_utf8(referrer.artifact_type)
                    .ok()?
                    .parse()
                    .ok()?;
                Some((digest, artifact_type))
            })
    }

    /// Refuses every referrer of a listed type in `list`, with `result`.
    async fn refuse_list(&self, offered: &Offered<'_>, list: &PreparedList, result: PullResult) {
        let mut storable = self.storable(list);
        let Some((first, _)) = storable.next() else {
            return;
        };
        let count = 1 + storable.count() as u64;
        self.memory
            .refused(&offered.subject_key(), &first, result, count)
            .await;
    }

    /// Offers the referrers in `list`: those of a listed artifact type, not offered lately,
    /// are queued while the subject's budget lasts. Never waits: a full queue drops the pull
    /// (it is offered again with a later list).
    async fn offer_list(&self, offered: &Offered<'_>, list: &PreparedList) {
        let subject_key = offered.subject_key();
        let memory = &self.memory;
        for (digest, artifact_type) in self.storable(list) {
            let key = format!("{}@{digest}", offered.repository);
            if !memory
                .remembered
                .insert_new(&key, memory.remember_for)
                .await
            {
                continue;
            }
            // Remembered: the rest of an over-budget list is not counted again and again.
            if !memory.budgets.take(&subject_key).await {
                memory
                    .refused(&subject_key, &digest, PullResult::SubjectBudget, 1)
                    .await;
                continue;
            }
            let job = Job {
                key,
                subject_key: subject_key.clone(),
                project: offered.project.to_owned(),
                repository: offered.repository.clone(),
                listed: Listed {
                    digest,
                    subject: offered.subject.clone(),
                    artifact_type,
                },
                target: offered.target.clone(),
            };
            if let Err(
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job),
            ) = self.jobs.try_send(job)
            {
                // Forgotten at once: offered again with the next list.
                memory
                    .undecided(&job, PullResult::Dropped, Duration::ZERO)
                    .await;
            }
        }
    }
}

/// The memory of lists offered, one per subject, for as long as pulled digests are remembered.
fn offered_lists(remember_for: Duration) -> Cache<String, u64> {
    Cache::builder()
        .max_capacity(MAX_REMEMBERED)
        .time_to_live(remember_for)
        .build()
}

/// The queue between the use cases and the background task, as `store` says (types, pace,
/// queue, bounds); a digest offered is remembered for `remember_for`.
#[must_use]
pub fn channel(
    store: &StoreSettings,
    remember_for: Duration,
    parts: WorkerParts,
) -> (StoreInHarbor, StoreWorker) {
    let (sender, receiver) = mpsc::channel(store.queue_size.max(1));
    let artifact_types = store.parsed_artifact_types();
    let memory = Memory {
        remembered: Remembered::new(),
        budgets: Budgets::new(store.max_per_subject, remember_for),
        remember_for,
        metrics: Arc::clone(&parts.metrics),
    };
    let offer = StoreInHarbor {
        jobs: sender,
        artifact_types: artifact_types.clone(),
        memory: memory.clone(),
        offered_lists: offered_lists(remember_for),
        serving: Arc::clone(&parts.serving),
    };
    let allowed = Allowed {
        artifact_types,
        max_artifact_bytes: store.max_artifact_bytes,
    };
    let worker = StoreWorker::new(receiver, store, allowed, memory, parts);
    (offer, worker)
}
