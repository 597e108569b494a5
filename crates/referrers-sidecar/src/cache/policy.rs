//! Whether a cached list may be served, and how: a pure function of the entry, the time and
//! the lifetimes the configuration gives.

use std::time::Duration;

use super::entry::CachedList;

/// How far ahead of this replica's clock an entry's `fetched_at` may be: replicas' clocks differ
/// a little. Further ahead, the value is not believed (a clock far off, or a value written to
/// stay fresh for ever): it is expired, a miss, and overwritten.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// How long entries are served, counted from when the upstream answered (`fetched_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Served as is, without a refresh (`cache.fresh_for`).
    pub fresh_for: Duration,
    /// Served at all, stale while a refresh runs (`cache.keep_stale_for`).
    pub keep_stale_for: Duration,
    /// Served at all when the list is empty (`cache.keep_empty_for`): a subject gains its
    /// first referrers soon after it is pushed, so an empty answer is kept less long.
    pub keep_empty_for: Duration,
}

/// What an entry is worth at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Served as is; `left` is how long it may still be served at all.
    Fresh { left: Duration },
    /// Served while a refresh runs; `left` as for [`Freshness::Fresh`].
    Stale { left: Duration },
    /// Past its lifetime: never served.
    Expired,
}

impl Freshness {
    /// How long the entry may still be served, `None` once expired.
    #[must_use]
    pub fn time_left(self) -> Option<Duration> {
        match self {
            Self::Fresh { left } | Self::Stale { left } => Some(left),
            Self::Expired => None,
        }
    }
}

impl Lifetimes {
    /// How long `entry` may be served at all.
    #[must_use]
    pub fn lifetime(&self, entry: &CachedList) -> Duration {
        if entry.descriptors.is_empty() {
            self.keep_empty_for.min(self.keep_stale_for)
        } else {
            self.keep_stale_for
        }
    }

    /// `entry` at `now_ms` (milliseconds since the epoch). A `fetched_at` in the future by at
    /// most [`MAX_CLOCK_SKEW`] (a replica's clock ahead of this one) counts as fetched just
    /// now; further in the future, the entry is expired.
    #[must_use]
    pub fn freshness(&self, entry: &CachedList, now_ms: u64) -> Freshness {
        let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap_or(u64::MAX);
        if entry.fetched_at_ms > now_ms.saturating_add(skew) {
            return Freshness::Expired;
        }
        let age = Duration::from_millis(now_ms.saturating_sub(entry.fetched_at_ms));
        let Some(left) = self
            .lifetime(entry)
            .checked_sub(age)
            .filter(|left| !left.is_zero())
        else {
            return Freshness::Expired;
        };
        if age < self.fresh_for {
            Freshness::Fresh { left }
        } else {
            Freshness::Stale { left }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_referrers::{Descriptor, PreparedList};
    use registry_client::ReferrersSource;

    const FETCHED_AT: u64 = 1_700_000_000_000;
    const LIFETIMES: Lifetimes = Lifetimes {
        fresh_for: Duration::from_secs(600),
        keep_stale_for: Duration::from_secs(7 * 86_400),
        keep_empty_for: Duration::from_secs(3_600),
    };

    fn entry(referrers: usize) -> CachedList {
        let descriptor: Descriptor = serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "a".repeat(64)),
            "size": 10,
        }))
        .unwrap();
        CachedList {
            fetched_at_ms: FETCHED_AT,
            source: ReferrersSource::Api,
            tag_digest: None,
            descriptors: PreparedList::new(vec![descriptor; referrers]),
        }
    }

    fn at(entry: &CachedList, age: Duration) -> Freshness {
        let age = u64::try_from(age.as_millis()).unwrap();
        LIFETIMES.freshness(entry, FETCHED_AT + age)
    }

    #[test]
    fn fresh_until_fresh_for_then_stale_until_keep_stale_for_then_expired() {
        let list = entry(2);
        let week = LIFETIMES.keep_stale_for;
        assert_eq!(at(&list, Duration::ZERO), Freshness::Fresh { left: week });
        let almost = LIFETIMES.fresh_for - Duration::from_millis(1);
        assert_eq!(
            at(&list, almost),
            Freshness::Fresh {
                left: week - almost
            }
        );
        assert_eq!(
            at(&list, LIFETIMES.fresh_for),
            Freshness::Stale {
                left: week - LIFETIMES.fresh_for
            }
        );
        let last = week - Duration::from_millis(1);
        assert_eq!(
            at(&list, last),
            Freshness::Stale {
                left: Duration::from_millis(1)
            }
        );
        assert_eq!(at(&list, week), Freshness::Expired);
        assert_eq!(at(&list, week * 2), Freshness::Expired);
    }

    #[test]
    fn an_empty_list_expires_after_keep_empty_for() {
        let empty = entry(0);
        let hour = LIFETIMES.keep_empty_for;
        assert_eq!(at(&empty, Duration::ZERO), Freshness::Fresh { left: hour });
        assert!(matches!(
            at(&empty, LIFETIMES.fresh_for),
            Freshness::Stale { .. }
        ));
        assert_eq!(at(&empty, hour), Freshness::Expired);
        assert_eq!(LIFETIMES.lifetime(&empty), hour);
        assert_eq!(LIFETIMES.lifetime(&entry(1)), LIFETIMES.keep_stale_for);
    }

    #[test]
    fn keep_empty_for_never_outlives_keep_stale_for() {
        let short = Lifetimes {
            keep_stale_for: Duration::from_secs(60),
            ..LIFETIMES
        };
        assert_eq!(short.lifetime(&entry(0)), Duration::from_secs(60));
    }

    #[test]
    fn an_entry_from_a_clock_ahead_counts_as_just_fetched() {
        let list = entry(1);
        assert_eq!(
            LIFETIMES.freshness(&list, FETCHED_AT - 5_000),
            Freshness::Fresh {
                left: LIFETIMES.keep_stale_for
            }
        );
    }

    #[test]
    fn an_entry_from_further_in_the_future_than_the_skew_is_expired() {
        let list = entry(1);
        let skew = u64::try_from(MAX_CLOCK_SKEW.as_millis()).unwrap();
        assert!(matches!(
            LIFETIMES.freshness(&list, FETCHED_AT - skew),
            Freshness::Fresh { .. }
        ));
        assert_eq!(
            LIFETIMES.freshness(&list, FETCHED_AT - skew - 1),
            Freshness::Expired
        );
        let forever = CachedList {
            fetched_at_ms: u64::MAX,
            ..entry(1)
        };
        assert_eq!(
            LIFETIMES.freshness(&forever, FETCHED_AT),
            Freshness::Expired
        );
        assert_eq!(
            LIFETIMES.freshness(&forever, u64::MAX),
            Freshness::Fresh {
                left: LIFETIMES.keep_stale_for
            }
        );
    }

    #[test]
    fn time_left_is_none_once_expired() {
        assert_eq!(Freshness::Expired.time_left(), None);
        let left = Duration::from_secs(1);
        assert_eq!(Freshness::Stale { left }.time_left(), Some(left));
    }
}
