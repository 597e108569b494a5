//! The outcomes the service reports, each a small enum with its stable label (`as_str`) and
//! every value (`ALL`): the metrics, the answer headers and the logs take their labels from
//! here, so a label is spelled once and every series can be created at start.

/// An enum of outcomes with its label per variant and `ALL`, in declaration order.
macro_rules! outcomes {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $label:literal, )+
        }
    )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The stable label (metrics, headers, logs).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }
    )+};
}

outcomes! {
    /// What became of a referrers request (`harbor_referrers_requests_total{outcome}`).
    pub enum RequestOutcome {
        /// The sidecar answered with the merged list.
        Served => "served",
        /// Core's answer went back (relayed or forwarded).
        PassThrough => "passthrough",
        /// Core refused the caller (401, 403).
        Denied => "denied",
        /// The request was not a valid referrers request.
        Invalid => "invalid",
        /// Core failed (5xx), or could not be asked.
        CoreError => "core_error",
    }

    /// What the cache did for a request (`X-Referrers-Cache`), or what a lookup in one tier
    /// found.
    pub enum CacheResult {
        Hit => "hit",
        Stale => "stale",
        Miss => "miss",
        Bypass => "bypass",
    }

    /// A cache tier.
    pub enum Tier {
        Memory => "memory",
        Redis => "redis",
    }

    /// What the upstream contributed to an answer (`X-Referrers-Upstream`).
    pub enum UpstreamResult {
        /// A list from the referrers API.
        Api => "api",
        /// A list from the referrers tag schema.
        Tag => "tag",
        /// Neither exists upstream.
        None => "none",
        /// The upstream did not answer usably.
        Error => "error",
        /// A list cut short by a cap: served, not cached; remembered for `cache.keep_empty_for`,
        /// during which the key is answered without an upstream call.
        Truncated => "truncated",
        /// A list over `upstream.max_page_bytes` or `cache.max_entry_bytes`: remembered like a
        /// truncated one.
        TooLarge => "too_large",
        /// The upstream memory budget was exhausted: remembered like a truncated list, retried
        /// after `cache.keep_empty_for`.
        OverBudget => "over_budget",
        /// No upstream call: none to make, or the registry's breaker is open.
        Skipped => "skipped",
        /// The request's time budget ran out before the upstream's list came: the fetch goes on
        /// in the background and fills the cache for the next request.
        Timeout => "timeout",
        /// The registry rate-limited us and rests: no upstream call; a stale list if cached.
        RateLimited => "rate_limited",
    }

    /// What became of a background refresh of a stale entry.
    pub enum RefreshOutcome {
        Refreshed => "refreshed",
        Failed => "failed",
        Truncated => "truncated",
        TooLarge => "too_large",
        OverBudget => "over_budget",
        Skipped => "skipped",
        RateLimited => "rate_limited",
    }

    /// What became of a cross-replica lock attempt.
    pub enum LockResult {
        Won => "won",
        Lost => "lost",
    }

    /// What became of one warm fetch of an artifact, pulled (`harbor_referrers_webhook_warms_total`)
    /// or asked for by an operator (`harbor_referrers_operator_warms_total`).
    pub enum WarmResult {
        /// The upstream's list was fetched and stored.
        Fetched => "fetched",
        /// The cache held a fresh list: nothing fetched.
        Fresh => "fresh",
        /// The cache held a stale list: a background refresh was started (unless the registry
        /// rests).
        Stale => "stale",
        /// The project is not served (the decision requests get).
        Unserved => "unserved",
        /// Harbor's facts about the project or its registry could not be read.
        HarborError => "harbor_error",
        /// The upstream did not answer usably.
        Error => "error",
        /// The upstream's list was cut short by a cap.
        Truncated => "truncated",
        /// The upstream's list was too large to keep.
        TooLarge => "too_large",
        /// The upstream memory budget was exhausted.
        OverBudget => "over_budget",
        /// No upstream call: the registry's breaker is open, or the digest is all zeros.
        Skipped => "skipped",
        /// The registry rests after a rate limit.
        RateLimited => "rate_limited",
    }

    /// What became of one referrer offered for storing (`harbor_referrers_store_pulls_total`).
    pub enum PullResult {
        /// Core answered the pull: Harbor stores the referrer.
        Pulled => "pulled",
        /// Another replica (or this one before a restart) pulled or refused it already.
        Already => "already",
        /// Core refused the robot account (it needs pull on the project).
        Refused => "refused",
        /// Core failed or could not be reached.
        Failed => "failed",
        /// The registry's breaker is open, or it rests after a rate limit: not pulled now.
        Skipped => "skipped",
        /// The queue was full: not pulled now.
        Dropped => "dropped",
        /// Its manifest could not be read from the upstream (no usable answer, or none by
        /// that digest): not pulled now.
        CheckFailed => "check_failed",
        /// Its manifest's bytes are not what its digest names.
        DigestMismatch => "digest_mismatch",
        /// Its manifest is not an OCI image manifest that can be read.
        Invalid => "invalid",
        /// Its manifest's `subject` is not the subject whose list named it.
        WrongSubject => "wrong_subject",
        /// Its manifest's artifact type is not what the list said, or not a storable one.
        WrongType => "wrong_type",
        /// Its manifest is over its bound, or declares more than `store.max_artifact_bytes`.
        TooLarge => "too_large",
        /// Its subject had `store.max_per_subject` referrers taken on already.
        SubjectBudget => "subject_budget",
        /// The list naming it was cut short by a cap: nothing of it is stored.
        TruncatedList => "truncated_list",
        /// The list naming it is over `cache.max_entry_bytes`: nothing of it is stored.
        OversizeList => "oversize_list",
    }

    /// What a purge asked through the operator API did.
    pub enum PurgeResult {
        Purged => "purged",
        Nothing => "nothing",
        RedisUnavailable => "redis_unavailable",
    }

    /// Which switch serves a project: `projects.enabled`, or the project label.
    pub enum Switch {
        Config => "config",
        Label => "label",
    }

    /// Operator API endpoints.
    pub enum OperatorEndpoint {
        Status => "status",
        Purge => "purge",
        Warm => "warm",
    }

    /// What became of an operator API call.
    pub enum OperatorResult {
        Ok => "ok",
        Unauthorized => "unauthorized",
        Forbidden => "forbidden",
        NotFound => "not_found",
        Invalid => "invalid",
        /// Past the project's budget (`operator.purges_per_minute`, `status_per_minute`), or
        /// a warm-up told to come back (its queue full, its registry's turn far off or resting).
        Limited => "limited",
        Unavailable => "unavailable",
    }

    /// An upstream registry's state as the operator API's status reports it: what keeps the
    /// sidecar from listing its referrers now, as this replica sees it.
    pub enum UpstreamState {
        /// Nothing does: its last call answered (or it was not called yet).
        Ok => "ok",
        /// Its breaker is open: no call until the cool-down is over.
        BreakerOpen => "breaker_open",
        /// It rests after a rate limit.
        RateLimited => "rate_limited",
        /// Its last call got no usable answer (no connection, no TLS, no answer in time, a
        /// 5xx), or it cannot be called: Harbor's facts about it cannot be read.
        Unreachable => "unreachable",
        /// It, or its token endpoint, refused the credentials.
        AuthFailed => "auth_failed",
    }

    /// Kinds of upstream requests.
    pub enum UpstreamKind {
        Api => "api",
        Tag => "tag",
        /// A referrer's manifest, read to check it before it is stored in Harbor.
        Manifest => "manifest",
        Token => "token",
    }

    /// Status classes of HTTP answers; `error` when none came.
    pub enum StatusClass {
        Informational => "1xx",
        Success => "2xx",
        Redirection => "3xx",
        ClientError => "4xx",
        ServerError => "5xx",
        Error => "error",
    }
}

/// What became of a webhook event (`harbor_referrers_webhook_events_total{type,result}`):
/// pulls queue their artifacts (or find them queued already, or the queue full), other types
/// are ignored; `unknown` is an event refused before its type was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    PullQueued,
    PullDuplicate,
    PullDropped,
    PullInvalid,
    OtherIgnored,
    UnknownInvalid,
    UnknownUnauthorized,
}

impl WebhookEvent {
    /// Every value, in declaration order.
    pub const ALL: &[Self] = &[
        Self::PullQueued,
        Self::PullDuplicate,
        Self::PullDropped,
        Self::PullInvalid,
        Self::OtherIgnored,
        Self::UnknownInvalid,
        Self::UnknownUnauthorized,
    ];

    /// The `type` and `result` labels.
    #[must_use]
    pub const fn labels(self) -> [&'static str; 2] {
        match self {
            Self::PullQueued => ["pull_artifact", "queued"],
            Self::PullDuplicate => ["pull_artifact", "duplicate"],
            Self::PullDropped => ["pull_artifact", "dropped"],
            Self::PullInvalid => ["pull_artifact", "invalid"],
            Self::OtherIgnored => ["other", "ignored"],
            Self::UnknownInvalid => ["unknown", "invalid"],
            Self::UnknownUnauthorized => ["unknown", "unauthorized"],
        }
    }
}

impl UpstreamResult {
    /// What a warm fetch that got this answer from the cache did.
    #[must_use]
    pub const fn warmed(self, cache: CacheResult) -> WarmResult {
        match (cache, self) {
            (CacheResult::Hit, _) => WarmResult::Fresh,
            (CacheResult::Stale, _) => WarmResult::Stale,
            (_, Self::Api | Self::Tag | Self::None) => WarmResult::Fetched,
            (_, Self::Error | Self::Timeout) => WarmResult::Error,
            (_, Self::Truncated) => WarmResult::Truncated,
            (_, Self::TooLarge) => WarmResult::TooLarge,
            (_, Self::OverBudget) => WarmResult::OverBudget,
            (_, Self::Skipped) => WarmResult::Skipped,
            (_, Self::RateLimited) => WarmResult::RateLimited,
        }
    }

    /// What a background refresh of a stale entry that got this answer did.
    #[must_use]
    pub const fn refreshed(self) -> RefreshOutcome {
        match self {
            Self::Api | Self::Tag | Self::None => RefreshOutcome::Refreshed,
            Self::Error | Self::Timeout => RefreshOutcome::Failed,
            Self::Truncated => RefreshOutcome::Truncated,
            Self::TooLarge => RefreshOutcome::TooLarge,
            Self::OverBudget => RefreshOutcome::OverBudget,
            Self::Skipped => RefreshOutcome::Skipped,
            Self::RateLimited => RefreshOutcome::RateLimited,
        }
    }
}

impl StatusClass {
    /// The class of an HTTP status.
    #[must_use]
    pub const fn of(status: u16) -> Self {
        match status {
            100..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

impl RequestOutcome {
    /// The outcome of an answer core gave (relayed or passed through).
    #[must_use]
    pub const fn of_core_status(status: u16) -> Self {
        match status {
            401 | 403 => Self::Denied,
            500.. => Self::CoreError,
            _ => Self::PassThrough,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_published_ones() {
        let labels = |all: &[UpstreamResult]| all.iter().map(|r| r.as_str()).collect::<Vec<_>>();
        assert_eq!(
            labels(UpstreamResult::ALL),
            [
                "api",
                "tag",
                "none",
                "error",
                "truncated",
                "too_large",
                "over_budget",
                "skipped",
                "timeout",
                "rate_limited"
            ]
        );
        let classes: Vec<_> = [100, 204, 302, 404, 503]
            .into_iter()
            .map(|s| StatusClass::of(s).as_str())
            .collect();
        assert_eq!(classes, ["1xx", "2xx", "3xx", "4xx", "5xx"]);
    }

    #[test]
    fn a_warm_fetch_result_has_a_label_for_every_cache_and_upstream_answer() {
        for &cache in CacheResult::ALL {
            for &upstream in UpstreamResult::ALL {
                assert!(WarmResult::ALL.contains(&upstream.warmed(cache)));
            }
        }
        assert_eq!(
            UpstreamResult::Tag.warmed(CacheResult::Miss),
            WarmResult::Fetched
        );
        assert_eq!(
            UpstreamResult::RateLimited.warmed(CacheResult::Stale),
            WarmResult::Stale
        );
        assert_eq!(
            UpstreamResult::OverBudget.warmed(CacheResult::Miss),
            WarmResult::OverBudget
        );
    }

    #[test]
    fn every_refresh_outcome_is_what_some_upstream_answer_gives() {
        let outcomes: Vec<_> = UpstreamResult::ALL.iter().map(|r| r.refreshed()).collect();
        for outcome in RefreshOutcome::ALL {
            assert!(outcomes.contains(outcome), "{outcome:?}");
        }
        assert_eq!(UpstreamResult::Tag.refreshed(), RefreshOutcome::Refreshed);
        assert_eq!(UpstreamResult::Error.refreshed(), RefreshOutcome::Failed);
    }
}
