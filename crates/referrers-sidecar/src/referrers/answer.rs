//! What the referrers use case decided for one request, with a reason for everything it leaves
//! to core: the route only turns this into HTTP.

use std::sync::Arc;

use harbor_client::{CoreAnswer, HarborError};

use super::memo::WrittenPage;

use crate::outcome::{CacheResult, UpstreamResult};
use crate::serving::PassThrough;

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

/// A page the sidecar serves itself.
#[derive(Debug)]
pub struct Served {
    /// The page of the merged, filtered list, encoded as an OCI image index (perhaps written
    /// for an earlier, identical request), with its total over every page.
    pub page: Arc<WrittenPage>,
    /// What the upstream contributed (`X-Referrers-Upstream`).
    pub upstream: UpstreamResult,
    /// What the cache did (`X-Referrers-Cache`).
    pub cache: CacheResult,
}
