//! The one serving decision: whether the sidecar serves a project (and which switch does, or
//! why it does not), from which upstream registry, for which repository (Harbor's proxy
//! allowlist included), and whether the project stores upstream referrers in Harbor. Every
//! answer is had one of two ways ([`Read`]): asking Harbor for facts not at hand, or from what
//! is at hand only (the hot path's early look, the store offer, the served-projects gauge).

mod facts;
mod registries;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use harbor_client::Project;

pub use facts::{FactsError, HarborFacts, Read};
use registries::Registries;
pub use registries::UpstreamRegistry;

use crate::config::{ProjectsSettings, RegistrySettings};
use crate::metrics::Metrics;
use crate::outcome::Switch;
use crate::upstream::UpstreamTarget;

/// Why the sidecar leaves a project's referrers to core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServed {
    /// Neither the configuration's `projects` toggle nor the project label switches it on.
    NotEnabled,
    /// Harbor does not know the project.
    UnknownProject,
    /// Not a proxy-cache project: every referrer it has is local.
    NotProxyCache,
    /// Harbor merges upstream referrers itself (`proxy_referrer_api`, Harbor ≥ 2.16).
    HarborMerges,
}

/// Why a request's referrers are core's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// The configuration or Harbor's facts about the project say so.
    Project(NotServed),
    /// Harbor's project API could not be read: core's answer is the safe one.
    FactsUnavailable,
    /// A name with no repository under the project (`/v2/<project>/referrers/…`).
    NoRepository,
    /// Harbor's repository allowlist for the project (`proxy_cache_filter_pattern`, Harbor
    /// ≥ 2.16) excludes the repository: Harbor does not proxy it, and neither does the sidecar.
    NotInAllowlist,
}

impl PassThrough {
    /// A stable code for logs and operators.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Project(NotServed::NotEnabled) => "not_enabled",
            Self::Project(NotServed::UnknownProject) => "unknown_project",
            Self::Project(NotServed::NotProxyCache) => "not_proxy_cache",
            Self::Project(NotServed::HarborMerges) => "harbor_merges",
            Self::FactsUnavailable => "facts_unavailable",
            Self::NoRepository => "no_repository",
            Self::NotInAllowlist => "not_in_allowlist",
        }
    }
}

/// A project the sidecar serves: the Harbor registry it proxies, and Harbor's facts about it
/// (its repository allowlist decides per repository).
#[derive(Debug, Clone)]
pub struct ServedProject {
    pub registry_id: i64,
    pub facts: Arc<Project>,
}

/// Why a repository of a served project gets no upstream call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoUpstream {
    /// Harbor's proxy allowlist excludes it: the repository is core's alone.
    #[error("Harbor's proxy allowlist excludes the repository")]
    NotInAllowlist,
    /// The registry's facts were not read lately ([`Read::Peek`]).
    #[error("the registry's facts were not read from Harbor lately")]
    NotAtHand,
    /// The registry cannot be called: why.
    #[error("{0}")]
    Unresolved(String),
}

/// The serving decision, with the facts it is made from.
pub struct Serving {
    projects: ProjectsSettings,
    facts: HarborFacts,
    registries: Registries,
    /// Projects for which "Harbor merges itself" was already logged.
    merging_logged: Mutex<HashSet<String>>,
}

impl Serving {
    /// The decision for the configuration's `projects` and `registries`, remembering Harbor's
    /// facts for `facts_ttl`.
    #[must_use]
    pub fn new(
        projects: ProjectsSettings,
        registries: BTreeMap<String, RegistrySettings>,
        facts_ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            projects,
            facts: HarborFacts::new(facts_ttl, metrics),
            registries: Registries::new(registries),
            merging_logged: Mutex::default(),
        }
    }

    /// Whether project `name` is served, and from which registry. Peeking, the configuration
    /// alone answers for a project it does not enable while no label can.
    pub async fn project(
        &self,
        read: Read<'_>,
        name: &str,
    ) -> Result<Result<ServedProject, NotServed>, FactsError> {
        let toggle = &self.projects;
        if matches!(read, Read::Peek) && !toggle.is_enabled(name) && toggle.label.is_none() {
            return Ok(Err(NotServed::NotEnabled));
        }
        let project = self.facts.project(read, name).await?;
        let labelled = match (project.as_deref(), self.label_to_read(name)) {
            (Some(project), Some(label)) if project.proxy_registry_id().is_some() => self
                .facts
                .label_names(read, project.project_id)
                .await?
                .contains(label),
            _ => false,
        };
        Ok(self.decide(name, project, labelled))
    }

    /// Where `repository` (the name without `<project>/`) of served `project` is fetched:
    /// Harbor's proxy allowlist, matched against the upstream repository's name (`library/nginx`
    /// for Docker Hub's `nginx`, as Harbor checks its pulls after their redirect), included.
    pub async fn upstream(
        &self,
        read: Read<'_>,
        project: &ServedProject,
        repository: &str,
    ) -> Result<UpstreamTarget, NoUpstream> {
        let target = self.target(read, project.registry_id, repository).await?;
        let filter = &project.facts.repository_filter;
        if !filter.allows(&target.repository) {
            tracing::debug!(
                project = %project.facts.name,
                repository = %target.repository,
                filter = ?filter,
                "Harbor's proxy allowlist excludes the repository; core's answer stands"
            );
            return Err(NoUpstream::NotInAllowlist);
        }
        Ok(target)
    }

    /// Where `repository` (the name without `<project>/`) of a proxy-cache project whose Harbor
    /// registry is `registry_id` lives upstream, whether or not the project is served.
    pub async fn target(
        &self,
        read: Read<'_>,
        registry_id: i64,
        repository: &str,
    ) -> Result<UpstreamTarget, NoUpstream> {
        let harbor = self
            .facts
            .registry(read, registry_id)
            .await
            .map_err(|error| match error {
                FactsError::NotAtHand => NoUpstream::NotAtHand,
                FactsError::Harbor(e) => {
                    NoUpstream::Unresolved(format!("registry {registry_id}: {e}"))
                }
            })?;
        let client = self
            .registries
            .resolved(registry_id, harbor.as_ref())
            .map_err(NoUpstream::Unresolved)?;
        UpstreamTarget::in_registry(client.registry, client.cache_scope, repository)
            .map_err(NoUpstream::Unresolved)
    }

    /// The Harbor registry of proxy-cache project `name`, served or not (`None`: no proxy-cache
    /// project, or unknown to Harbor).
    pub async fn proxy_registry(
        &self,
        read: Read<'_>,
        name: &str,
    ) -> Result<Option<i64>, FactsError> {
        let project = self.facts.project(read, name).await?;
        Ok(project.and_then(|project| project.proxy_registry_id()))
    }

    /// Registry `registry_id` as the sidecar sees it (its label, type and URL), from Harbor's
    /// registries API, else the configuration; `Err` says why it cannot be had.
    pub async fn registry(
        &self,
        read: Read<'_>,
        registry_id: i64,
    ) -> Result<UpstreamRegistry, String> {
        let harbor = self
            .facts
            .registry(read, registry_id)
            .await
            .map_err(|e| format!("registry {registry_id}: {e}"))?;
        self.registries.describe(registry_id, harbor.as_deref())
    }

    /// Whether the upstream referrers of served project `name` are pulled into Harbor:
    /// `projects.store_in_harbor` names it, or it carries the `projects.store_label` label
    /// (read with the serve label, once per TTL).
    pub async fn stores(&self, read: Read<'_>, name: &str) -> Result<bool, FactsError> {
        let toggle = &self.projects;
        if toggle.stores_in_harbor(name) {
            return Ok(true);
        }
        let Some(label) = toggle.store_label.as_deref() else {
            return Ok(false);
        };
        match self.facts.project(read, name).await?.as_deref() {
            Some(project) if project.proxy_registry_id().is_some() => Ok(self
                .facts
                .label_names(read, project.project_id)
                .await?
                .contains(label)),
            _ => Ok(false),
        }
    }

    /// Which switch serves served project `name`: the configuration when it names the project
    /// (the label is then not even read), else the label.
    #[must_use]
    pub fn switch(&self, name: &str) -> Switch {
        if self.projects.is_enabled(name) {
            Switch::Config
        } else {
            Switch::Label
        }
    }

    /// How many of the projects read from Harbor within the TTL each switch serves (nothing
    /// is asked of Harbor).
    pub async fn served_projects(&self) -> [(Switch, i64); 2] {
        let (mut config, mut label) = (0, 0);
        for project in self.facts.known_projects() {
            if let Ok(Ok(_)) = self.project(Read::Peek, &project).await {
                match self.switch(&project) {
                    Switch::Config => config += 1,
                    Switch::Label => label += 1,
                }
            }
        }
        [(Switch::Config, config), (Switch::Label, label)]
    }

    /// Serve when the project is a proxy-cache project, the toggle names it or it carries the
    /// switch label (`labelled`), and Harbor does not merge upstream referrers itself (≥ 2.16).
    fn decide(
        &self,
        name: &str,
        project: Option<Arc<Project>>,
        labelled: bool,
    ) -> Result<ServedProject, NotServed> {
        let project = project.ok_or(NotServed::UnknownProject)?;
        let registry_id = project
            .proxy_registry_id()
            .ok_or(NotServed::NotProxyCache)?;
        if !(self.projects.is_enabled(name) || labelled) {
            return Err(NotServed::NotEnabled);
        }
        if project.harbor_merges_referrers() {
            let mut logged = self
                .merging_logged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if logged.insert(name.to_owned()) {
                tracing::info!(
                    project = name,
                    "Harbor merges upstream referrers itself for this project (proxy_referrer_api); passing core's answers through"
                );
            }
            return Err(NotServed::HarborMerges);
        }
        Ok(ServedProject {
            registry_id,
            facts: project,
        })
    }

    /// The label that may switch `name` on: none when the mechanism is off or the configuration
    /// already names the project (then no label is read).
    fn label_to_read(&self, name: &str) -> Option<&str> {
        self.projects
            .label
            .as_deref()
            .filter(|_| !self.projects.is_enabled(name))
    }
}

#[cfg(test)]
impl Serving {
    /// The facts, to set them as if read from Harbor.
    pub(crate) fn facts(&self) -> &HarborFacts {
        &self.facts
    }
}

#[cfg(test)]
mod tests;
