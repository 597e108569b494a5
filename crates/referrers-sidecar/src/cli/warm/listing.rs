//! A `warm` run's listing: the project's artifacts read from Harbor's API with the caller's
//! credentials, a page at a time.

use std::collections::HashSet;
use std::time::SystemTime;

use harbor_client::{BasicAuth, CoreClient, HarborError};
use tokio::sync::mpsc;

use super::progress::Progress;
use super::{Args, Artifact, WarmError};

pub(super) enum ListingError {
    /// The caller may not list the project: nothing more can be done.
    Fatal(WarmError),
    /// Harbor failed while listing.
    Harbor(HarborError),
}

/// Lists the artifacts to warm into `sender`: those of `--repository`, or of every repository;
/// each once, only those used within `--since`.
pub(super) async fn list(
    harbor: &CoreClient,
    args: &Args,
    caller: &BasicAuth,
    sender: mpsc::Sender<Artifact>,
    progress: &Progress,
) -> Result<(), ListingError> {
    let project = &args.target.project;
    let refused = |error: HarborError| match error {
        HarborError::Unauthorized(_) => {
            ListingError::Fatal(WarmError::HarborRefused(caller.username.clone()))
        }
        HarborError::Forbidden(_) => ListingError::Fatal(WarmError::HarborForbidden {
            user: caller.username.clone(),
            project: project.clone(),
        }),
        other => ListingError::Harbor(other),
    };
    let repositories = match &args.repository {
        Some(repository) => vec![repository.clone()],
        None => {
            let mut names = Vec::new();
            for page in 1.. {
                let Some(listed) = harbor
                    .repositories(project, page, caller)
                    .await
                    .map_err(refused)?
                else {
                    return Err(ListingError::Fatal(WarmError::NoProject(project.clone())));
                };
                let prefix = format!("{project}/");
                names.extend(
                    listed
                        .items
                        .into_iter()
                        .filter_map(|r| r.name.strip_prefix(&prefix).map(str::to_owned)),
                );
                if !listed.has_next {
                    break;
                }
            }
            names
        }
    };
    let cutoff = args
        .since
        .and_then(|since| SystemTime::now().checked_sub(since));
    let mut seen = HashSet::new();
    for repository in repositories {
        for page in 1.. {
            let Some(listed) = harbor
                .artifacts(project, &repository, page, caller)
                .await
                .map_err(refused)?
            else {
                if args.repository.is_some() {
                    return Err(ListingError::Fatal(WarmError::NoRepository(format!(
                        "{project}/{repository}"
                    ))));
                }
                // A repository gone since it was listed has nothing to warm.
                break;
            };
            for artifact in listed.items {
                let recent = match (cutoff, artifact.last_used()) {
                    (Some(cutoff), Some(used)) => used >= cutoff,
                    // No readable time: warmed rather than missed.
                    _ => true,
                };
                if !recent {
                    progress.update(|counts| counts.older += 1);
                    continue;
                }
                let artifact = Artifact {
                    repository: repository.clone(),
                    digest: artifact.digest.to_string(),
                };
                if seen.insert(artifact.clone()) {
                    progress.update(|counts| counts.listed += 1);
                    if sender.send(artifact).await.is_err() {
                        // The warm-up stopped: nothing more to list for.
                        return Ok(());
                    }
                }
            }
            if !listed.has_next {
                break;
            }
        }
    }
    progress.listed_all();
    Ok(())
}
