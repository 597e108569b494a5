//! What the sidecar knows about Harbor: project and registry facts read with the robot
//! account, shared by all workers and kept for `harbor.project_info_ttl`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harbor_client::{CoreClient, HarborError, Project, RegistryInfo};
use moka::future::Cache;

use crate::config::ProjectsSettings;
use crate::metrics::Metrics;

/// How many projects and registries are remembered at most.
const MAX_REMEMBERED: u64 = 10_000;

pub struct HarborFacts {
    projects: Cache<String, Option<Arc<Project>>>,
    registries: Cache<i64, Option<Arc<RegistryInfo>>>,
    /// Projects for which "Harbor merges itself" was already logged.
    merging_logged: Mutex<HashSet<String>>,
}

/// Whether the sidecar adds upstream referrers for a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A proxy-cache project with the toggle on: merge upstream referrers.
    Serve { registry_id: i64 },
    /// Core's answer goes back unchanged.
    PassThrough(NotServed),
}

/// Why the sidecar leaves a project's referrers to core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServed {
    /// The configuration's `projects` toggle does not name the project.
    NotEnabled,
    /// Harbor does not know the project.
    UnknownProject,
    /// Not a proxy-cache project: every referrer it has is local.
    NotProxyCache,
    /// Harbor merges upstream referrers itself (`proxy_referrer_api`, Harbor ≥ 2.16).
    HarborMerges,
}

impl NotServed {
    /// A stable code for logs and operators.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::NotEnabled => "not_enabled",
            Self::UnknownProject => "unknown_project",
            Self::NotProxyCache => "not_proxy_cache",
            Self::HarborMerges => "harbor_merges",
        }
    }
}

impl HarborFacts {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            projects: Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(ttl)
                .build(),
            registries: Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(ttl)
                .build(),
            merging_logged: Mutex::new(HashSet::new()),
        }
    }

    /// The project named `name` (`None`: Harbor does not know it), read once per TTL.
    pub async fn project(
        &self,
        core: &CoreClient,
        name: &str,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Project>>, HarborError> {
        self.projects
            .try_get_with(name.to_owned(), async {
                core.project(name).await.map(|p| p.map(Arc::new))
            })
            .await
            .map_err(|e| api_error(&e, metrics))
    }

    /// The registry with `id`, read once per TTL; `None` when Harbor does not know it or the
    /// robot may not read registries (Harbor < 2.10): the configuration must then say.
    pub async fn registry(
        &self,
        core: &CoreClient,
        id: i64,
        metrics: &Metrics,
    ) -> Result<Option<Arc<RegistryInfo>>, HarborError> {
        self.registries
            .try_get_with(id, async {
                match core.registry(id).await {
                    Ok(info) => Ok(info.map(Arc::new)),
                    // Remembered like an answer, so Harbor < 2.10 is not asked on every request.
                    Err(HarborError::Forbidden(what)) => {
                        tracing::info!(%what, "the robot may not read Harbor's registries; using registry facts from the configuration");
                        Ok(None)
                    }
                    Err(other) => Err(other),
                }
            })
            .await
            .map_err(|e| api_error(&e, metrics))
    }

    /// The decision for `project_name` if the project's facts are at hand, without asking
    /// Harbor (used to pass requests for projects known not to be served straight through).
    pub async fn cached_decision(
        &self,
        project_name: &str,
        toggle: &ProjectsSettings,
    ) -> Option<Decision> {
        let project = self.projects.get(project_name).await?;
        Some(self.decide(project_name, project.as_deref(), toggle))
    }

    /// Serve when the project is a proxy-cache project, the toggle names it, and Harbor does
    /// not merge upstream referrers itself (≥ 2.16).
    pub fn decide(
        &self,
        project_name: &str,
        project: Option<&Project>,
        toggle: &ProjectsSettings,
    ) -> Decision {
        let Some(project) = project else {
            return Decision::PassThrough(NotServed::UnknownProject);
        };
        let Some(registry_id) = project.proxy_registry_id() else {
            return Decision::PassThrough(NotServed::NotProxyCache);
        };
        if !toggle.is_enabled(project_name) {
            return Decision::PassThrough(NotServed::NotEnabled);
        }
        if project.harbor_merges_referrers() {
            let mut logged = self
                .merging_logged
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if logged.insert(project_name.to_owned()) {
                tracing::info!(
                    project = project_name,
                    "Harbor merges upstream referrers itself for this project (proxy_referrer_api); passing core's answers through"
                );
            }
            return Decision::PassThrough(NotServed::HarborMerges);
        }
        Decision::Serve { registry_id }
    }
}

/// Counts and logs a failed API call; a refused robot account is loud (they expire).
fn api_error(error: &Arc<HarborError>, metrics: &Metrics) -> HarborError {
    metrics
        .harbor_api_errors
        .with_label_values(&[error.kind()])
        .inc();
    if let HarborError::Unauthorized(what) = error.as_ref() {
        tracing::error!(%what, "Harbor refused the sidecar's robot account: renew harbor.password (robot accounts expire)");
    }
    HarborError::clone(error)
}
