//! Why a project is or is not served, as an operator asks it: the decision a referrers request
//! would get (with its stable reason code, or the switch that serves it), and the project's
//! upstream registry with its state (a code: the detail is logged, never answered), breaker,
//! rate-limit rest and cached lists.

use serde::{Serialize, Serializer};

use super::limit::{CallBudget, Limited};
use crate::breaker::BreakerState;
use crate::cache::ReferrersCache;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::UpstreamState;
use crate::serving::{NotServed, PassThrough, Read, Serving};
use crate::upstream::{RegistryState, Trouble, UpstreamFetcher};

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
    /// What keeps the sidecar from listing the registry's referrers now, as a code (name,
    /// type and URL are missing when Harbor's facts about it could not be had: `unreachable`).
    #[serde(serialize_with = "label")]
    pub state: UpstreamState,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// Seconds the registry still rests after a rate limit; 0 when it does not.
    pub rate_limited_for_seconds: u64,
    /// Lists of this registry in this replica's in-process tier.
    pub cached_lists: usize,
}

/// What the status reads: the serving decision, the upstream registries' state, the cache; and
/// the status calls' budget.
pub struct StatusSources<'a> {
    pub serving: &'a Serving,
    pub upstream: &'a UpstreamFetcher,
    pub cache: &'a ReferrersCache,
    pub budget: &'a CallBudget,
}

/// The status of `project`, from Harbor's facts as the sidecar's robot reads them (cached for
/// `harbor.project_info_ttl`, as for referrers requests). `exists`: the caller saw the project.
/// A project Harbor knows is asked about within its budget; one it does not know costs nothing
/// more than the caller's authorization and is answered at once.
pub async fn project_status(
    sources: &StatusSources<'_>,
    core: &dyn Core,
    project: &str,
    exists: bool,
) -> Result<ProjectStatus, Limited> {
    let mut status = ProjectStatus {
        project: project.to_owned(),
        served: false,
        switch: None,
        reason: None,
        registry: None,
    };
    if !exists {
        status.reason = Some(PassThrough::Project(NotServed::UnknownProject).code());
        return Ok(status);
    }
    sources.budget.take(project)?;
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
            return Ok(status);
        }
    }
    // Read by the decision just made: at hand.
    if let Ok(Some(id)) = serving.proxy_registry(Read::Peek, project).await {
        status.registry = Some(registry_status(sources, core, id).await);
    }
    Ok(status)
}

async fn registry_status(sources: &StatusSources<'_>, core: &dyn Core, id: i64) -> RegistryStatus {
    let facts = sources.serving.registry(Read::Load(core), id).await;
    let (name, registry_type, url) = match facts {
        Ok(registry) => {
            let mut url = registry.url;
            // Only fails for URLs that cannot carry credentials anyway.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            (
                Some(registry.name),
                Some(registry.registry_type.to_string()),
                Some(url.to_string()),
            )
        }
        Err(error) => {
            tracing::warn!(registry_id = id, error = %error, "operator API: the registry's facts cannot be had");
            (None, None, None)
        }
    };
    let now = name
        .as_deref()
        .map(|name| sources.upstream.registry_state(name));
    RegistryStatus {
        id,
        name,
        registry_type,
        url,
        state: upstream_state(now.as_ref()),
        breaker: match now.map_or(BreakerState::Closed, |now| now.breaker) {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        },
        rate_limited_for_seconds: now
            .and_then(|now| now.rest_left)
            .map_or(0, |left| left.as_secs().max(1)),
        cached_lists: sources.cache.cached_lists(id),
    }
}

/// The registry's state code from its breaker, rest and last call (`None`: its facts cannot be
/// had, so it cannot be called). An open breaker or a rest says why no call is made now, before
/// what the last call found.
fn upstream_state(now: Option<&RegistryState>) -> UpstreamState {
    let Some(now) = now else {
        return UpstreamState::Unreachable;
    };
    if now.breaker == BreakerState::Open {
        UpstreamState::BreakerOpen
    } else if now.rest_left.is_some() {
        UpstreamState::RateLimited
    } else {
        match now.trouble {
            None => UpstreamState::Ok,
            Some(Trouble::Unreachable) => UpstreamState::Unreachable,
            Some(Trouble::AuthFailed) => UpstreamState::AuthFailed,
        }
    }
}

/// An outcome as its label.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde's `serialize_with` passes a reference
fn label<S: Serializer>(state: &UpstreamState, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.as_str())
}

/// Sets `harbor_referrers_served_projects{switch}` from the projects this replica read from
/// Harbor within `harbor.project_info_ttl` (nothing is asked of Harbor).
pub async fn track_served_projects(serving: &Serving, metrics: &Metrics) {
    for (switch, count) in serving.served_projects().await {
        metrics.set_served_projects(switch, count);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The registry's state is a code: an open breaker, then a rest, then what its last call
    /// found; a registry whose facts cannot be had cannot be called.
    #[test]
    fn the_registry_state_is_a_code() {
        let state = |breaker, rest_left, trouble| RegistryState {
            breaker,
            rest_left,
            trouble,
        };
        let resting = Some(Duration::from_secs(30));
        let cases = [
            (Some(state(BreakerState::Closed, None, None)), "ok"),
            (
                Some(state(
                    BreakerState::Open,
                    resting,
                    Some(Trouble::Unreachable),
                )),
                "breaker_open",
            ),
            (
                Some(state(
                    BreakerState::Closed,
                    resting,
                    Some(Trouble::AuthFailed),
                )),
                "rate_limited",
            ),
            (
                Some(state(
                    BreakerState::HalfOpen,
                    None,
                    Some(Trouble::Unreachable),
                )),
                "unreachable",
            ),
            (
                Some(state(BreakerState::Closed, None, Some(Trouble::AuthFailed))),
                "auth_failed",
            ),
            (None, "unreachable"),
        ];
        for (now, code) in cases {
            assert_eq!(upstream_state(now.as_ref()).as_str(), code, "{now:?}");
        }
        let status = RegistryStatus {
            id: 1,
            name: None,
            registry_type: None,
            url: None,
            state: UpstreamState::Unreachable,
            breaker: "closed",
            rate_limited_for_seconds: 0,
            cached_lists: 0,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"id": 1, "state": "unreachable", "breaker": "closed",
                "rate_limited_for_seconds": 0, "cached_lists": 0})
        );
    }
}
