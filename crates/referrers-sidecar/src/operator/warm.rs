//! Warming a project's artifacts on an operator's word (`referrers-sidecar warm`), one artifact
//! per call: each is warmed as a pulled one is (the same decision, cache, single flight,
//! breakers and rate-limit rests: [`crate::warming`]), in turn. In this replica a project has
//! at most `operator.warm_queue_per_project` artifacts waiting for their turn or being warmed
//! (more are refused), and a registry gets at most `operator.warm_per_minute` listings from
//! warm-ups, spread evenly; a turn further off than [`LONGEST_WAIT`], or a registry resting
//! after a rate limit, is refused with the time to come back after. A fresh list takes no turn.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use oci_referrers::{Digest, RepositoryName};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::OperatorSettings;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::WarmResult;
use crate::pace::Pace;
use crate::upstream::UpstreamFetcher;
use crate::warming::Warming;

/// The longest a call waits for its registry's turn: well within a client's patience, so that
/// a waiting call is never taken for a stuck one.
pub const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// Why an artifact is not warmed now, or not at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarmError {
    #[error("invalid repository name {0:?}")]
    InvalidRepository(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("the project's warm queue in this replica is full")]
    QueueFull,
    #[error("the registry's next warm-up turn is {} s away", .0.as_secs())]
    Paced(Duration),
    #[error("the registry rests after a rate limit for {} s more", .0.as_secs())]
    Resting(Duration),
}

impl WarmError {
    /// When to ask again, in whole seconds (at least one): `None` for a call that cannot be
    /// answered better later.
    #[must_use]
    pub fn retry_after(&self) -> Option<u64> {
        let wait = match self {
            Self::InvalidRepository(_) | Self::InvalidDigest(_) => return None,
            Self::QueueFull => Duration::from_secs(1),
            // A turn further off than the longest wait: back when it comes within it.
            Self::Paced(wait) => wait.saturating_sub(LONGEST_WAIT),
            Self::Resting(left) => *left,
        };
        Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
    }
}

/// What became of one artifact, as the answer says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    /// As asked: named in Harbor, without the project.
    pub repository: String,
    pub digest: Digest,
    /// `fetched`, `fresh`, `stale` (a refresh started), `unserved`, `error`, … (the labels of
    /// `harbor_referrers_operator_warms_total`).
    pub result: &'static str,
}

/// The bounds of warm-ups in this replica: each project's queue, each registry's pace.
#[derive(Debug)]
pub struct WarmPacing {
    queue_per_project: usize,
    per_minute: u32,
    /// Artifacts of each project waiting for their turn or being warmed.
    queued: Mutex<HashMap<String, usize>>,
    /// Each registry's (by Harbor's id) next turn.
    paces: Mutex<HashMap<i64, Pace>>,
    clock: Arc<dyn Clock>,
}

/// A place in a project's queue, held until dropped.
#[derive(Debug)]
pub struct QueuePlace<'a> {
    pacing: &'a WarmPacing,
    project: String,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        let mut queued = lock(&self.pacing.queued);
        if let Some(count) = queued.get_mut(&self.project) {
            *count -= 1;
            if *count == 0 {
                queued.remove(&self.project);
            }
        }
    }
}

impl WarmPacing {
    #[must_use]
    pub fn new(settings: &OperatorSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            queue_per_project: usize::try_from(settings.warm_queue_per_project)
                .unwrap_or(usize::MAX)
                .max(1),
            per_minute: settings.warm_per_minute,
            queued: Mutex::default(),
            paces: Mutex::default(),
            clock,
        }
    }

    /// A place in `project`'s queue, or `QueueFull`.
    pub fn enter(&self, project: &str) -> Result<QueuePlace<'_>, WarmError> {
        let mut queued = lock(&self.queued);
        let count = queued.entry(project.to_owned()).or_default();
        if *count >= self.queue_per_project {
            return Err(WarmError::QueueFull);
        }
        *count += 1;
        Ok(QueuePlace {
            pacing: self,
            project: project.to_owned(),
        })
    }

    /// Waits for registry `registry_id`'s next turn, or says how far off it is when that is
    /// further than [`LONGEST_WAIT`] (no turn taken then).
    pub async fn take_turn(&self, registry_id: i64) -> Result<(), WarmError> {
        let now = self.clock.instant();
        let wait = lock(&self.paces)
            .entry(registry_id)
            .or_insert_with(|| Pace::per_minute(self.per_minute))
            .take_within(now, LONGEST_WAIT)
            .map_err(WarmError::Paced)?;
        if !wait.is_zero() {
            self.clock.sleep(wait).await;
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What warming an artifact uses: the warm-up itself, the registries' rests, this replica's
/// bounds and the metrics.
pub struct WarmTargets<'a> {
    pub warming: Warming,
    pub upstream: &'a UpstreamFetcher,
    pub pacing: &'a WarmPacing,
    pub metrics: &'a Metrics,
}

/// Warms `digest` of `repository` (named in Harbor, without the project) in `project`: at once
/// when its list is fresh or no upstream call is to be made (a project not served, a
/// repository outside Harbor's proxy allowlist), else in its registry's turn.
pub async fn warm(
    targets: &WarmTargets<'_>,
    core: &dyn Core,
    project: &str,
    repository: &str,
    digest: &str,
) -> Result<WarmReport, WarmError> {
    let parsed: Digest = digest
        .parse()
        .map_err(|_| WarmError::InvalidDigest(digest.to_owned()))?;
    let name: RepositoryName = format!("{project}/{repository}")
        .parse()
        .ok()
        .filter(|name: &RepositoryName| name.repository().is_some())
        .ok_or_else(|| WarmError::InvalidRepository(repository.to_owned()))?;
    let _place = targets.pacing.enter(project)?;
    let report = |result: WarmResult| {
        targets.metrics.count_operator_warm(result);
        tracing::debug!(%name, digest = %parsed, result = result.as_str(), "operator warm-up");
        WarmReport {
            repository: repository.to_owned(),
            digest: parsed.clone(),
            result: result.as_str(),
        }
    };
    let warming = &targets.warming;
    let resolved = match warming.resolve(core, &name, &parsed).await {
        Ok(resolved) => resolved,
        Err(result) => return Ok(report(result)),
    };
    if warming.is_fresh(&resolved, &parsed).await {
        return Ok(report(WarmResult::Fresh));
    }
    let resting = || {
        targets
            .upstream
            .registry_state(&resolved.target.registry.name)
            .rest_left
    };
    if let Some(left) = resting() {
        return Err(WarmError::Resting(left));
    }
    // The turn may be seconds off: the fetch looks the list up again then (another replica
    // may have stored it meanwhile), rather than going on from this lookup.
    targets.pacing.take_turn(resolved.registry_id).await?;
    // A rest may have begun while it waited for its turn.
    if let Some(left) = resting() {
        return Err(WarmError::Resting(left));
    }
    let result = warming.fetch(&name, &parsed, &resolved).await;
    if result == WarmResult::RateLimited
        && let Some(left) = resting()
    {
        // Not warmed: asked again once the rest is over.
        return Err(WarmError::Resting(left));
    }
    Ok(report(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn pacing(per_minute: u32, queue: u32) -> (WarmPacing, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(0));
        let settings = OperatorSettings {
            warm_per_minute: per_minute,
            warm_queue_per_project: queue,
            ..OperatorSettings::default()
        };
        let pacing = WarmPacing::new(&settings, Arc::clone(&clock) as Arc<dyn Clock>);
        (pacing, clock)
    }

    #[test]
    fn a_project_holds_its_queue_of_places_until_they_are_dropped() {
        let (pacing, _) = pacing(60, 2);
        let first = pacing.enter("hub").unwrap();
        let second = pacing.enter("hub").unwrap();
        assert_eq!(pacing.enter("hub").unwrap_err(), WarmError::QueueFull);
        let other = pacing.enter("ghcr").expect("another project's queue");
        drop(first);
        let third = pacing.enter("hub").expect("a place freed");
        assert_eq!(pacing.enter("hub").unwrap_err(), WarmError::QueueFull);
        drop((second, third, other));
        assert!(
            pacing.queued.lock().unwrap().is_empty(),
            "empty queues are forgotten"
        );
    }

    /// 60 a minute: turns a second apart, waited for on the clock; one more than ten seconds
    /// off is refused and comes back when it is within them; each registry has its own.
    #[tokio::test]
    async fn a_registrys_turns_are_spread_and_a_far_one_is_refused() {
        let (pacing, clock) = pacing(60, 100);
        let start = clock.instant();
        for _ in 0..=10 {
            pacing.take_turn(1).await.expect("within ten seconds");
        }
        // Each turn waited for its second: ten seconds passed for eleven turns.
        assert_eq!(clock.instant() - start, Duration::from_secs(10));
        // Ten more turns taken at once (other calls'): the last is 10 s off.
        for n in 0..10 {
            let taken = lock(&pacing.paces)
                .get_mut(&1)
                .unwrap()
                .take_within(clock.instant(), LONGEST_WAIT);
            assert_eq!(taken, Ok(Duration::from_secs(n + 1)));
        }
        let refused = pacing.take_turn(1).await.unwrap_err();
        assert_eq!(refused, WarmError::Paced(Duration::from_secs(11)));
        assert_eq!(refused.retry_after(), Some(1), "back when it is 10 s off");
        assert_eq!(clock.instant() - start, Duration::from_secs(10), "no wait");
        pacing.take_turn(2).await.expect("another registry's pace");
        assert_eq!(clock.instant() - start, Duration::from_secs(10));
    }

    #[test]
    fn a_refusal_says_when_to_come_back() {
        assert_eq!(WarmError::QueueFull.retry_after(), Some(1));
        assert_eq!(
            WarmError::Resting(Duration::from_millis(59_001)).retry_after(),
            Some(60)
        );
        assert_eq!(
            WarmError::Paced(Duration::from_millis(10_200)).retry_after(),
            Some(1)
        );
        assert_eq!(WarmError::InvalidDigest("x".into()).retry_after(), None);
    }
}
