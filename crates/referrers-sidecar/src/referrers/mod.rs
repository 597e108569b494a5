//! The referrers use case: core authorizes the caller and lists the local referrers; for an
//! enabled proxy-cache project the upstream's referrers are merged in, filtered and paged.

mod answer;
mod request;

pub use answer::{Answer, PassThrough, RelayReason, Served};
pub use request::{RawReferrersPath, ReferrersRequest};

use actix_web::http::header::HeaderMap;
use harbor_client::{CoreClient, CoreReferrers};
use oci_referrers::{
    Descriptor, PageLimit, RepositoryName, encode_page, filter_by_artifact_type, merge,
};

use crate::cache::UpstreamAnswer;
use crate::harbor::{Decision, NotServed};
use crate::state::AppState;
use crate::upstream;

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

    /// Decides and gathers the answer to `request`.
    pub async fn answer(&self, request: &ReferrersRequest, caller: Caller<'_>) -> Answer {
        // A project known not to be served: the request goes to core exactly as it came, and
        // Harbor is asked nothing else.
        if let Some(reason) = self.known_unserved(request.name.project()).await {
            return Answer::Forward(PassThrough::Project(reason));
        }

        // Core authorizes the caller and lists the local referrers in one call.
        let listed = self
            .core
            .local_referrers(
                &request.name,
                &request.digest,
                caller.headers,
                caller.request_id,
            )
            .await;
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

        // Core said 200: only now may Harbor's facts about the project be read.
        match self.served_project(request).await {
            Ok((registry_id, repository)) => Answer::Served(
                self.serve(request, caller, local, registry_id, repository)
                    .await,
            ),
            // Core's own answer: the one already read when it was asked exactly that.
            Err(reason) if caller.plain_get => {
                Answer::Relay(first, RelayReason::PassThrough(reason))
            }
            Err(reason) => Answer::Forward(reason),
        }
    }

    /// Why `project` is not served, when that is known without asking Harbor anything.
    async fn known_unserved(&self, project: &str) -> Option<NotServed> {
        let toggle = &self.state.settings.projects;
        if !toggle.is_enabled(project) {
            return Some(NotServed::NotEnabled);
        }
        match self.state.facts.cached_decision(project, toggle).await {
            Some(Decision::PassThrough(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The Harbor registry and the repository (the name without `<project>/`) whose upstream
    /// referrers are merged, or why there are none to merge.
    async fn served_project<'r>(
        &self,
        request: &'r ReferrersRequest,
    ) -> Result<(i64, &'r str), PassThrough> {
        let state = self.state;
        let project = request.name.project();
        let facts = state
            .facts
            .project(self.core, project, &state.metrics)
            .await
            .map_err(|error| {
                tracing::warn!(project, error = %error, "cannot read the project from Harbor; passing core's answer through");
                PassThrough::FactsUnavailable
            })?;
        let registry_id =
            match state
                .facts
                .decide(project, facts.as_deref(), &state.settings.projects)
            {
                Decision::Serve { registry_id } => registry_id,
                Decision::PassThrough(reason) => return Err(PassThrough::Project(reason)),
            };
        let repository = request.name.repository().ok_or(PassThrough::NoRepository)?;
        Ok((registry_id, repository))
    }

    /// Merges the upstream's referrers (from the cache when it has them) with the local ones,
    /// then filters and pages the result.
    async fn serve(
        &self,
        request: &ReferrersRequest,
        caller: Caller<'_>,
        mut local: Vec<Descriptor>,
        registry_id: i64,
        repository: &str,
    ) -> Served {
        let state = self.state;
        let target = upstream::resolve(
            &state.settings,
            &state.facts,
            self.core,
            &state.metrics,
            registry_id,
            repository,
        )
        .await;
        let library_local = async {
            match &target {
                Ok(target) if target.library_mapped => {
                    self.library_referrers(request, repository, caller).await
                }
                _ => Vec::new(),
            }
        };
        let upstream_answer = async {
            match &target {
                Ok(target) if !request.digest.is_zero() => {
                    state
                        .cache
                        .upstream_referrers(target, registry_id, &request.digest)
                        .await
                }
                Ok(_) => UpstreamAnswer::skipped(),
                Err(reason) => {
                    tracing::warn!(project = request.name.project(), registry_id, %reason, "no upstream call for this project");
                    UpstreamAnswer::skipped()
                }
            }
        };
        let (library_local, upstream_answer) = futures_util::join!(library_local, upstream_answer);
        if let Ok(target) = &target {
            state
                .metrics
                .upstream_results
                .with_label_values(&[
                    target.registry.name.as_str(),
                    upstream_answer.upstream.as_str(),
                ])
                .inc();
        }
        local.extend(library_local);
        // The cached list is served by reference: nothing is copied per request.
        let upstream = upstream_answer
            .list
            .as_deref()
            .map_or(&[][..], |list| list.descriptors.as_slice());
        let merged = merge(upstream, &local);
        let filtered = filter_by_artifact_type(merged, &request.query.artifact_types);
        let limit = match request.query.n {
            Some(n) => PageLimit::Count(n),
            None => PageLimit::Bytes(state.settings.response.max_bytes),
        };
        let page = encode_page(&filtered, request.query.last.as_ref(), limit);
        state.metrics.descriptors_served.observe(page.count as f64);
        Served {
            page,
            total: filtered.len(),
            upstream: upstream_answer.upstream,
            cache: upstream_answer.cache,
        }
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
