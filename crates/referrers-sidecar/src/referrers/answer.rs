//! What the referrers use case decided for one request, with a reason for everything it leaves
//! to core: the route only turns this into HTTP.

use harbor_client::{CoreAnswer, HarborError};
use oci_referrers::PreparedPage;

use crate::harbor::NotServed;
use crate::outcome::{CacheResult, UpstreamResult};

/// The answer to one referrers request.
#[derive(Debug)]
pub enum Answer {
    /// Core's own answer, relayed as it came (status, headers, body).
    Relay(CoreAnswer, RelayReason),
    /// The request goes to core exactly as it came.
    Forward(PassThrough),
    /// The merged list, filtered and paged by the sidecar.
    Served(Served),
    /// Core could not be asked whether the caller may read the repository: nothing else was
    /// asked either.
    CoreFailed(HarborError),
}

/// Why core's answer is relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayReason {
    /// Core did not list referrers (a 401 with its challenge, 403, 404, 5xx…): its verdict stands.
    CoreVerdict,
    /// Core listed them and they are core's alone; this request asked exactly what core was
    /// asked, so its answer is this request's.
    PassThrough(PassThrough),
}

/// Why a request's referrers are core's alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// The configuration or Harbor's facts about the project say so.
    Project(NotServed),
    /// Harbor's project API could not be read: core's answer is the safe one.
    FactsUnavailable,
    /// A name with no repository under the project (`/v2/<project>/referrers/…`).
    NoRepository,
    /// Harbor's repository allowlist for the project (`proxy_cache_filter_pattern`, Harbor
    /// ≥ 2.16) excludes the repository: Harbor does not proxy it, and neither does the sidecar.
    NotInAllowlist,
}

impl PassThrough {
    /// A stable code for logs and operators.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::Project(reason) => reason.code(),
            Self::FactsUnavailable => "facts_unavailable",
            Self::NoRepository => "no_repository",
            Self::NotInAllowlist => "not_in_allowlist",
        }
    }
}

/// A page the sidecar serves itself.
#[derive(Debug)]
pub struct Served {
    /// The page of the merged, filtered list, encoded as an OCI image index.
    pub page: PreparedPage,
    /// How many descriptors the whole filtered list holds, over every page.
    pub total: usize,
    /// What the upstream contributed (`X-Referrers-Upstream`).
    pub upstream: UpstreamResult,
    /// What the cache did (`X-Referrers-Cache`).
    pub cache: CacheResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are what operators match on: each reason keeps its own, unchanged.
    #[test]
    fn every_pass_through_reason_has_its_own_stable_code() {
        let codes: Vec<&str> = [
            PassThrough::Project(NotServed::NotEnabled),
            PassThrough::Project(NotServed::UnknownProject),
            PassThrough::Project(NotServed::NotProxyCache),
            PassThrough::Project(NotServed::HarborMerges),
            PassThrough::FactsUnavailable,
            PassThrough::NoRepository,
            PassThrough::NotInAllowlist,
        ]
        .into_iter()
        .map(PassThrough::code)
        .collect();
        assert_eq!(
            codes,
            [
                "not_enabled",
                "unknown_project",
                "not_proxy_cache",
                "harbor_merges",
                "facts_unavailable",
                "no_repository",
                "not_in_allowlist",
            ]
        );
    }
}
