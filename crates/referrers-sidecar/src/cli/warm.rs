//! `warm`: warms a whole project's cached lists in a running sidecar. The project's artifacts
//! are listed through Harbor's API with the caller's own credentials (read through the sidecar,
//! which passes Harbor's API on to core, unless `--harbor-url` says where Harbor is), and each
//! is handed to the sidecar's operator API (`POST …/projects/<project>/warm`), a few at a time:
//! the sidecar decides, paces and fetches as for a pulled artifact, and says when to come back
//! (`429`) when the registry's turn is far off or it rests after a rate limit. Progress shows
//! as a bar on a terminal, as plain lines otherwise, as JSON lines with `--json`; Ctrl-C stops
//! it, and a run again skips what is fresh.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use harbor_client::{BasicAuth, CoreClient, CoreTransport, HarborError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_referrers::RepositoryName;
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use super::operator::{self, CommandError, Target};
use crate::operator::is_project_name;

/// Artifacts handed to the sidecar at once: what it warms of a project at once by default
/// (`operator.warm_queue_per_project` is 8), and what its webhook warm-up does.
const CONCURRENCY: usize = 4;

/// Bounds each call to Harbor's API.
const HARBOR_TIMEOUT: Duration = Duration::from_secs(30);

/// How often plain progress lines are printed (not on a terminal, without `--json`).
const LINE_EVERY: Duration = Duration::from_secs(10);

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

/// What became of one artifact, by the result the sidecar named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Fetched into the cache (or a stale list's refresh started).
    Warmed,
    /// Already fresh: nothing fetched.
    Fresh,
    /// Not served: a repository outside Harbor's proxy allowlist.
    Skipped,
    /// Not warmed: the upstream failed, its breaker is open, its list too large, ….
    Failed,
}

impl Outcome {
    /// From the sidecar's result (`harbor_referrers_operator_warms_total`'s labels).
    fn of(result: &str) -> Self {
        match result {
            "fetched" | "stale" => Self::Warmed,
            "fresh" => Self::Fresh,
            "unserved" => Self::Skipped,
            _ => Self::Failed,
        }
    }
}

/// The counts of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    listed: u64,
    /// Listed but not used within `--since`: not warmed.
    older: u64,
    warmed: u64,
    fresh: u64,
    skipped: u64,
    failed: u64,
}

impl Counts {
    fn done(&self) -> u64 {
        self.warmed + self.fresh + self.skipped + self.failed
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Warmed => self.warmed += 1,
            Outcome::Fresh => self.fresh += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failed += 1,
        }
    }

    /// The counts in words.
    fn describe(&self) -> String {
        let mut text = format!(
            "{} warmed, {} already fresh, {} failed",
            self.warmed, self.fresh, self.failed
        );
        if self.skipped > 0 {
            text.push_str(&format!(
                ", {} outside Harbor's proxy allowlist",
                self.skipped
            ));
        }
        text
    }
}

/// One artifact to warm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Artifact {
    /// Named in Harbor without the project.
    repository: String,
    digest: String,
}

/// How progress is shown.
enum Display {
    /// A bar on the terminal (stderr).
    Bar(ProgressBar),
    /// A line now and then on stderr.
    Lines { last: Mutex<Instant> },
    /// Nothing but the JSON lines on stdout.
    Quiet,
}

/// The run's progress: its counts, and how they are shown.
struct Progress {
    counts: Mutex<Counts>,
    listing: Mutex<bool>,
    started: Instant,
    display: Display,
    json: bool,
    project: String,
}

impl Progress {
    fn new(project: &str, json: bool) -> Self {
        let display = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} listed · {msg} · {per_sec:1} · ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("warming {project}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        } else if json {
            Display::Quiet
        } else {
            Display::Lines {
                last: Mutex::new(Instant::now()),
            }
        };
        Self {
            counts: Mutex::default(),
            listing: Mutex::new(true),
            started: Instant::now(),
            display,
            json,
            project: project.to_owned(),
        }
    }

    fn counts(&self) -> Counts {
        *self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        let counts = {
            let mut counts = self
                .counts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            change(&mut counts);
            *counts
        };
        match &self.display {
            Display::Bar(bar) => {
                bar.set_length(counts.listed);
                bar.set_position(counts.done());
                bar.set_message(counts.describe());
            }
            Display::Lines { last } => {
                let mut last = last
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", self.line(&counts));
                }
            }
            Display::Quiet => {}
        }
    }

    fn listed_all(&self) {
        *self
            .listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
    }

    /// A plain progress line: counts, rate, and (once listed) the time left.
    fn line(&self, counts: &Counts) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let done = counts.done();
        // Whole artifacts a second: what a reader needs, and exact enough.
        #[allow(clippy::cast_precision_loss)]
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let listing = *self
            .listing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let left = if listing {
            "listing".to_owned()
        } else if rate > 0.0 {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let seconds = (counts.listed.saturating_sub(done) as f64 / rate).ceil() as u64;
            format!(
                "ETA {}",
                humantime::format_duration(Duration::from_secs(seconds))
            )
        } else {
            "ETA unknown".to_owned()
        };
        format!(
            "warming {}: {done}/{} listed · {} · {rate:.1}/s · {left}",
            self.project,
            counts.listed,
            counts.describe()
        )
    }

    /// An artifact's outcome: counted; with `--json`, a line on stdout; a failure is said.
    fn done(&self, artifact: &Artifact, result: &str) {
        let outcome = Outcome::of(result);
        self.update(|counts| counts.add(outcome));
        if self.json {
            let line = json!({"repository": artifact.repository, "digest": artifact.digest, "result": result});
            match &self.display {
                Display::Bar(bar) => bar.suspend(|| println!("{line}")),
                _ => println!("{line}"),
            }
        } else if outcome == Outcome::Failed {
            self.say(&format!(
                "not warmed: {}@{}: {result}",
                artifact.repository, artifact.digest
            ));
        }
    }

    /// A line on stderr that does not break the bar.
    fn say(&self, text: &str) {
        match &self.display {
            Display::Bar(bar) => bar.suspend(|| eprintln!("{text}")),
            _ => eprintln!("{text}"),
        }
    }

    /// What the run waits for, on the bar.
    fn waiting(&self, why: &str) {
        if let Display::Bar(bar) = &self.display {
            bar.set_message(format!("{} · {why}", self.counts().describe()));
        }
    }

    fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish();
        }
    }
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

enum ListingError {
    /// The caller may not list the project: nothing more can be done.
    Fatal(WarmError),
    /// Harbor failed while listing.
    Harbor(HarborError),
}

/// Lists the artifacts to warm into `sender`: those of `--repository`, or of every repository;
/// each once, only those used within `--since`.
async fn list(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecars_results_are_counted_as_warmed_fresh_skipped_or_failed() {
        let mut counts = Counts::default();
        for result in [
            "fetched",
            "stale",
            "fresh",
            "unserved",
            "error",
            "skipped",
            "rate_limited",
            "too_large",
            "refused (400: invalid digest)",
        ] {
            counts.add(Outcome::of(result));
        }
        assert_eq!(
            (counts.warmed, counts.fresh, counts.skipped, counts.failed),
            (2, 1, 1, 5)
        );
        assert_eq!(counts.done(), 9);
        assert_eq!(
            counts.describe(),
            "2 warmed, 1 already fresh, 5 failed, 1 outside Harbor's proxy allowlist"
        );
    }
}
