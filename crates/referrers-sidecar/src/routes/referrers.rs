//! `GET|HEAD /v2/<name>/referrers/<digest>`: parsed once from the raw path and query.

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use oci_referrers::{Digest, ReferrersQuery, RepositoryName};

use super::passthrough::Forwarder;
use crate::error::ApiError;
use crate::startup::AppState;

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

/// Validates the request; a valid one is, for now, answered by core.
pub async fn handle(
    request: &HttpRequest,
    payload: web::Payload,
    path: RawReferrersPath<'_>,
    state: &AppState,
    forwarder: &Forwarder,
) -> HttpResponse {
    let started = Instant::now();
    let raw_query = request.uri().query().unwrap_or_default();
    match ReferrersRequest::parse(path, raw_query, state.settings.response.max_page_size) {
        Ok(parsed) => {
            tracing::debug!(name = %parsed.name, digest = %parsed.digest, "referrers request");
            let response = forwarder.forward(request, payload, &state.metrics).await;
            let outcome = if response.status().is_server_error() {
                "core_error"
            } else {
                "passthrough"
            };
            state
                .metrics
                .observe_request(outcome, started.elapsed().as_secs_f64());
            response
        }
        Err(error) => {
            tracing::info!(error = %error, "invalid referrers request");
            state
                .metrics
                .observe_request("invalid", started.elapsed().as_secs_f64());
            error.error_response()
        }
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
