//! What the sidecar knows about Harbor: project and registry facts and project label names,
//! read with the robot account, shared by all workers and kept for `harbor.project_info_ttl`.
//! Each fact is had one way: read from what is at hand ([`Read::Peek`]), or asked of core when
//! it is not ([`Read::Load`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use harbor_client::{HarborError, Project, RegistryInfo};
use moka::future::Cache;
use tracing::Instrument as _;

use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::telemetry;

/// The span of a fact read from core (made when it is read, not when it is at hand).
fn load_span(fact: &'static str) -> tracing::Span {
    tracing::info_span!(target: telemetry::SPANS, "harbor facts", fact)
}

/// How many projects and registries are remembered at most.
const MAX_REMEMBERED: u64 = 10_000;

/// How a fact not at hand is had.
#[derive(Clone, Copy)]
pub enum Read<'c> {
    /// Asked of core (once per TTL, however many ask at once).
    Load(&'c dyn Core),
    /// Not at all: only what was read within the TTL counts.
    Peek,
}

/// Why a fact cannot be told.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FactsError {
    /// Not read within the TTL, and not to be asked ([`Read::Peek`]).
    #[error("not read from Harbor lately")]
    NotAtHand,
    #[error(transparent)]
    Harbor(#[from] HarborError),
}

pub struct HarborFacts {
    projects: Cache<String, Option<Arc<Project>>>,
    registries: Cache<i64, Option<Arc<RegistryInfo>>>,
    /// The project label names of a project (by id): one listing answers both switches
    /// (`projects.label`, `projects.store_label`).
    label_names: Cache<i64, Arc<HashSet<String>>>,
    /// Whether "the robot may not list labels" was already logged.
    labels_refused_logged: AtomicBool,
    metrics: Arc<Metrics>,
}

impl HarborFacts {
    #[must_use]
    pub fn new(ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            projects: remembered(ttl),
            registries: remembered(ttl),
            label_names: remembered(ttl),
            labels_refused_logged: AtomicBool::new(false),
            metrics,
        }
    }

    /// The project named `name` (`None`: Harbor does not know it).
    pub async fn project(
        &self,
        read: Read<'_>,
        name: &str,
    ) -> Result<Option<Arc<Project>>, FactsError> {
        match read {
            Read::Peek => self.projects.get(name).await.ok_or(FactsError::NotAtHand),
            Read::Load(core) => self
                .projects
                .try_get_with(name.to_owned(), async {
                    let read = core.project(name).instrument(load_span("project"));
                    read.await.map(|p| p.map(Arc::new))
                })
                .await
                .map_err(|e| self.api_error(&e)),
        }
    }

    /// The registry with `id`; `None` when Harbor does not know it or the robot may not read
    /// registries (Harbor < 2.10): the configuration must then say.
    pub async fn registry(
        &self,
        read: Read<'_>,
        id: i64,
    ) -> Result<Option<Arc<RegistryInfo>>, FactsError> {
        match read {
            Read::Peek => self.registries.get(&id).await.ok_or(FactsError::NotAtHand),
            Read::Load(core) => self
                .registries
                .try_get_with(id, async {
                    match core.registry(id).instrument(load_span("registry")).await {
                        Ok(info) => Ok(info.map(Arc::new)),
                        // Remembered like an answer, so Harbor < 2.10 is not asked on every
                        // request.
                        Err(HarborError::Forbidden(what)) => {
                            tracing::info!(%what, "the robot may not read Harbor's registries; using registry facts from the configuration");
                            Ok(None)
                        }
                        Err(other) => Err(other),
                    }
                })
                .await
                .map_err(|e| self.api_error(&e)),
        }
    }

    /// The names of project `project_id`'s labels. A robot that may not list labels counts as
    /// "no labels" (remembered like an answer, so Harbor is not asked on every request): the
    /// configuration's lists still work.
    pub async fn label_names(
        &self,
        read: Read<'_>,
        project_id: i64,
    ) -> Result<Arc<HashSet<String>>, FactsError> {
        match read {
            Read::Peek => self
                .label_names
                .get(&project_id)
                .await
                .ok_or(FactsError::NotAtHand),
            Read::Load(core) => self
                .label_names
                .try_get_with(project_id, async {
                    let read = core.project_label_names(project_id);
                    match read.instrument(load_span("project labels")).await {
                        Ok(names) => Ok(Arc::new(names)),
                        Err(refused @ HarborError::Forbidden(_)) => {
                            self.metrics.count_harbor_api_error(&refused);
                            if !self.labels_refused_logged.swap(true, Ordering::Relaxed) {
                                tracing::error!(
                                    error = %refused,
                                    "the robot may not list project labels: give it `label:list` on every project (see docs/operations.md); until then only the configuration's lists (projects.enabled, projects.store_in_harbor) switch projects on"
                                );
                            }
                            Ok(Arc::default())
                        }
                        Err(other) => Err(other),
                    }
                })
                .await
                .map_err(|e| self.api_error(&e)),
        }
    }

    /// The names of the projects read from Harbor within the TTL.
    #[must_use]
    pub fn known_projects(&self) -> Vec<String> {
        self.projects
            .iter()
            .map(|(name, _)| name.as_ref().clone())
            .collect()
    }

    /// Counts and logs a failed API call; a refused robot account is loud (they expire).
    fn api_error(&self, error: &Arc<HarborError>) -> FactsError {
        self.metrics.count_harbor_api_error(error);
        if let HarborError::Unauthorized(what) = error.as_ref() {
            tracing::error!(%what, "Harbor refused the sidecar's robot account: renew harbor.password (robot accounts expire)");
        }
        FactsError::Harbor(HarborError::clone(error))
    }
}

/// A memory of facts of one kind, each kept for `ttl`.
fn remembered<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MAX_REMEMBERED)
        .time_to_live(ttl)
        .build()
}

#[cfg(test)]
impl HarborFacts {
    /// Facts as if read from Harbor: `project` (`None`: Harbor does not know `name`), and the
    /// names of its labels when `labels` says they were listed.
    pub(crate) async fn remember(
        &self,
        name: &str,
        project: Option<Project>,
        labels: Option<&[&str]>,
    ) {
        if let (Some(project), Some(labels)) = (&project, labels) {
            let names = labels.iter().map(|label| (*label).to_owned()).collect();
            self.label_names
                .insert(project.project_id, Arc::new(names))
                .await;
        }
        self.projects
            .insert(name.to_owned(), project.map(Arc::new))
            .await;
    }
}
