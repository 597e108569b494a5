//! What the sidecar knows about Harbor: project and registry facts read with the robot
//! account (and whether a project carries the switch labels), shared by all workers and kept
//! for `harbor.project_info_ttl`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The project label names of a project (by id): one listing answers both switches
    /// (`projects.label`, `projects.store_label`).
    label_names: Cache<i64, Arc<HashSet<String>>>,
    /// Projects for which "Harbor merges itself" was already logged.
    merging_logged: Mutex<HashSet<String>>,
    /// Whether "the robot may not list labels" was already logged.
    labels_refused_logged: AtomicBool,
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
            label_names: Cache::builder()
                .max_capacity(MAX_REMEMBERED)
                .time_to_live(ttl)
                .build(),
            merging_logged: Mutex::new(HashSet::new()),
            labels_refused_logged: AtomicBool::new(false),
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

    /// The decision for `project_name`, from Harbor's facts (read once per TTL): the project,
    /// and whether it carries the switch label when the configuration does not name it.
    pub async fn decision(
        &self,
        core: &CoreClient,
        project_name: &str,
        toggle: &ProjectsSettings,
        metrics: &Metrics,
    ) -> Result<Decision, HarborError> {
        self.decision_with_project(core, project_name, toggle, metrics)
            .await
            .map(|(decision, _)| decision)
    }

    /// [`decision`](Self::decision), with the project it was made from (its repository
    /// allowlist decides per repository).
    pub async fn decision_with_project(
        &self,
        core: &CoreClient,
        project_name: &str,
        toggle: &ProjectsSettings,
        metrics: &Metrics,
    ) -> Result<(Decision, Option<Arc<Project>>), HarborError> {
        let project = self.project(core, project_name, metrics).await?;
        let labelled = match (project.as_deref(), label_to_read(project_name, toggle)) {
            (Some(project), Some(label)) if project.proxy_registry_id().is_some() => {
                self.carries_label(core, project.project_id, label, metrics)
                    .await?
            }
            _ => false,
        };
        let decision = self.decide(project_name, project.as_deref(), toggle, labelled);
        Ok((decision, project))
    }

    /// The decision for `project_name` if every fact it needs is at hand, without asking
    /// Harbor (used to pass requests for projects known not to be served straight through).
    pub async fn cached_decision(
        &self,
        project_name: &str,
        toggle: &ProjectsSettings,
    ) -> Option<Decision> {
        self.cached_decision_with_project(project_name, toggle)
            .await
            .map(|(decision, _)| decision)
    }

    /// [`cached_decision`](Self::cached_decision), with the project it was made from.
    pub async fn cached_decision_with_project(
        &self,
        project_name: &str,
        toggle: &ProjectsSettings,
    ) -> Option<(Decision, Option<Arc<Project>>)> {
        let project = self.projects.get(project_name).await?;
        let labelled = match (project.as_deref(), label_to_read(project_name, toggle)) {
            (Some(project), Some(label)) if project.proxy_registry_id().is_some() => self
                .label_names
                .get(&project.project_id)
                .await?
                .contains(label),
            _ => false,
        };
        let decision = self.decide(project_name, project.as_deref(), toggle, labelled);
        Some((decision, project))
    }

    /// The registry with `id` if it was read less than the TTL ago (`Some(None)`: Harbor did
    /// not say), without asking Harbor.
    pub async fn cached_registry(&self, id: i64) -> Option<Option<Arc<RegistryInfo>>> {
        self.registries.get(&id).await
    }

    /// The names of the projects read from Harbor within the TTL.
    #[must_use]
    pub fn known_projects(&self) -> Vec<String> {
        self.projects
            .iter()
            .map(|(name, _)| name.as_ref().clone())
            .collect()
    }

    /// Whether project `project_id` carries the project label `label`, from its label names
    /// (read once per TTL for every switch). A robot that may not list labels counts as "no
    /// labels" (remembered like an answer, so Harbor is not asked on every request): the
    /// configuration's lists still work.
    async fn carries_label(
        &self,
        core: &CoreClient,
        project_id: i64,
        label: &str,
        metrics: &Metrics,
    ) -> Result<bool, HarborError> {
        self.label_names
            .try_get_with(project_id, async {
                match core.project_label_names(project_id).await {
                    Ok(names) => Ok(Arc::new(names)),
                    Err(HarborError::Forbidden(what)) => {
                        metrics.count_harbor_api_error(&HarborError::Forbidden(what.clone()));
                        if !self.labels_refused_logged.swap(true, Ordering::Relaxed) {
                            tracing::error!(
                                %what,
                                "the robot may not list project labels: give it `label:list` on every project (see docs/operations.md); until then only the configuration's lists (projects.enabled, projects.store_in_harbor) switch projects on"
                            );
                        }
                        Ok(Arc::default())
                    }
                    Err(other) => Err(other),
                }
            })
            .await
            .map(|names| names.contains(label))
            .map_err(|e| api_error(&e, metrics))
    }

    /// Whether the upstream referrers of served project `project_name` are pulled into Harbor:
    /// `projects.store_in_harbor` names it, or it carries the `projects.store_label` label
    /// (read with the serve label, once per TTL).
    pub async fn stores_in_harbor(
        &self,
        core: &CoreClient,
        project_name: &str,
        toggle: &ProjectsSettings,
        metrics: &Metrics,
    ) -> Result<bool, HarborError> {
        if toggle.stores_in_harbor(project_name) {
            return Ok(true);
        }
        let Some(label) = toggle.store_label.as_deref() else {
            return Ok(false);
        };
        match self.project(core, project_name, metrics).await?.as_deref() {
            Some(project) if project.proxy_registry_id().is_some() => {
                self.carries_label(core, project.project_id, label, metrics)
                    .await
            }
            _ => Ok(false),
        }
    }

    /// [`stores_in_harbor`](Self::stores_in_harbor) if every fact it needs is at hand, without
    /// asking Harbor: `None` when the project, or its labels, were not read within the TTL.
    pub async fn cached_stores_in_harbor(
        &self,
        project_name: &str,
        toggle: &ProjectsSettings,
    ) -> Option<bool> {
        if toggle.stores_in_harbor(project_name) {
            return Some(true);
        }
        let Some(label) = toggle.store_label.as_deref() else {
            return Some(false);
        };
        match self.projects.get(project_name).await?.as_deref() {
            Some(project) if project.proxy_registry_id().is_some() => Some(
                self.label_names
                    .get(&project.project_id)
                    .await?
                    .contains(label),
            ),
            _ => Some(false),
        }
    }

    /// Serve when the project is a proxy-cache project, the toggle names it or it carries the
    /// switch label (`labelled`), and Harbor does not merge upstream referrers itself (≥ 2.16).
    pub fn decide(
        &self,
        project_name: &str,
        project: Option<&Project>,
        toggle: &ProjectsSettings,
        labelled: bool,
    ) -> Decision {
        let Some(project) = project else {
            return Decision::PassThrough(NotServed::UnknownProject);
        };
        let Some(registry_id) = project.proxy_registry_id() else {
            return Decision::PassThrough(NotServed::NotProxyCache);
        };
        if !(toggle.is_enabled(project_name) || labelled) {
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

/// The label that may switch `project_name` on: none when the mechanism is off or the
/// configuration already names the project (then no label is read).
fn label_to_read<'t>(project_name: &str, toggle: &'t ProjectsSettings) -> Option<&'t str> {
    toggle
        .label
        .as_deref()
        .filter(|_| !toggle.is_enabled(project_name))
}

/// Counts and logs a failed API call; a refused robot account is loud (they expire).
fn api_error(error: &Arc<HarborError>, metrics: &Metrics) -> HarborError {
    metrics.count_harbor_api_error(error);
    if let HarborError::Unauthorized(what) = error.as_ref() {
        tracing::error!(%what, "Harbor refused the sidecar's robot account: renew harbor.password (robot accounts expire)");
    }
    HarborError::clone(error)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn proxy(name: &str) -> Project {
        Project::new(4, name.into(), Some(2), BTreeMap::new())
    }

    fn toggle(enabled: &[&str], label: Option<&str>) -> ProjectsSettings {
        ProjectsSettings {
            enabled: enabled.iter().map(|p| (*p).to_owned()).collect(),
            label: label.map(str::to_owned),
            ..ProjectsSettings::default()
        }
    }

    #[test]
    fn the_label_serves_a_proxy_cache_project_the_list_does_not_name() {
        let facts = HarborFacts::new(Duration::from_secs(30));
        let off = toggle(&["other"], Some("referrers-proxy"));
        let project = proxy("hub");
        assert_eq!(
            facts.decide("hub", Some(&project), &off, true),
            Decision::Serve { registry_id: 2 }
        );
        assert_eq!(
            facts.decide("hub", Some(&project), &off, false),
            Decision::PassThrough(NotServed::NotEnabled)
        );
        let local = Project::new(4, "lib".into(), None, BTreeMap::new());
        assert_eq!(
            facts.decide("lib", Some(&local), &off, true),
            Decision::PassThrough(NotServed::NotProxyCache)
        );
        let mut merging = proxy("hub");
        merging
            .metadata
            .insert("proxy_referrer_api".into(), "true".into());
        assert_eq!(
            facts.decide("hub", Some(&merging), &off, true),
            Decision::PassThrough(NotServed::HarborMerges)
        );
    }

    #[tokio::test]
    async fn storing_is_told_from_cached_facts_only_when_all_are_at_hand() {
        let facts = HarborFacts::new(Duration::from_secs(30));
        let by_label = ProjectsSettings::default();
        assert_eq!(
            by_label.store_label.as_deref(),
            Some("referrers-proxy-store")
        );
        // The configuration decides alone: no fact needed.
        let listed = ProjectsSettings {
            store_in_harbor: vec!["hub".into()],
            ..ProjectsSettings::default()
        };
        assert_eq!(
            facts.cached_stores_in_harbor("hub", &listed).await,
            Some(true)
        );
        let off = ProjectsSettings {
            store_label: None,
            ..ProjectsSettings::default()
        };
        assert_eq!(
            facts.cached_stores_in_harbor("hub", &off).await,
            Some(false)
        );

        // Nothing read from Harbor yet, then the project but not its labels: not known.
        assert_eq!(facts.cached_stores_in_harbor("hub", &by_label).await, None);
        facts.remember("hub", Some(proxy("hub")), None).await;
        assert_eq!(facts.cached_stores_in_harbor("hub", &by_label).await, None);
        // Its labels listed: the store label decides.
        facts
            .remember("hub", Some(proxy("hub")), Some(&["referrers-proxy"]))
            .await;
        assert_eq!(
            facts.cached_stores_in_harbor("hub", &by_label).await,
            Some(false)
        );
        facts
            .remember(
                "hub",
                Some(proxy("hub")),
                Some(&["referrers-proxy", "referrers-proxy-store"]),
            )
            .await;
        assert_eq!(
            facts.cached_stores_in_harbor("hub", &by_label).await,
            Some(true)
        );

        // A project Harbor does not know, or not a proxy-cache project, never stores.
        facts.remember("gone", None, None).await;
        assert_eq!(
            facts.cached_stores_in_harbor("gone", &by_label).await,
            Some(false)
        );
        let local = Project::new(5, "lib".into(), None, BTreeMap::new());
        facts.remember("lib", Some(local), None).await;
        assert_eq!(
            facts.cached_stores_in_harbor("lib", &by_label).await,
            Some(false)
        );
    }

    #[test]
    fn a_label_is_read_only_when_the_mechanism_is_on_and_the_list_does_not_name_the_project() {
        assert_eq!(
            label_to_read("hub", &toggle(&["other"], Some("referrers-proxy"))),
            Some("referrers-proxy")
        );
        assert_eq!(
            label_to_read("hub", &toggle(&["hub"], Some("referrers-proxy"))),
            None
        );
        assert_eq!(
            label_to_read("hub", &toggle(&["*"], Some("referrers-proxy"))),
            None
        );
        assert_eq!(label_to_read("hub", &toggle(&["other"], None)), None);
    }
}
