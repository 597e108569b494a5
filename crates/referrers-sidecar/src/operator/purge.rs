//! Purging a project's cached upstream lists (all of them, one repository's, or one
//! subject's) from the shared tier and from every replica's in-process tier.

use oci_referrers::{Digest, RepositoryName};

use super::limit::{CallBudget, Limited};
use crate::cache::PurgeScope;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::outcome::PurgeResult;
use crate::replicas::{Purged, Replicas, SharedPurge};
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
) -> Result<Purged, PurgeError> {
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
        return Ok(Purged {
            lists: 0,
            shared: SharedPurge::None,
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
    Ok(purged)
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
