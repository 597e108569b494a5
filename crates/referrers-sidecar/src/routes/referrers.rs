//! `GET|HEAD /v2/<name>/referrers/<digest>`: parsed once from the raw path and query; core
//! authorizes the caller and lists the local referrers; for an enabled proxy-cache project the
//! upstream's referrers are merged in, filtered and paged.

use std::time::Instant;

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use harbor_client::{CoreAnswer, CoreClient, CoreReferrers, HarborError};
use oci_referrers::{
    Descriptor, Digest, INDEX_MEDIA_TYPE, PageLimit, ReferrersQuery, RepositoryName,
    build_next_link, encode_page, filter_by_artifact_type, merge,
};

use super::passthrough::Forwarder;
use crate::cache::UpstreamAnswer;
use crate::error::{API_VERSION_HEADER, ApiError};
use crate::harbor::Decision;
use crate::state::AppState;
use crate::telemetry;
use crate::upstream;

/// The raw `<name>` and `<digest>` of a referrers path, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawReferrersPath<'a> {
    pub name: &'a str,
    pub digest: &'a str,
}

/// Recognises `/v2/<name>/referrers/<digest>` in a raw (not percent-decoded) path. A name may
/// itself contain `referrers` as a component, so the last occurrence splits; anything after the
/// digest (another `/`) is some other API and not ours.
#[must_use]
pub fn match_path(raw_path: &str) -> Option<RawReferrersPath<'_>> {
    let rest = raw_path.strip_prefix("/v2/")?;
    let (name, digest) = rest.rsplit_once("/referrers/")?;
    if name.is_empty() || digest.is_empty() || digest.contains('/') {
        return None;
    }
    Some(RawReferrersPath { name, digest })
}

/// A referrers request after validation: typed from here on.
#[derive(Debug, Clone)]
pub struct ReferrersRequest {
    pub name: RepositoryName,
    pub digest: Digest,
    pub query: ReferrersQuery,
}

impl ReferrersRequest {
    /// Validates name, digest and query; `max_page_size` bounds `n`.
    pub fn parse(
        path: RawReferrersPath<'_>,
        raw_query: &str,
        max_page_size: usize,
    ) -> Result<Self, ApiError> {
        let name = path
            .name
            .parse::<RepositoryName>()
            .map_err(|e| ApiError::NameInvalid(e.to_string()))?;
        let digest = path
            .digest
            .parse::<Digest>()
            .map_err(|e| ApiError::DigestInvalid(e.to_string()))?;
        let query = ReferrersQuery::parse(raw_query).map_err(query_error)?;
        if let Some(n) = query.n
            && n > max_page_size
        {
            return Err(ApiError::PaginationNumberInvalid(format!(
                "n={n} is above the largest page size {max_page_size}"
            )));
        }
        Ok(Self {
            name,
            digest,
            query,
        })
    }
}

fn query_error(error: oci_referrers::QueryError) -> ApiError {
    use oci_referrers::QueryError;
    match error {
        QueryError::InvalidN(_) => ApiError::PaginationNumberInvalid(error.to_string()),
        QueryError::InvalidLast(_) => ApiError::DigestInvalid(error.to_string()),
        _ => ApiError::QueryInvalid(error.to_string()),
    }
}

/// What became of a referrers request (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Served,
    PassThrough,
    Denied,
    Invalid,
    CoreError,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Served => "served",
            Self::PassThrough => "passthrough",
            Self::Denied => "denied",
            Self::Invalid => "invalid",
            Self::CoreError => "core_error",
        }
    }

    /// The outcome of an answer core gave (relayed or passed through).
    fn of_core_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 | 403 => Self::Denied,
            500.. => Self::CoreError,
            _ => Self::PassThrough,
        }
    }
}

/// `GET|HEAD /v2/<name>/referrers/<digest>`.
pub async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    path: RawReferrersPath<'_>,
    state: &AppState,
    forwarder: &Forwarder,
    core: &CoreClient,
) -> HttpResponse {
    let started = Instant::now();
    let raw_query = request.uri().query().unwrap_or_default();
    let (outcome, response) =
        match ReferrersRequest::parse(path, raw_query, state.settings.response.max_page_size) {
            Ok(parsed) => answer(request, payload, &parsed, state, forwarder, core).await,
            Err(error) => {
                tracing::info!(error = %error, "invalid referrers request");
                (Outcome::Invalid, error.error_response())
            }
        };
    state
        .metrics
        .observe_request(outcome.as_str(), started.elapsed().as_secs_f64());
    response
}

async fn answer(
    request: &HttpRequest,
    payload: web::Payload,
    parsed: &ReferrersRequest,
    state: &AppState,
    forwarder: &Forwarder,
    core: &CoreClient,
) -> (Outcome, HttpResponse) {
    let project = parsed.name.project();
    let toggle = &state.settings.projects;
    // A project the configuration does not enable, or one already known not to be served:
    // the request goes to core exactly as it came, and Harbor is asked nothing else.
    let known_unserved = !toggle.is_enabled(project)
        || matches!(
            state.facts.cached_decision(project, toggle).await,
            Some(Decision::PassThrough(_))
        );
    if known_unserved {
        let response = forwarder.forward(request, payload, &state.metrics).await;
        return (Outcome::of_core_status(response.status()), response);
    }

    // Core authorizes the caller and lists the local referrers in one call.
    let request_id = telemetry::request_id_of(request);
    let listed = core
        .local_referrers(&parsed.name, &parsed.digest, request.headers(), &request_id)
        .await;
    let (local, first) = match listed {
        Ok(CoreReferrers::Listed {
            descriptors, first, ..
        }) => (descriptors, first),
        Ok(CoreReferrers::Relayed(answer)) => {
            return (Outcome::of_core_status(answer.status), relay(answer));
        }
        Err(error) => {
            tracing::warn!(error = %error, "cannot ask Harbor core for referrers");
            return (Outcome::CoreError, core_failure(&error).error_response());
        }
    };

    // Core said 200: only now may Harbor's facts about the project be read.
    let decision = match state.facts.project(core, project, &state.metrics).await {
        Ok(facts) => state.facts.decide(project, facts.as_deref(), toggle),
        Err(error) => {
            tracing::warn!(project, error = %error, "cannot read the project from Harbor; passing core's answer through");
            Decision::PassThrough("project facts unavailable")
        }
    };
    let (Decision::Serve { registry_id }, Some(repository)) = (decision, parsed.name.repository())
    else {
        // Core's own answer: the one already read when it was asked exactly that.
        if request.method() == Method::GET && request.uri().query().is_none() {
            return (Outcome::PassThrough, relay(first));
        }
        let response = forwarder.forward(request, payload, &state.metrics).await;
        return (Outcome::of_core_status(response.status()), response);
    };

    let target = upstream::resolve(
        &state.settings,
        &state.facts,
        core,
        &state.metrics,
        registry_id,
        repository,
    )
    .await;
    let library_local = async {
        match &target {
            Ok(target) if target.library_mapped => {
                library_referrers(parsed, repository, core, request, &request_id).await
            }
            _ => Vec::new(),
        }
    };
    let upstream_answer = async {
        match &target {
            Ok(target) if !parsed.digest.is_zero() => {
                state
                    .cache
                    .upstream_referrers(target, registry_id, &parsed.digest)
                    .await
            }
            Ok(_) => UpstreamAnswer::skipped(),
            Err(reason) => {
                tracing::warn!(project, registry_id, %reason, "no upstream call for this project");
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
    let mut local = local;
    local.extend(library_local);
    // The cached list is served by reference: nothing is copied per request.
    let upstream = upstream_answer
        .list
        .as_deref()
        .map_or(&[][..], |list| list.descriptors.as_slice());
    let merged = merge(upstream, &local);
    let response = respond(parsed, merged, &upstream_answer, state);
    (Outcome::Served, response)
}

/// Docker Hub's single-segment names are stored by Harbor under `<project>/library/<name>`:
/// their local referrers are there.
async fn library_referrers(
    parsed: &ReferrersRequest,
    repository: &str,
    core: &CoreClient,
    request: &HttpRequest,
    request_id: &str,
) -> Vec<Descriptor> {
    let Ok(name) =
        format!("{}/library/{repository}", parsed.name.project()).parse::<RepositoryName>()
    else {
        return Vec::new();
    };
    match core
        .local_referrers(&name, &parsed.digest, request.headers(), request_id)
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

/// The merged list, filtered and paged, as the OCI distribution spec's referrers answer.
fn respond(
    parsed: &ReferrersRequest,
    merged: Vec<&Descriptor>,
    upstream: &UpstreamAnswer,
    state: &AppState,
) -> HttpResponse {
    let types = &parsed.query.artifact_types;
    let filtered = filter_by_artifact_type(merged, types);
    let limit = match parsed.query.n {
        Some(n) => PageLimit::Count(n),
        None => PageLimit::Bytes(state.settings.response.max_bytes),
    };
    let page = encode_page(&filtered, parsed.query.last.as_ref(), limit);
    state.metrics.descriptors_served.observe(page.count as f64);

    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, INDEX_MEDIA_TYPE))
        .insert_header(API_VERSION_HEADER)
        .insert_header(("X-Total-Count", filtered.len().to_string()))
        .insert_header(("X-Referrers-Upstream", upstream.upstream.as_str()))
        .insert_header(("X-Referrers-Cache", upstream.cache.as_str()));
    if !types.is_empty() {
        response.insert_header(("OCI-Filters-Applied", "artifactType"));
    }
    if let Some(next) = &page.next {
        let link = build_next_link(&parsed.name, &parsed.digest, parsed.query.n, next, types);
        response.insert_header((header::LINK, link));
    }
    response.body(page.body)
}

/// Core's answer as it came: status, headers, body.
fn relay(answer: CoreAnswer) -> HttpResponse {
    let mut response = HttpResponse::build(answer.status);
    for (name, value) in &answer.headers {
        response.append_header((name.clone(), value.clone()));
    }
    response.body(answer.body)
}

fn core_failure(error: &HarborError) -> ApiError {
    match error {
        HarborError::Timeout => ApiError::CoreTimeout,
        other => ApiError::CoreUnreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_referrers_paths() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let path = format!("/v2/proxy/library/nginx/referrers/{digest}");
        assert_eq!(
            match_path(&path),
            Some(RawReferrersPath {
                name: "proxy/library/nginx",
                digest: &digest
            })
        );
        let nested = format!("/v2/p/referrers/referrers/{digest}");
        assert_eq!(match_path(&nested).unwrap().name, "p/referrers");
        assert_eq!(match_path("/v2/p/referrers/manifests/latest"), None);
        assert_eq!(match_path("/v2/p/r/manifests/latest"), None);
        assert_eq!(match_path("/v2/referrers/x"), None);
        assert_eq!(match_path("/api/v2.0/p/referrers/x"), None);
        assert_eq!(match_path("/v2/p/r/referrers/"), None);
    }

    #[test]
    fn each_bad_part_gives_its_own_error() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let parse = |name: &str, digest: &str, query: &str| {
            ReferrersRequest::parse(RawReferrersPath { name, digest }, query, 1000)
        };
        assert!(parse("p/r", &digest, "n=10&artifactType=application%2Fx").is_ok());
        let code = |r: Result<ReferrersRequest, ApiError>| r.unwrap_err().code();
        assert_eq!(code(parse("p/R", &digest, "")), "NAME_INVALID");
        assert_eq!(code(parse("p%2Fr", &digest, "")), "NAME_INVALID");
        assert_eq!(code(parse("p//r", &digest, "")), "NAME_INVALID");
        assert_eq!(code(parse("p/r", "sha256:abc", "")), "DIGEST_INVALID");
        assert_eq!(
            code(parse("p/r", &digest, "n=0")),
            "PAGINATION_NUMBER_INVALID"
        );
        assert_eq!(
            code(parse("p/r", &digest, "n=1001")),
            "PAGINATION_NUMBER_INVALID"
        );
        assert_eq!(
            code(parse("p/r", &digest, "n=x")),
            "PAGINATION_NUMBER_INVALID"
        );
        assert_eq!(code(parse("p/r", &digest, "last=nope")), "DIGEST_INVALID");
    }
}
