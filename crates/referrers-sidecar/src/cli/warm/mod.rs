//! `warm`: warms a whole project's cached lists in a running sidecar. The project's artifacts
//! are listed through Harbor's API with the caller's own credentials (read through the sidecar,
//! which passes Harbor's API on to core, unless `--harbor-url` says where Harbor is), and each
//! is handed to the sidecar's operator API (`POST …/projects/<project>/warm`), a few at a time:
//! the sidecar decides, paces and fetches as for a pulled artifact, and says when to come back
//! (`429`) when the registry's turn is far off or it rests after a rate limit. Progress shows
//! as a bar on a terminal, as plain lines otherwise, as JSON lines with `--json`; Ctrl-C stops
//! it, and a run again skips what is fresh.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use harbor_client::{BasicAuth, CoreClient, CoreTransport, HarborError};
use oci_referrers::RepositoryName;
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use super::operator::{self, CommandError, Target};
use crate::operator::is_project_name;
use listing::{ListingError, list};
use progress::{Counts, Progress};

mod listing;
mod progress;

/// Artifacts handed to the sidecar at once: what it warms of a project at once by default
/// (`operator.warm_queue_per_project` is 8), and what its webhook warm-up does.
const CONCURRENCY: usize = 4;

/// Bounds each call to Harbor's API.
const HARBOR_TIMEOUT: Duration = Duration::from_secs(30);

/// The exit status after Ctrl-C, as shells report a command SIGINT stopped.
const INTERRUPTED: u8 = 130;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Only this repository, as named in Harbor without the project (`library/nginx`).
    #[arg(long)]
    repository: Option<String>,
    /// Only artifacts used within this long (`7d`, `12h`): pulled, or first cached, since then
    /// (the later of Harbor's `pull_time` and `push_time`).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Harbor's URL, for its API. Default: the sidecar's (`--url`), which passes Harbor's API
    /// on to core.
    #[arg(long)]
    harbor_url: Option<Url>,
}

#[derive(Debug, thiserror::Error)]
enum WarmError {
    #[error("invalid project name {0:?}")]
    InvalidProject(String),
    #[error("invalid repository name {0:?}")]
    InvalidRepository(String),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{0}")]
    NotServed(String),
    #[error(transparent)]
    Transport(#[from] harbor_client::TransportError),
    #[error("Harbor refused the credentials of {0}")]
    HarborRefused(String),
    #[error("{user} may not read project {project} in Harbor")]
    HarborForbidden { user: String, project: String },
    #[error("Harbor has no project {0}")]
    NoProject(String),
    #[error("Harbor has no repository {0}")]
    NoRepository(String),
    #[error("cannot list the project's artifacts: {0}")]
    Listing(HarborError),
}

/// One artifact to warm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Artifact {
    /// Named in Harbor without the project.
    repository: String,
    digest: String,
}

/// `referrers-sidecar warm --project P [--repository R] [--since D]`.
pub fn run(config: &Path, args: &Args) -> ExitCode {
    let prepared = prepare(config, args);
    let (urls, caller) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return super::fail(&error),
    };
    // One TLS provider for the process, as the service installs it (for https URLs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let project = args.target.project.clone();
    let progress = Progress::new(&project, args.target.json);
    let result = actix_web::rt::System::new().block_on(async {
        let work = warm(args, &urls, &caller, &progress);
        tokio::select! {
            result = work => result.map(|listing| (listing, false)),
            _ = tokio::signal::ctrl_c() => Ok((None, true)),
        }
    });
    progress.finish();
    let counts = progress.counts();
    match result {
        Err(error) => super::fail(&error),
        Ok((listing, interrupted)) => {
            report(
                &project,
                &counts,
                progress.started.elapsed(),
                args.target.json,
                interrupted,
            );
            if interrupted {
                eprintln!(
                    "referrers-sidecar: stopped: {} of {} listed artifacts done; run it again to go on (fresh lists are skipped)",
                    counts.done(),
                    counts.listed
                );
                return ExitCode::from(INTERRUPTED);
            }
            if let Some(error) = listing {
                return super::fail(&WarmError::Listing(error));
            }
            if counts.failed > 0 {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

/// The summary: a sentence, or a JSON line.
fn report(project: &str, counts: &Counts, took: Duration, json: bool, interrupted: bool) {
    if json {
        println!(
            "{}",
            json!({
                "project": project, "listed": counts.listed, "older": counts.older,
                "warmed": counts.warmed, "fresh": counts.fresh, "skipped": counts.skipped,
                "failed": counts.failed, "interrupted": interrupted,
                "seconds": took.as_secs(),
            })
        );
        return;
    }
    let mut text = format!(
        "{project}: {} artifacts listed: {}",
        counts.listed,
        counts.describe()
    );
    if counts.older > 0 {
        text.push_str(&format!("; {} more not used within --since", counts.older));
    }
    let took = Duration::from_secs(took.as_secs());
    println!("{text} (in {})", humantime::format_duration(took));
}

/// Where a run asks: the project's status and warm endpoint in the operator API, and Harbor.
struct Urls {
    status: Url,
    warm: Url,
    harbor: Url,
}

/// Where to ask, and the caller, checked before anything is sent.
fn prepare(config: &Path, args: &Args) -> Result<(Urls, BasicAuth), WarmError> {
    let target = &args.target;
    if !is_project_name(&target.project) {
        return Err(WarmError::InvalidProject(target.project.clone()));
    }
    if let Some(repository) = &args.repository {
        let valid = format!("{}/{repository}", target.project)
            .parse::<RepositoryName>()
            .is_ok_and(|name| name.repository().is_some());
        if !valid {
            return Err(WarmError::InvalidRepository(repository.clone()));
        }
    }
    let harbor = match &args.harbor_url {
        Some(url) => url.clone(),
        None => operator::sidecar_url(config, target)?,
    };
    super::plain_http::check(&harbor, "Harbor credentials", target.insecure)
        .map_err(CommandError::from)?;
    let urls = Urls {
        status: operator::endpoint(config, target, "")?,
        warm: operator::endpoint(config, target, "/warm")?,
        harbor,
    };
    let (username, password) = operator::credentials().map_err(CommandError::Credentials)?;
    Ok((urls, BasicAuth { username, password }))
}

/// Checks that the project is served, then lists and warms its artifacts. `Ok(Some(error))`:
/// the listing stopped short (what it listed is warmed).
async fn warm(
    args: &Args,
    urls: &Urls,
    caller: &BasicAuth,
    progress: &Progress,
) -> Result<Option<HarborError>, WarmError> {
    let client = operator::client()?;
    let status = operator::send(
        client
            .get(urls.status.clone())
            .basic_auth(&caller.username, Some(&caller.password)),
        &urls.status,
    )
    .await?;
    if status.json["served"].as_bool() != Some(true) {
        return Err(WarmError::NotServed(
            operator::describe_status(&status).text,
        ));
    }
    let transport = CoreTransport::new(None, HARBOR_TIMEOUT)?;
    let harbor = CoreClient::new(
        transport.connections(1, HARBOR_TIMEOUT),
        urls.harbor.clone(),
        HARBOR_TIMEOUT,
        None,
    );
    let (sender, mut receiver) = mpsc::channel::<Artifact>(1000);
    let listing = list(&harbor, args, caller, sender, progress);
    let warming = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
        .map(Ok::<_, WarmError>)
        .try_for_each_concurrent(CONCURRENCY, |artifact| {
            warm_one(&client, &urls.warm, caller, artifact, progress)
        });
    let (listed, warmed) = futures_util::future::join(listing, warming).await;
    warmed?;
    match listed {
        Ok(()) => Ok(None),
        Err(ListingError::Fatal(error)) => Err(error),
        Err(ListingError::Harbor(error)) => Ok(Some(error)),
    }
}

/// Has the sidecar warm `artifact`; waits and asks again when told to come back (`429`). An
/// answer refusing the caller stops the run.
async fn warm_one(
    client: &reqwest::Client,
    endpoint: &Url,
    caller: &BasicAuth,
    artifact: Artifact,
    progress: &Progress,
) -> Result<(), WarmError> {
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("repository", &artifact.repository)
        .append_pair("digest", &artifact.digest);
    loop {
        let request = client
            .post(url.clone())
            .basic_auth(&caller.username, Some(&caller.password));
        match operator::send(request, &url).await {
            Ok(answer) => {
                let result = answer.json["result"].as_str().unwrap_or("unreadable");
                progress.done(&artifact, result);
                return Ok(());
            }
            Err(CommandError::Refused {
                status: 429,
                message,
                retry_after,
                ..
            }) => {
                let seconds = retry_after.unwrap_or(1).max(1);
                progress.waiting(&format!("waiting {seconds} s: {message}"));
                tokio::time::sleep(Duration::from_secs(seconds)).await;
            }
            // The caller may not warm this project: no other artifact can be either.
            Err(
                error @ CommandError::Refused {
                    status: 401 | 403 | 404,
                    ..
                },
            ) => {
                return Err(error.into());
            }
            Err(CommandError::Refused {
                status, message, ..
            }) => {
                progress.done(&artifact, &format!("refused ({status}: {message})"));
                return Ok(());
            }
            Err(other) => return Err(other.into()),
        }
    }
}
