//! What the cache answers for one request: the upstream list to serve, where it came from and
//! what the cache did, as the `X-Referrers-Upstream` and `X-Referrers-Cache` headers say.

use std::sync::Arc;

use registry_client::ReferrersSource;

use super::entry::CachedList;

/// What the cache did for a request (`X-Referrers-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    Hit,
    Stale,
    Miss,
    Bypass,
}

impl CacheResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// What the upstream contributed to an answer (`X-Referrers-Upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamResult {
    /// A list from the referrers API.
    Api,
    /// A list from the referrers tag schema.
    Tag,
    /// Neither exists upstream.
    None,
    /// The upstream did not answer usably.
    Error,
    /// A list cut short by a cap: served, not cached; remembered for `cache.keep_empty_for`,
    /// during which the key is answered without an upstream call.
    Truncated,
    /// A list over `upstream.max_page_bytes` or `cache.max_entry_bytes`: remembered like a
    /// truncated one.
    TooLarge,
    /// The upstream memory budget was exhausted: remembered like a truncated list, retried
    /// after `cache.keep_empty_for`.
    OverBudget,
    /// No upstream call: none to make, or the registry's breaker is open.
    Skipped,
    /// The request's time budget ran out before the upstream's list came: the fetch goes on
    /// in the background and fills the cache for the next request.
    Timeout,
    /// The registry rate-limited us and rests: no upstream call; a stale list if cached.
    RateLimited,
}

impl UpstreamResult {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Tag => "tag",
            Self::None => "none",
            Self::Error => "error",
            Self::Truncated => "truncated",
            Self::TooLarge => "too_large",
            Self::OverBudget => "over_budget",
            Self::Skipped => "skipped",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
        }
    }

    fn of(source: ReferrersSource) -> Self {
        match source {
            ReferrersSource::Api => Self::Api,
            ReferrersSource::FallbackTag => Self::Tag,
            ReferrersSource::None => Self::None,
        }
    }
}

/// The upstream's contribution to an answer.
#[derive(Debug, Clone)]
pub struct UpstreamAnswer {
    /// The upstream list, if there is one to serve.
    pub list: Option<Arc<CachedList>>,
    pub upstream: UpstreamResult,
    pub cache: CacheResult,
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
            upstream: UpstreamResult::of(list.source),
            list: Some(list),
            cache,
        }
    }

    pub(super) fn without_list(upstream: UpstreamResult, cache: CacheResult) -> Self {
        Self {
            list: None,
            upstream,
            cache,
        }
    }
}
