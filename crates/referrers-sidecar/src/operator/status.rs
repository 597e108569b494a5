//! Why a project is or is not served, as an operator asks it: the decision a referrers request
//! would get (with its stable reason code, or the switch that serves it), and the project's
//! upstream registry with its breaker, rate-limit rest and cached lists.

use serde::Serialize;

use crate::breaker::BreakerState;
use crate::cache::ReferrersCache;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::serving::{NotServed, PassThrough, Read, Serving};
use crate::upstream::UpstreamFetcher;

/// `GET /referrers-sidecar/v1/projects/{project}`.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectStatus {
    pub project: String,
    pub served: bool,
    /// What serves it: `config` (`projects.enabled`) or `label` (the project label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch: Option<&'static str>,
    /// Why it is not served: the pass-through reason code referrers requests log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The upstream registry of a proxy-cache project.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryStatus>,
}

/// A proxy-cache project's upstream registry as this replica sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStatus {
    /// Harbor's id of the registry.
    pub id: i64,
    /// Its label in logs and metrics: the `registries` alias, else Harbor's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub registry_type: Option<String>,
    /// The registry's URL as Harbor stores it, without credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why name, type and URL are missing: Harbor's registry facts could not be had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// Seconds the registry still rests after a rate limit; 0 when it does not.
    pub rate_limited_for_seconds: u64,
    /// Lists of this registry in this replica's in-process tier.
    pub cached_lists: usize,
}

/// What the status reads: the serving decision, the upstream registries' state, the cache.
pub struct StatusSources<'a> {
    pub serving: &'a Serving,
    pub upstream: &'a UpstreamFetcher,
    pub cache: &'a ReferrersCache,
}

/// The status of `project`, from Harbor's facts as the sidecar's robot reads them (cached for
/// `harbor.project_info_ttl`, as for referrers requests). `exists`: the caller saw the project.
pub async fn project_status(
    sources: &StatusSources<'_>,
    core: &dyn Core,
    project: &str,
    exists: bool,
) -> ProjectStatus {
    let mut status = ProjectStatus {
        project: project.to_owned(),
        served: false,
        switch: None,
        reason: None,
        registry: None,
    };
    if !exists {
        status.reason = Some(PassThrough::Project(NotServed::UnknownProject).code());
        return status;
    }
    let serving = sources.serving;
    match serving.project(Read::Load(core), project).await {
        Ok(Ok(_)) => {
            status.served = true;
            status.switch = Some(serving.switch(project).as_str());
        }
        Ok(Err(reason)) => {
            status.reason = Some(PassThrough::Project(reason).code());
        }
        Err(error) => {
            tracing::warn!(project, error = %error, "operator API: cannot read the project from Harbor");
            status.reason = Some(PassThrough::FactsUnavailable.code());
            return status;
        }
    }
    // Read by the decision just made: at hand.
    if let Ok(Some(id)) = serving.proxy_registry(Read::Peek, project).await {
        status.registry = Some(registry_status(sources, core, id).await);
    }
    status
}

async fn registry_status(sources: &StatusSources<'_>, core: &dyn Core, id: i64) -> RegistryStatus {
    let facts = sources.serving.registry(Read::Load(core), id).await;
    let (name, registry_type, url, error) = match facts {
        Ok(registry) => {
            let mut url = registry.url;
            // Only fails for URLs that cannot carry credentials anyway.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            (
                Some(registry.name),
                Some(registry.registry_type.to_string()),
                Some(url.to_string()),
                None,
            )
        }
        Err(error) => (None, None, None, Some(error)),
    };
    let (breaker, rest_left) = name
        .as_deref()
        .map_or((BreakerState::Closed, None), |name| {
            let now = sources.upstream.registry_state(name);
            (now.breaker, now.rest_left)
        });
    RegistryStatus {
        id,
        name,
        registry_type,
        url,
        error,
        breaker: match breaker {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        },
        rate_limited_for_seconds: rest_left.map_or(0, |left| left.as_secs().max(1)),
        cached_lists: sources.cache.cached_lists(id),
    }
}

/// Sets `harbor_referrers_served_projects{switch}` from the projects this replica read from
/// Harbor within `harbor.project_info_ttl` (nothing is asked of Harbor).
pub async fn track_served_projects(serving: &Serving, metrics: &Metrics) {
    for (switch, count) in serving.served_projects().await {
        metrics.set_served_projects(switch, count);
    }
}
