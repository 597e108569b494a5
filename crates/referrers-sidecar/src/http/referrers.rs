//! `GET|HEAD /v2/<name>/referrers/<digest>`: recognised and parsed from the raw path and query,
//! answered by the referrers use case, and its answer turned into HTTP and the request metric.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use std::sync::Arc;

use harbor_client::CoreAnswer;
use oci_referrers::{INDEX_MEDIA_TYPE, build_next_link};

use super::error::{API_VERSION_HEADER, ApiError};
use super::passthrough::Forwarder;
use super::state::AppState;
use crate::harbor::Core;
use crate::outcome::RequestOutcome;
use crate::referrers::{
    Answer, Caller, CoreCalls, GZIP_MIN_BYTES, RawReferrersPath, ReferrersRequest, RelayReason,
    Served,
};
use crate::telemetry;

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

/// `GET|HEAD /v2/<name>/referrers/<digest>`.
pub async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    path: RawReferrersPath<'_>,
    state: &AppState,
    forwarder: &Forwarder,
    core: &Arc<dyn Core>,
    core_calls: &CoreCalls,
) -> HttpResponse {
    let started = Instant::now();
    let raw_query = request.uri().query();
    let parsed = ReferrersRequest::parse(
        path,
        raw_query.unwrap_or_default(),
        state.settings.response.max_page_size,
    );
    let (outcome, response) = match parsed {
        Ok(parsed) => {
            let request_id = telemetry::request_id_of(request);
            let caller = Caller {
                method: request.method().as_str(),
                raw_path: request.uri().path(),
                raw_query,
                headers: request.headers(),
                request_id: &request_id,
                budget: asked_budget(request),
            };
            let answer = state
                .referrers(core, core_calls)
                .answer(&parsed, caller)
                .await;
            translate(answer, &parsed, request, payload, state, forwarder).await
        }
        Err(error) => {
            tracing::info!(error = %error, "invalid referrers request");
            (
                RequestOutcome::Invalid,
                ApiError::from(error).error_response(),
            )
        }
    };
    state
        .metrics
        .observe_request(outcome, started.elapsed().as_secs_f64());
    if telemetry::on() {
        let span = tracing::Span::current();
        telemetry::attribute(&span, "referrers.outcome", outcome.as_str());
        if let Some(project) = path.name.split('/').next() {
            telemetry::attribute(&span, "referrers.project", project.to_owned());
        }
        for (key, header) in [
            ("referrers.cache", "X-Referrers-Cache"),
            ("referrers.upstream", "X-Referrers-Upstream"),
        ] {
            if let Some(value) = response.headers().get(header).and_then(|v| v.to_str().ok()) {
                telemetry::attribute(&span, key, value.to_owned());
            }
        }
    }
    response
}

/// The use case's answer as HTTP, with the outcome it counts as.
async fn translate(
    answer: Answer,
    parsed: &ReferrersRequest,
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    forwarder: &Forwarder,
) -> (RequestOutcome, HttpResponse) {
    match answer {
        Answer::Relay(answer, reason) => {
            if let RelayReason::PassThrough(reason) = reason {
                tracing::debug!(reason = reason.code(), "core's answer relayed");
            }
            (
                RequestOutcome::of_core_status(answer.status.as_u16()),
                relay(answer),
            )
        }
        Answer::Forward(reason) => {
            tracing::debug!(reason = reason.code(), "request forwarded to core");
            let response = forwarder.forward(request, payload, &state.metrics).await;
            (
                RequestOutcome::of_core_status(response.status().as_u16()),
                response,
            )
        }
        Answer::Served(served) => (
            RequestOutcome::Served,
            respond(parsed, &served, accepts_gzip(request)),
        ),
        Answer::CoreFailed(error) => (
            RequestOutcome::CoreError,
            ApiError::from(error).error_response(),
        ),
    }
}

/// A served page as the OCI distribution spec's referrers answer; gzip-compressed (made once
/// per written page) when the caller accepts it and the page is at least
/// [`GZIP_MIN_BYTES`](crate::referrers::GZIP_MIN_BYTES). A `HEAD` gets the same headers.
fn respond(parsed: &ReferrersRequest, served: &Served, gzip: bool) -> HttpResponse {
    let types = &parsed.query.artifact_types;
    let page = &served.page.page;
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, INDEX_MEDIA_TYPE))
        .insert_header(API_VERSION_HEADER)
        .insert_header(("X-Total-Count", page.total.to_string()))
        .insert_header(("X-Referrers-Upstream", served.upstream.as_str()))
        .insert_header(("X-Referrers-Cache", served.cache.as_str()));
    if !types.is_empty() {
        response.insert_header(("OCI-Filters-Applied", "artifactType"));
    }
    if let Some(next) = &page.next {
        let link = build_next_link(&parsed.name, &parsed.digest, parsed.query.n, next, types);
        response.insert_header((header::LINK, link));
    }
    if page.body.len() >= GZIP_MIN_BYTES {
        response.insert_header((header::VARY, "Accept-Encoding"));
        if gzip && let Some(compressed) = served.page.gzip() {
            response.insert_header((header::CONTENT_ENCODING, "gzip"));
            return response.body(compressed.clone());
        }
    }
    response.body(page.body.clone())
}

/// The caller's own budget (`X-Referrers-Deadline: 2500ms`, `2.5s`…), when it names a
/// positive duration; one the header does not name well is not taken (logged).
fn asked_budget(request: &HttpRequest) -> Option<std::time::Duration> {
    let value = request.headers().get(DEADLINE_HEADER)?;
    let asked = value
        .to_str()
        .ok()
        .and_then(|text| humantime::parse_duration(text.trim()).ok())
        .filter(|budget| !budget.is_zero());
    if asked.is_none() {
        tracing::info!(
            header = DEADLINE_HEADER,
            "not a duration; the configured response.deadline applies"
        );
    }
    asked
}

/// The header with which a caller asks for a shorter budget than `response.deadline`.
pub const DEADLINE_HEADER: &str = "x-referrers-deadline";

/// Whether `Accept-Encoding` accepts gzip (`gzip` or `x-gzip`, with no `q=0`).
fn accepts_gzip(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip")) && !refused
        })
}

/// Core's answer as it came: status, headers, body.
fn relay(answer: CoreAnswer) -> HttpResponse {
    let mut response = HttpResponse::build(answer.status);
    for (name, value) in &answer.headers {
        response.append_header((name.clone(), value.clone()));
    }
    response.body(answer.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_asked_for_with_a_duration() {
        let asked = |value: &str| {
            asked_budget(
                &actix_web::test::TestRequest::default()
                    .insert_header((DEADLINE_HEADER, value))
                    .to_http_request(),
            )
        };
        let ms = std::time::Duration::from_millis;
        assert_eq!(asked("2500ms"), Some(ms(2500)));
        assert_eq!(asked(" 2s 500ms "), Some(ms(2500)));
        assert_eq!(asked("1m"), Some(ms(60_000)));
        assert_eq!(asked("0s"), None);
        assert_eq!(asked("soon"), None);
        assert_eq!(asked("2500"), None, "a unit is required");
        assert_eq!(
            asked_budget(&actix_web::test::TestRequest::default().to_http_request()),
            None
        );
    }

    #[test]
    fn gzip_is_accepted_when_named_without_q_zero() {
        let accepts = |values: &[&str]| {
            let mut request = actix_web::test::TestRequest::default();
            for value in values {
                request = request.append_header((header::ACCEPT_ENCODING, *value));
            }
            accepts_gzip(&request.to_http_request())
        };
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["deflate, GZIP;q=0.5"]));
        assert!(accepts(&["br", "x-gzip"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip; q=0.0, br"]));
        assert!(!accepts(&["gzipped"]));
    }

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
}
