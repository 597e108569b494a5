//! The referrers use case: core authorizes the caller and lists the local referrers; for an
//! enabled proxy-cache project the upstream's referrers are merged in, filtered and paged.

mod answer;
mod early;
mod request;

pub use answer::{Answer, PassThrough, RelayReason, Served};
pub use request::{RawReferrersPath, ReferrersRequest};

use actix_web::http::header::HeaderMap;
use std::sync::Arc;

use harbor_client::{CoreClient, CoreReferrers, HarborError, Project};
use oci_referrers::{Descriptor, PageLimit, PreparedList, RepositoryName, encode_prepared_page};
use tokio::time::{Instant, timeout_at};

use crate::cache::{Looked, UpstreamAnswer};
use crate::harbor::{Decision, NotServed};
use crate::state::AppState;
use crate::upstream::{self, UpstreamTarget};
use early::{EarlyLookup, OpenedLookup, alongside};

/// The cache lookup started alongside core's call: the target it looked up, and what it found.
type CacheLookup<'a> = EarlyLookup<'a, (UpstreamTarget, Looked)>;
type OpenedCacheLookup<'a> = OpenedLookup<'a, (UpstreamTarget, Looked)>;

/// What the use case needs of the HTTP request besides its parsed form.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The caller's headers: core authorizes the caller from them.
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// A `GET` without a query asks exactly what core is asked, so core's listing can be
    /// relayed as this request's answer.
    pub plain_get: bool,
}

/// A project whose upstream referrers are merged: its Harbor registry, the repository under
/// it (the name without `<project>/`), and Harbor's facts about it.
struct ServedProject<'r> {
    registry_id: i64,
    repository: &'r str,
    facts: Arc<Project>,
}

impl<'r> ServedProject<'r> {
    /// `request`'s repository in a project served from Harbor registry `registry_id`.
    fn of(
        request: &'r ReferrersRequest,
        registry_id: i64,
        facts: Arc<Project>,
    ) -> Result<Self, PassThrough> {
        Ok(Self {
            registry_id,
            repository: request.name.repository().ok_or(PassThrough::NoRepository)?,
            facts,
        })
    }
}

/// The referrers use case, with one worker's client for Harbor core.
pub struct Referrers<'a> {
    state: &'a AppState,
    core: &'a CoreClient,
}

impl<'a> Referrers<'a> {
    #[must_use]
    pub fn new(state: &'a AppState, core: &'a CoreClient) -> Self {
        Self { state, core }
    }

    /// Decides and gathers the answer to `request`, within `response.deadline` from now:
    /// core's answer, Harbor's facts, the cache and the upstream all spend from that one budget.
    pub async fn answer(&self, request: &ReferrersRequest, caller: Caller<'_>) -> Answer {
        // A project known not to be served: the request goes to core exactly as it came, and
        // Harbor is asked nothing else.
        let known = match self.known_project(request.name.project()).await {
            Ok(known) => known,
            Err(reason) => return Answer::Forward(PassThrough::Project(reason)),
        };
        let deadline = Instant::now() + self.state.settings.response.deadline;

        // A project known to be served: its cached list is looked up while core is asked, and
        // stays sealed until core has listed the referrers for this caller.
        let mut early = match &known {
            Some((registry_id, facts)) => self.early_lookup(request, *registry_id, facts).await,
            None => None,
        };

        // Core authorizes the caller and lists the local referrers in one call; when the budget
        // runs out first, the caller gets a 504 and nothing else is asked.
        let listed = timeout_at(
            deadline,
            alongside(
                self.core.local_referrers(
                    &request.name,
                    &request.digest,
                    caller.headers,
                    caller.request_id,
                ),
                early.as_mut(),
            ),
        )
        .await
        .unwrap_or(Err(HarborError::Timeout));
        let opened = match (early, &listed) {
            (Some(early), Ok(core)) => early.open(core),
            _ => None,
        };
        let (local, first) = match listed {
            Ok(CoreReferrers::Listed {
                descriptors, first, ..
            }) => (descriptors, first),
            Ok(CoreReferrers::Relayed(answer)) => {
                return Answer::Relay(answer, RelayReason::CoreVerdict);
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot ask Harbor core for referrers");
                return Answer::CoreFailed(error);
            }
        };

        // Core said 200: only now may Harbor's facts about the project be read, unless they
        // were at hand already. A load of them that another request started is waited for
        // within this request's budget only.
        let served = match known {
            Some((registry_id, facts)) => ServedProject::of(request, registry_id, facts),
            None => timeout_at(deadline, self.served_project(request))
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        project = request.name.project(),
                        "the time budget ran out reading the project from Harbor; passing core's answer through"
                    );
                    Err(PassThrough::FactsUnavailable)
                }),
        };
        let served = match served {
            Ok(project) => {
                self.serve(request, caller, local, &project, opened, deadline)
                    .await
            }
            Err(reason) => Err(reason),
        };
        match served {
            Ok(served) => Answer::Served(served),
            // Core's own answer: the one already read when it was asked exactly that.
            Err(reason) if caller.plain_get => {
                Answer::Relay(first, RelayReason::PassThrough(reason))
            }
            Err(reason) => Answer::Forward(reason),
        }
    }

    /// What is known of `project` without asking Harbor anything: why it is not served
    /// (`Err`), its registry and facts when Harbor's facts say it is, `None` when they are not
    /// at hand.
    async fn known_project(&self, project: &str) -> Result<Option<(i64, Arc<Project>)>, NotServed> {
        let toggle = &self.state.settings.projects;
        // With the label switch on, only Harbor's facts (cached) can tell.
        if !toggle.is_enabled(project) && toggle.label.is_none() {
            return Err(NotServed::NotEnabled);
        }
        match self
            .state
            .facts
            .cached_decision_with_project(project, toggle)
            .await
        {
            Some((Decision::PassThrough(reason), _)) => Err(reason),
            Some((Decision::Serve { registry_id }, Some(facts))) => Ok(Some((registry_id, facts))),
            _ => Ok(None),
        }
    }

    /// The cache lookup for `request` in a project known to be served, when its registry's
    /// facts are at hand and the repository is one Harbor's allowlist lets through: it reads
    /// the cache tiers only, never the upstream.
    async fn early_lookup<'r>(
        &self,
        request: &'r ReferrersRequest,
        registry_id: i64,
        facts: &Project,
    ) -> Option<CacheLookup<'r>>
    where
        'a: 'r,
    {
        let repository = request.name.repository()?;
        if request.digest.is_zero() {
            return None;
        }
        let state = self.state;
        let target = upstream::resolve_cached(state, registry_id, repository).await?;
        if !facts.repository_filter.allows(&target.repository) {
            return None;
        }
        let cache = &state.cache;
        Some(EarlyLookup::new(registry_id, async move {
            let looked = cache.look_up(&target, registry_id, &request.digest).await;
            (target, looked)
        }))
    }

    /// The Harbor registry and the repository (the name without `<project>/`) whose upstream
    /// referrers are merged, or why there are none to merge.
    async fn served_project<'r>(
        &self,
        request: &'r ReferrersRequest,
    ) -> Result<ServedProject<'r>, PassThrough> {
        let state = self.state;
        let project = request.name.project();
        let (decision, facts) = state
            .facts
            .decision_with_project(self.core, project, &state.settings.projects, &state.metrics)
            .await
            .map_err(|error| {
                tracing::warn!(project, error = %error, "cannot read the project from Harbor; passing core's answer through");
                PassThrough::FactsUnavailable
            })?;
        let (registry_id, facts) = match (decision, facts) {
            (Decision::Serve { registry_id }, Some(facts)) => (registry_id, facts),
            (Decision::PassThrough(reason), _) => return Err(PassThrough::Project(reason)),
            (Decision::Serve { .. }, None) => {
                return Err(PassThrough::Project(NotServed::UnknownProject));
            }
        };
        ServedProject::of(request, registry_id, facts)
    }

    /// Merges the upstream's referrers (from the cache when it has them) with the local ones,
    /// then filters and pages the result. What is not there by `deadline` is left out: the
    /// caller gets core's local referrers (and a stale list, which the cache serves at once)
    /// rather than an answer after it gave up.
    async fn serve(
        &self,
        request: &ReferrersRequest,
        caller: Caller<'_>,
        mut local: Vec<Descriptor>,
        project: &ServedProject<'_>,
        early: Option<OpenedCacheLookup<'_>>,
        deadline: Instant,
    ) -> Result<Served, PassThrough> {
        let state = self.state;
        let (library_local, upstream_answer) = self
            .upstream_part(request, caller, project, early, deadline)
            .await?;
        local.extend(library_local);
        // The cached list is served as stored, its bytes copied into the page as they are;
        // core's list, small, is sorted and encoded per request.
        let none = PreparedList::default();
        let upstream = upstream_answer
            .list
            .as_deref()
            .map_or(&none, |list| &list.descriptors);
        let limit = match request.query.n {
            Some(count) => PageLimit::CountWithin {
                count,
                bytes: state.settings.response.max_bytes,
            },
            None => PageLimit::Bytes(state.settings.response.max_bytes),
        };
        let page = encode_prepared_page(
            upstream,
            &PreparedList::new(&local),
            &request.query.artifact_types,
            request.query.last.as_ref(),
            limit,
        );
        state.metrics.descriptors_served.observe(page.count as f64);
        Ok(Served {
            total: page.total,
            page,
            upstream: upstream_answer.upstream,
            cache: upstream_answer.cache,
        })
    }

    /// The upstream's list for the request (and, for Docker Hub's single-segment names, the
    /// local referrers Harbor keeps under `library/`), as far as it comes by `deadline`. An
    /// upstream fetch is a task of its own: when the request stops waiting, the fetch still
    /// ends (within `upstream.timeout`) and fills the cache. A repository Harbor's allowlist
    /// excludes is core's alone: no upstream call. `early` is the cache lookup started
    /// alongside core's call, if any: its target and what it found are used when it was made
    /// for the registry the project is served from now.
    async fn upstream_part(
        &self,
        request: &ReferrersRequest,
        caller: Caller<'_>,
        served: &ServedProject<'_>,
        early: Option<OpenedCacheLookup<'_>>,
        deadline: Instant,
    ) -> Result<(Vec<Descriptor>, UpstreamAnswer), PassThrough> {
        let state = self.state;
        let project = request.name.project();
        let (registry_id, repository) = (served.registry_id, served.repository);
        let early = early.filter(|early| early.registry_id() == registry_id);
        let resolved = match early {
            Some(early) => timeout_at(deadline, early.finish())
                .await
                .map(|(target, looked)| Ok((target, Some(looked)))),
            None => timeout_at(
                deadline,
                upstream::resolve(state, self.core, registry_id, repository),
            )
            .await
            .map(|resolved| resolved.map(|target| (target, None))),
        };
        let (target, looked) = match resolved {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(reason)) => {
                tracing::warn!(project, registry_id, %reason, "no upstream call for this project");
                return Ok((Vec::new(), UpstreamAnswer::skipped()));
            }
            Err(_) => {
                tracing::warn!(
                    project,
                    registry_id,
                    "the time budget ran out reading the registry or the cache; serving the local referrers"
                );
                return Ok((Vec::new(), UpstreamAnswer::timed_out()));
            }
        };
        // Harbor matches the upstream repository's name: `library/nginx` for Docker Hub's
        // `nginx`, as its pulls are checked after their redirect to `library/`.
        let filter = &served.facts.repository_filter;
        if !filter.allows(&target.repository) {
            tracing::debug!(
                project,
                repository = %target.repository,
                filter = ?filter,
                "Harbor's proxy allowlist excludes the repository; core's answer stands"
            );
            return Err(PassThrough::NotInAllowlist);
        }
        let library_local = async {
            if target.library_mapped {
                self.library_referrers(request, repository, caller).await
            } else {
                Vec::new()
            }
        };
        let upstream_answer = async {
            match looked {
                _ if request.digest.is_zero() => UpstreamAnswer::skipped(),
                Some(looked) => {
                    state
                        .cache
                        .answer_from(looked, &target, &request.digest)
                        .await
                }
                None => {
                    state
                        .cache
                        .upstream_referrers(&target, registry_id, &request.digest)
                        .await
                }
            }
        };
        let (library_local, upstream_answer) = timeout_at(
            deadline,
            futures_util::future::join(library_local, upstream_answer),
        )
        .await
        .unwrap_or_else(|_| {
            tracing::warn!(
                project,
                registry = %target.registry.name,
                "the time budget ran out before the upstream's referrers came; serving the local ones (the fetch goes on in the background)"
            );
            (Vec::new(), UpstreamAnswer::timed_out())
        });
        state
            .metrics
            .count_upstream_result(&target.registry.name, upstream_answer.upstream);
        if let Some(store) = &state.store {
            store
                .offer(&request.name, &request.digest, &target, &upstream_answer)
                .await;
        }
        Ok((library_local, upstream_answer))
    }

    /// Docker Hub's single-segment names are stored by Harbor under `<project>/library/<name>`:
    /// their local referrers are there.
    async fn library_referrers(
        &self,
        request: &ReferrersRequest,
        repository: &str,
        caller: Caller<'_>,
    ) -> Vec<Descriptor> {
        let Ok(name) =
            format!("{}/library/{repository}", request.name.project()).parse::<RepositoryName>()
        else {
            return Vec::new();
        };
        match self
            .core
            .local_referrers(&name, &request.digest, caller.headers, caller.request_id)
            .await
        {
            Ok(CoreReferrers::Listed { descriptors, .. }) => descriptors,
            Ok(CoreReferrers::Relayed(answer)) => {
                tracing::info!(%name, status = %answer.status, "core did not list the library/ path");
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%name, error = %error, "cannot ask core for the library/ path");
                Vec::new()
            }
        }
    }
}
