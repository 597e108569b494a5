//! A referrers request after validation: repository name, subject digest and query, typed once
//! at the edge and trusted afterwards.

use oci_referrers::{Digest, QueryError, ReferrersQuery, RepositoryName};

use crate::error::ApiError;

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

fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidN(_) => ApiError::PaginationNumberInvalid(error.to_string()),
        QueryError::InvalidLast(_) => ApiError::DigestInvalid(error.to_string()),
        _ => ApiError::QueryInvalid(error.to_string()),
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
