//! What the cache answers for one request: the upstream list to serve, where it came from and
//! what the cache did, as the `X-Referrers-Upstream` and `X-Referrers-Cache` headers say.

use std::sync::Arc;

use registry_client::ReferrersSource;

use super::entry::CachedList;
use crate::outcome::{CacheResult, UpstreamResult};

/// What the upstream contributed, for a list from `source`.
fn upstream_result_of(source: ReferrersSource) -> UpstreamResult {
    match source {
        ReferrersSource::Api => UpstreamResult::Api,
        ReferrersSource::FallbackTag => UpstreamResult::Tag,
        ReferrersSource::None => UpstreamResult::None,
    }
}

/// The upstream's contribution to an answer.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    /// The upstream list, if there is one to serve.
    pub list: Option<Arc<CachedList>>,
    pub upstream: UpstreamResult,
    pub cache: CacheResult,
    /// Whether the list is one the cache keeps (served from it, or stored): a list cut short
    /// by a cap, or over `cache.max_entry_bytes`, is served this once and not kept.
    pub kept: bool,
}

impl UpstreamAnswer {
    /// No upstream call is made for this request (no upstream, or the all-zero digest).
    #[must_use]
    pub fn skipped() -> Self {
        Self::without_list(UpstreamResult::Skipped, CacheResult::Bypass)
    }

    /// The request's time budget ran out first; nothing from the upstream is served.
    #[must_use]
    pub fn timed_out() -> Self {
        Self::without_list(UpstreamResult::Timeout, CacheResult::Miss)
    }

    pub(super) fn served(list: Arc<CachedList>, cache: CacheResult) -> Self {
        Self {
            upstream: upstream_result_of(list.source),
            list: Some(list),
            cache,
            kept: true,
        }
    }

    /// A list just fetched that the cache does not keep, served this once: one cut short by a
    /// cap (`truncated`), or one over `cache.max_entry_bytes` (as what it is, `api` or `tag`).
    pub(super) fn served_once(list: Arc<CachedList>, truncated: bool) -> Self {
        Self {
            upstream: if truncated {
                UpstreamResult::Truncated
            } else {
                upstream_result_of(list.source)
            },
            list: Some(list),
            cache: CacheResult::Miss,
            kept: false,
        }
    }

    pub(super) fn without_list(upstream: UpstreamResult, cache: CacheResult) -> Self {
        Self {
            list: None,
            upstream,
            cache,
            kept: false,
        }
    }
}
