//! The referrers use case: core authorizes the caller and lists the local referrers; for an
//! enabled proxy-cache project the upstream's referrers are merged in, filtered and paged.

mod answer;
mod core_calls;
mod early;
mod key_bytes;
mod library;
mod memo;
mod request;
#[cfg(test)]
mod tests;

pub use answer::{Answer, RelayReason, Served};
pub use core_calls::{CallKey, CoreCalls};
pub use memo::{AnswerMemo, GZIP_MIN_BYTES, WrittenPage};
pub use request::{Caller, RawReferrersPath, ReferrersRequest, RequestError};

use bytes::Bytes;
use futures_util::FutureExt as _;
use std::sync::Arc;

use harbor_client::{CoreReferrers, HarborError};
use oci_referrers::{Descriptor, PageLimit, PreparedList, encode_prepared_page};
use tokio::time::{Instant, timeout_at};
use tracing::Instrument as _;

use crate::cache::{Looked, ReferrersCache, UpstreamAnswer};
use crate::config::ResponseSettings;
use crate::harbor::Core;
use crate::metrics::Metrics;
use crate::serving::{NoUpstream, PassThrough, Read, ServedProject, Serving};
use crate::store_in_harbor::StoreInHarbor;
use crate::telemetry;
use crate::upstream::UpstreamTarget;
use early::{EarlyLookup, OpenedLookup, alongside};
use memo::MemoKey;

/// The cache lookup started alongside core's call: the target it looked up, and what it found.
type CacheLookup<'a> = EarlyLookup<'a, (UpstreamTarget, Looked)>;
type OpenedCacheLookup<'a> = OpenedLookup<'a, (UpstreamTarget, Looked)>;

/// Core's local referrers for a served request, and core's body when it held them all.
struct CoreList<'a> {
    descriptors: Vec<Descriptor>,
    /// `None` when core paged its answer: the first body is not the whole list.
    body: Option<&'a Bytes>,
}

/// The referrers use case, with what it uses: one worker's connection to Harbor core and its
/// calls in flight, the serving decision, the cache, the store offer and the answer's bounds.
pub struct Referrers<'a> {
    pub core: &'a Arc<dyn Core>,
    pub core_calls: &'a CoreCalls,
    /// Pages written for earlier identical requests.
    pub memo: &'a AnswerMemo,
    pub serving: &'a Serving,
    pub cache: &'a Arc<ReferrersCache>,
    /// `None` when no project may store upstream referrers in Harbor.
    pub store: Option<&'a StoreInHarbor>,
    pub response: &'a ResponseSettings,
    pub metrics: &'a Metrics,
}

impl Referrers<'_> {
    /// Decides and gathers the answer to `request`, within `response.deadline` from now:
    /// core's answer, Harbor's facts, the cache and the upstream all spend from that one budget.
    pub async fn answer(&self, request: &ReferrersRequest, caller: Caller<'_>) -> Answer {
        // A project known not to be served: the request goes to core exactly as it came, and
        // Harbor is asked nothing else.
        let known = match self
            .serving
            .project(Read::Peek, request.name.project())
            .await
        {
            Ok(Ok(served)) => Some(served),
            Ok(Err(reason)) => return Answer::Forward(PassThrough::Project(reason)),
            // Not at hand (a peek asks Harbor nothing).
            Err(_) => None,
        };
        let budget = caller.budget.map_or(self.response.deadline, |asked| {
            asked.min(self.response.deadline)
        });
        let deadline = Instant::now() + budget;

        // A project known to be served: its cached list is looked up while core is asked, and
        // stays sealed until core has listed the referrers for this caller.
        let mut early = match &known {
            Some(served) => self.early_lookup(request, served).await,
            None => None,
        };

        // Core authorizes the caller and lists the local referrers in one call; when the budget
        // runs out first, the caller gets a 504 and nothing else is asked.
        // An identical request's call in flight is shared: each caller waits within its own
        // budget, and one giving up does not cancel it for the others.
        let key = CallKey::new(
            caller.method,
            caller.raw_path,
            caller.raw_query,
            caller.headers,
        );
        let joined = self.core_calls.join(key.clone(), || {
            let core = Arc::clone(self.core);
            let (name, digest) = (request.name.clone(), request.digest.clone());
            let (mut headers, request_id) = (caller.headers.clone(), caller.request_id.to_owned());
            // Core continues the trace from this span (the caller's own context otherwise).
            let span = tracing::info_span!(target: telemetry::SPANS, "core referrers");
            telemetry::pass_context(&span, &mut headers);
            async move {
                core.local_referrers(&name, &digest, &headers, &request_id)
                    .await
            }
            .instrument(span)
            .boxed_local()
        });
        if joined.shared {
            self.metrics.count_core_call_coalesced();
            if telemetry::on() {
                telemetry::attribute(&tracing::Span::current(), "core.call_shared", true);
            }
        }
        let listed = timeout_at(deadline, alongside(joined.call, early.as_mut()))
            .await
            .unwrap_or(Err(HarborError::Timeout));
        self.core_calls.settle(&key);
        let opened = match (early, &listed) {
            (Some(early), Ok(core)) => early.open(core),
            _ => None,
        };
        let (local, first, one_page) = match listed {
            Ok(CoreReferrers::Listed {
                descriptors,
                first,
                one_page,
                ..
            }) => (descriptors, first, one_page),
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
            Some(served) => Ok(served),
            None => timeout_at(deadline, self.served_project(request.name.project()))
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
                let core = CoreList {
                    descriptors: local,
                    body: one_page.then_some(&first.body),
                };
                self.serve(request, caller, core, &project, opened, deadline)
                    .await
            }
            Err(reason) => Err(reason),
        };
        match served {
            Ok(served) => Answer::Served(served),
            // Core's own answer: the one already read when it was asked exactly that.
            Err(reason) if caller.plain_get() => {
                Answer::Relay(first, RelayReason::PassThrough(reason))
            }
            Err(reason) => Answer::Forward(reason),
        }
    }

    /// The cache lookup for `request` in a project known to be served, when its registry's
    /// facts are at hand and the repository is one Harbor's allowlist lets through: it reads
    /// the cache tiers only, never the upstream.
    async fn early_lookup<'r>(
        &self,
        request: &'r ReferrersRequest,
        served: &ServedProject,
    ) -> Option<CacheLookup<'r>>
    where
        Self: 'r,
    {
        let repository = request.name.repository()?;
        if request.digest.is_zero() {
            return None;
        }
        let target = self
            .serving
            .upstream(Read::Peek, served, repository)
            .await
            .ok()?;
        let (cache, registry_id) = (self.cache, served.registry_id);
        Some(EarlyLookup::new(registry_id, async move {
            let looked = cache.look_up(&target, registry_id, &request.digest).await;
            (target, looked)
        }))
    }

    /// Whether `project` is served, from Harbor's facts (read when not at hand), or why its
    /// referrers are core's alone.
    async fn served_project(&self, project: &str) -> Result<ServedProject, PassThrough> {
        match self
            .serving
            .project(Read::Load(&**self.core), project)
            .await
        {
            Ok(decision) => decision.map_err(PassThrough::Project),
            Err(error) => {
                tracing::warn!(project, error = %error, "cannot read the project from Harbor; passing core's answer through");
                Err(PassThrough::FactsUnavailable)
            }
        }
    }

    /// Merges the upstream's referrers (from the cache when it has them) with the local ones,
    /// then filters and pages the result. What is not there by `deadline` is left out: the
    /// caller gets core's local referrers (and a stale list, which the cache serves at once)
    /// rather than an answer after it gave up.
    async fn serve(
        &self,
        request: &ReferrersRequest,
        caller: Caller<'_>,
        core: CoreList<'_>,
        project: &ServedProject,
        early: Option<OpenedCacheLookup<'_>>,
        deadline: Instant,
    ) -> Result<Served, PassThrough> {
        let (library_local, upstream_answer) = self
            .upstream_part(request, caller, project, early, deadline)
            .await?;
        // The page an identical request got, when it was made of the same upstream entry and
        // the same list from core (read whole, and nothing from `library/`).
        let key = core
            .body
            .filter(|_| self.memo.is_on() && library_local.is_empty())
            .map(|body| {
                let list = upstream_answer.list.as_deref();
                MemoKey::of_page(request, caller.raw_query, project.registry_id, list, body)
            });
        if let Some(page) = key.as_ref().and_then(|key| self.memo.get(key)) {
            self.metrics
                .descriptors_served
                .observe(page.page.count as f64);
            return Ok(Served {
                page,
                upstream: upstream_answer.upstream,
                cache: upstream_answer.cache,
            });
        }
        let mut local = core.descriptors;
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
                bytes: self.response.max_bytes,
            },
            None => PageLimit::Bytes(self.response.max_bytes),
        };
        let page = encode_prepared_page(
            upstream,
            &PreparedList::new(&local),
            &request.query.artifact_types,
            request.query.last.as_ref(),
            limit,
        );
        self.metrics.descriptors_served.observe(page.count as f64);
        let page = Arc::new(WrittenPage::new(page));
        if let Some(key) = key {
            self.memo.insert(key, Arc::clone(&page));
        }
        Ok(Served {
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
        served: &ServedProject,
        early: Option<OpenedCacheLookup<'_>>,
        deadline: Instant,
    ) -> Result<(Vec<Descriptor>, UpstreamAnswer), PassThrough> {
        let project = request.name.project();
        let repository = request.name.repository().ok_or(PassThrough::NoRepository)?;
        let registry_id = served.registry_id;
        let early = early.filter(|early| early.registry_id() == registry_id);
        let resolved = match early {
            Some(early) => timeout_at(deadline, early.finish())
                .await
                .map(|(target, looked)| Ok((target, Some(looked)))),
            None => timeout_at(
                deadline,
                self.serving
                    .upstream(Read::Load(&**self.core), served, repository),
            )
            .await
            .map(|resolved| resolved.map(|target| (target, None))),
        };
        let (target, looked) = match resolved {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(NoUpstream::NotInAllowlist)) => return Err(PassThrough::NotInAllowlist),
            Ok(Err(reason)) => {
                tracing::warn!(
                    project,
                    registry_id,
                    %reason,
                    "no upstream call for this project"
                );
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
                    self.cache
                        .answer_from(looked, &target, &request.digest)
                        .await
                }
                None => {
                    self.cache
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
        self.metrics
            .count_upstream_result(&target.registry.name, upstream_answer.upstream);
        if let Some(store) = self.store {
            store
                .offer(&request.name, &request.digest, &target, &upstream_answer)
                .await;
        }
        Ok((library_local, upstream_answer))
    }
}
