//! Rate-limit rests: a registry that answered `429` (or `503` with `Retry-After`) gets no call
//! until the wait it asked for has passed, capped. Pure: the caller passes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest rest: `Retry-After` is the upstream's word, and a registry that asks for hours
/// would otherwise stay cut off long after its quota came back.
pub const MAX_REST: Duration = Duration::from_secs(10 * 60);

/// The rest when the upstream gave no readable `Retry-After`.
pub const DEFAULT_REST: Duration = Duration::from_secs(60);

/// The shortest rest: a `Retry-After: 0` must not turn into one call per request.
pub const MIN_REST: Duration = Duration::from_secs(1);

/// How long a registry rests after a rate limit that asked for `retry_after`.
#[must_use]
pub fn rest_length(retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or(DEFAULT_REST)
        .clamp(MIN_REST, MAX_REST)
}

/// When each resting registry (by its label) may be called again.
#[derive(Debug, Default)]
pub struct Rests {
    until: Mutex<HashMap<String, Instant>>,
}

impl Rests {
    /// Starts a rest of `registry` at `now`, or lengthens one already running; returns its
    /// length.
    pub fn start(&self, registry: &str, now: Instant, retry_after: Option<Duration>) -> Duration {
        let length = rest_length(retry_after);
        // `length` is at most MAX_REST, so this cannot overflow on any real clock.
        let until = now.checked_add(length).unwrap_or(now);
        let mut rests = self.lock();
        let ends = rests.entry(registry.to_owned()).or_insert(until);
        *ends = (*ends).max(until);
        length
    }

    /// Whether `registry` rests at `now`; a rest that has ended is forgotten.
    pub fn is_resting(&self, registry: &str, now: Instant) -> bool {
        let mut rests = self.lock();
        match rests.get(registry) {
            Some(until) if now < *until => true,
            Some(_) => {
                rests.remove(registry);
                false
            }
            None => false,
        }
    }

    /// How long `registry` still rests at `now`; `None` when it does not.
    pub fn rest_left(&self, registry: &str, now: Instant) -> Option<Duration> {
        self.lock()
            .get(registry)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_is_what_was_asked_within_bounds() {
        assert_eq!(rest_length(None), DEFAULT_REST);
        assert_eq!(
            rest_length(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(rest_length(Some(Duration::from_secs(86_400))), MAX_REST);
        assert_eq!(rest_length(Some(Duration::MAX)), MAX_REST);
        assert_eq!(rest_length(Some(Duration::ZERO)), MIN_REST);
    }

    #[test]
    fn a_rest_starts_lasts_and_ends_per_registry() {
        let rests = Rests::default();
        let now = Instant::now();
        assert!(!rests.is_resting("hub", now));
        let length = rests.start("hub", now, Some(Duration::from_secs(120)));
        assert_eq!(length, Duration::from_secs(120));
        assert!(rests.is_resting("hub", now));
        assert!(rests.is_resting("hub", now + length - Duration::from_millis(1)));
        assert_eq!(
            rests.rest_left("hub", now + Duration::from_secs(20)),
            Some(Duration::from_secs(100))
        );
        assert_eq!(rests.rest_left("hub", now + length), None);
        assert_eq!(rests.rest_left("quay", now), None);
        assert!(
            !rests.is_resting("quay", now),
            "another registry does not rest"
        );
        assert!(!rests.is_resting("hub", now + length));
        assert!(
            !rests.is_resting("hub", now + length - Duration::from_millis(1)),
            "forgotten once ended"
        );
    }

    #[test]
    fn a_shorter_rest_never_cuts_a_longer_one() {
        let rests = Rests::default();
        let now = Instant::now();
        rests.start("hub", now, Some(Duration::from_secs(300)));
        rests.start("hub", now, Some(Duration::from_secs(5)));
        assert!(rests.is_resting("hub", now + Duration::from_secs(299)));
        rests.start("hub", now + Duration::from_secs(299), None);
        assert!(rests.is_resting("hub", now + Duration::from_secs(358)));
        assert!(!rests.is_resting("hub", now + Duration::from_secs(359)));
    }
}
