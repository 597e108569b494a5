//! Keys whose upstream list is not downloaded again for a while: lists too large or
//! truncated, and listings the memory budget refused. Each is remembered for
//! `cache.keep_empty_for`; meanwhile the key is answered with what the cache holds and the
//! local referrers, without an upstream call.

use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::outcome::UpstreamResult;

/// Keys remembered at most: past it the oldest are forgotten, which costs one more download.
const MAX_KEYS: u64 = 100_000;

#[derive(Debug, Clone, Copy)]
struct Remembered {
    why: UpstreamResult,
    until: Instant,
}

pub struct Unfetched {
    keys: Cache<String, Remembered>,
    keep_for: Duration,
}

impl Unfetched {
    #[must_use]
    pub fn new(keep_for: Duration) -> Self {
        Self {
            // moka's own expiry only frees the memory; `until` decides, on the cache's clock.
            keys: Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(keep_for.max(Duration::from_millis(1)))
                .support_invalidation_closures()
                .build(),
            keep_for,
        }
    }

    /// Remembers `key` as not to be fetched until `keep_for` after `now`, and why.
    pub async fn remember(&self, key: &str, why: UpstreamResult, now: Instant) {
        let until = now + self.keep_for;
        self.keys
            .insert(key.to_owned(), Remembered { why, until })
            .await;
    }

    /// Forgets every key `matches` accepts: the next request for it may fetch again.
    pub fn forget_matching(&self, matches: impl Fn(&str) -> bool + Send + Sync + 'static) {
        // Only fails when invalidation closures are not enabled, which they are.
        let _ = self.keys.invalidate_entries_if(move |key, _| matches(key));
    }

    /// Why `key` is not to be fetched at `now`, if it is not.
    pub async fn why(&self, key: &str, now: Instant) -> Option<UpstreamResult> {
        self.keys
            .get(key)
            .await
            .filter(|remembered| now < remembered.until)
            .map(|remembered| remembered.why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_remembered_for_keep_for_and_per_key() {
        let keep_for = Duration::from_secs(3600);
        let unfetched = Unfetched::new(keep_for);
        let now = Instant::now();
        unfetched.remember("a", UpstreamResult::TooLarge, now).await;
        assert_eq!(
            unfetched.why("a", now).await,
            Some(UpstreamResult::TooLarge)
        );
        let almost = now + keep_for - Duration::from_millis(1);
        assert_eq!(
            unfetched.why("a", almost).await,
            Some(UpstreamResult::TooLarge)
        );
        assert_eq!(unfetched.why("a", now + keep_for).await, None);
        assert_eq!(unfetched.why("b", now).await, None);
    }
}
