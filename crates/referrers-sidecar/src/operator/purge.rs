//! Purging a project's cached upstream lists (all of them, one repository's, or one
//! subject's) from the shared tier and from every replica's in-process tier.

use oci_referrers::{Digest, RepositoryName};
use serde::Serialize;

use super::limit::{CallBudget, Limited};
use crate::cache::PurgeScope;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::PurgeResult;
use crate::replicas::{Replicas, SharedPurge};
use crate::serving::{Read, Serving};

/// A purge that cannot be done as asked.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error("invalid repository name {0:?}")]
    InvalidRepository(String),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("a digest names a subject of one repository: give the repository too")]
    DigestWithoutRepository,
    #[error("cannot read the project from Harbor: {0}")]
    FactsUnavailable(String),
    #[error(transparent)]
    Limited(#[from] Limited),
}

/// What a purge did, as its answer says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Lists dropped, each counted once: from Redis and from this replica's memory.
    pub purged: usize,
    /// The Harbor registry whose lists were dropped: cache keys hold the registry, not the
    /// project, so every project proxying it lost them. Absent when the project is no
    /// proxy-cache project (it has no lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_id: Option<i64>,
    /// The repository whose lists were dropped, as the upstream names it (`library/nginx` for
    /// Docker Hub's `nginx`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The subject whose list was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Where else it was dropped: `purged` (in Redis, and by every replica, told on the purge
    /// channel), `unavailable` (Redis did not answer: by this replica only), `off` (no Redis:
    /// by this replica only). Absent with `registry_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
}

/// What a purge uses: the serving decision (which registry, which upstream repository), the
/// replicas' purge, the metrics, and the purges' budget.
pub struct PurgeTargets<'a> {
    pub serving: &'a Serving,
    pub replicas: &'a Replicas,
    pub metrics: &'a Metrics,
    pub budget: &'a CallBudget,
}

/// Drops the lists of `project` (or of `repository` in it, as named in Harbor, without the
/// project; or of one subject there) on every replica. A project that is no proxy-cache project
/// has none: nothing is purged. A valid purge past the project's budget does nothing else.
pub async fn purge(
    targets: &PurgeTargets<'_>,
    core: &dyn Core,
    project: &str,
    repository: Option<&str>,
    digest: Option<&str>,
) -> Result<PurgeReport, PurgeError> {
    let digest = digest
        .map(|text| {
            text.parse::<Digest>()
                .map_err(|_| PurgeError::InvalidDigest(text.to_owned()))
        })
        .transpose()?;
    if digest.is_some() && repository.is_none() {
        return Err(PurgeError::DigestWithoutRepository);
    }
    if let Some(repository) = repository
        && format!("{project}/{repository}")
            .parse::<RepositoryName>()
            .is_err()
    {
        return Err(PurgeError::InvalidRepository(repository.to_owned()));
    }
    targets.budget.take(project)?;
    let found = targets
        .serving
        .proxy_registry(Read::Load(core), project)
        .await
        .map_err(|error| PurgeError::FactsUnavailable(error.to_string()))?;
    let Some(registry_id) = found else {
        targets.metrics.count_purge(PurgeResult::Nothing);
        return Ok(PurgeReport {
            purged: 0,
            registry_id: None,
            repository: None,
            digest: None,
            redis: None,
        });
    };
    let repository = match repository {
        Some(repository) => {
            Some(upstream_repository(targets.serving, core, registry_id, repository).await)
        }
        None => None,
    };
    let scope = PurgeScope {
        registry_id,
        repository,
        digest,
    };
    let purged = targets.replicas.purge(&scope).await;
    targets
        .metrics
        .count_purge(match (purged.shared, purged.lists) {
            (SharedPurge::Unavailable, _) => PurgeResult::RedisUnavailable,
            (_, 0) => PurgeResult::Nothing,
            _ => PurgeResult::Purged,
        });
    tracing::info!(
        project,
        registry_id,
        repository = scope.repository.as_deref(),
        digest = scope.digest.as_ref().map(ToString::to_string),
        lists = purged.lists,
        shared = ?purged.shared,
        "cache purged"
    );
    Ok(PurgeReport {
        purged: purged.lists,
        registry_id: Some(scope.registry_id),
        repository: scope.repository,
        digest: scope.digest,
        redis: Some(match purged.shared {
            SharedPurge::Done => "purged",
            SharedPurge::Unavailable => "unavailable",
            SharedPurge::None => "off",
        }),
    })
}

/// The repository's name on the upstream, as cache keys hold it (Docker Hub's `nginx` is
/// `library/nginx` there); as given when the registry's facts cannot be had.
async fn upstream_repository(
    serving: &Serving,
    core: &dyn Core,
    registry_id: i64,
    repository: &str,
) -> String {
    match serving
        .target(Read::Load(core), registry_id, repository)
        .await
    {
        Ok(target) => target.repository,
        Err(reason) => {
            tracing::warn!(registry_id, repository, %reason, "purging the repository as named: the registry's facts cannot be had");
            repository.to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer names what was dropped (the registry, and the repository and subject when
    /// named), and whether Redis and the other replicas were reached; a project with no lists
    /// says only that none was dropped.
    #[test]
    fn the_answer_says_what_was_dropped_and_where() {
        let digest: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        let report = PurgeReport {
            purged: 2,
            registry_id: Some(3),
            repository: Some("library/nginx".into()),
            digest: Some(digest.clone()),
            redis: Some("unavailable"),
        };
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"purged": 2, "registry_id": 3, "repository": "library/nginx",
                "digest": digest.to_string(), "redis": "unavailable"})
        );
        let none = PurgeReport {
            purged: 0,
            registry_id: None,
            repository: None,
            digest: None,
            redis: None,
        };
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            serde_json::json!({"purged": 0})
        );
    }
}
