//! A referrers request after validation: repository name, subject digest and query, typed once
//! at the edge and trusted afterwards; and what else the use case reads of it (its caller).

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use oci_referrers::{Digest, QueryError, ReferrersQuery, RepositoryName};

/// What the use case needs of the HTTP request besides its parsed form.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub method: &'a str,
    /// The path and query as they came (not decoded).
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    /// The caller's headers: core authorizes the caller from them.
    pub headers: &'a HeaderMap,
    pub request_id: &'a str,
    /// A shorter budget the caller asked for (`X-Referrers-Deadline`); never longer than
    /// `response.deadline`.
    pub budget: Option<Duration>,
}

impl Caller<'_> {
    /// A `GET` without a query asks exactly what core is asked, so core's listing can be
    /// relayed as this request's answer.
    #[must_use]
    pub fn plain_get(&self) -> bool {
        self.method == "GET" && self.raw_query.is_none()
    }
}

/// Why a request is not a valid referrers request (each an OCI error code to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("invalid pagination: {0}")]
    PaginationNumberInvalid(String),
    #[error("invalid query: {0}")]
    QueryInvalid(String),
}

/// The raw `<name>` and `<digest>` of a referrers path, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawReferrersPath<'a> {
    pub name: &'a str,
    pub digest: &'a str,
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
    ) -> Result<Self, RequestError> {
        let name = path
            .name
            .parse::<RepositoryName>()
            .map_err(|e| RequestError::NameInvalid(e.to_string()))?;
        let digest = path
            .digest
            .parse::<Digest>()
            .map_err(|e| RequestError::DigestInvalid(e.to_string()))?;
        let query = ReferrersQuery::parse(raw_query).map_err(query_error)?;
        if let Some(n) = query.n
            && n > max_page_size
        {
            return Err(RequestError::PaginationNumberInvalid(format!(
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

fn query_error(error: QueryError) -> RequestError {
    match error {
        QueryError::InvalidN(_) => RequestError::PaginationNumberInvalid(error.to_string()),
        QueryError::InvalidLast(_) => RequestError::DigestInvalid(error.to_string()),
        _ => RequestError::QueryInvalid(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_part_gives_its_own_error() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let parse = |name: &str, digest: &str, query: &str| {
            ReferrersRequest::parse(RawReferrersPath { name, digest }, query, 1000)
        };
        assert!(parse("p/r", &digest, "n=10&artifactType=application%2Fx").is_ok());
        let kind = |r: Result<ReferrersRequest, RequestError>| match r.unwrap_err() {
            RequestError::NameInvalid(_) => "name",
            RequestError::DigestInvalid(_) => "digest",
            RequestError::PaginationNumberInvalid(_) => "n",
            RequestError::QueryInvalid(_) => "query",
        };
        assert_eq!(kind(parse("p/R", &digest, "")), "name");
        assert_eq!(kind(parse("p%2Fr", &digest, "")), "name");
        assert_eq!(kind(parse("p//r", &digest, "")), "name");
        assert_eq!(kind(parse("p/r", "sha256:abc", "")), "digest");
        assert_eq!(kind(parse("p/r", &digest, "n=0")), "n");
        assert_eq!(kind(parse("p/r", &digest, "n=1001")), "n");
        assert_eq!(kind(parse("p/r", &digest, "n=x")), "n");
        assert_eq!(kind(parse("p/r", &digest, "last=nope")), "digest");
    }
}
