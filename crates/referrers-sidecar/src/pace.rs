//! Calls to one registry spread evenly in time: slots a fixed interval apart, each taken by
//! one call (the store's manifest `GET`s, `store.pulls_per_hour`; the operator's warm-up
//! listings, `operator.warm_per_minute`). Unused time is not saved up. Pure: the caller passes
//! the time.

use std::time::{Duration, Instant};

/// A registry's next free slot.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: Option<Instant>,
}

impl Pace {
    /// Slots `1 h / per_hour` apart (one an hour at least: validated at start).
    #[must_use]
    pub fn per_hour(per_hour: u32) -> Self {
        Self::every(Duration::from_secs(3600) / per_hour.max(1))
    }

    /// Slots `1 min / per_minute` apart (one a minute at least: validated at start).
    #[must_use]
    pub fn per_minute(per_minute: u32) -> Self {
        Self::every(Duration::from_secs(60) / per_minute.max(1))
    }

    fn every(interval: Duration) -> Self {
        Self {
            interval,
            next: None,
        }
    }

    /// Takes the next slot at or after `now`: how long to wait for it.
    pub fn take(&mut self, now: Instant) -> Duration {
        let slot = self.next_slot(now);
        self.next = Some(slot + self.interval);
        slot - now
    }

    /// Takes the next slot if it comes within `longest` of `now`: `Ok(how long to wait for
    /// it)`; else takes none, `Err(how long until it would)`.
    pub fn take_within(&mut self, now: Instant, longest: Duration) -> Result<Duration, Duration> {
        let wait = self.next_slot(now) - now;
        if wait > longest {
            return Err(wait);
        }
        Ok(self.take(now))
    }

    fn next_slot(&self, now: Instant) -> Instant {
        self.next.map_or(now, |next| next.max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spread_and_unused_time_is_not_saved_up() {
        let mut now = Instant::now();
        // Docker Hub's anonymous ten an hour: one every six minutes.
        let mut pace = Pace::per_hour(10);
        let six_minutes = Duration::from_secs(360);
        assert_eq!(pace.take(now), Duration::ZERO);
        assert_eq!(pace.take(now), six_minutes);
        assert_eq!(pace.take(now), 2 * six_minutes);
        // Waiting for one's slot: the next is a whole interval after it.
        now += 2 * six_minutes;
        assert_eq!(pace.take(now), six_minutes);
        // Long idle, the next goes at once, and only one.
        now += Duration::from_secs(24 * 3600);
        assert_eq!(pace.take(now), Duration::ZERO);
        assert_eq!(pace.take(now), six_minutes);
    }

    #[test]
    fn a_slot_too_far_away_is_not_taken() {
        let mut now = Instant::now();
        let mut pace = Pace::per_minute(60);
        let second = Duration::from_secs(1);
        for n in 0..=3 {
            assert_eq!(pace.take_within(now, 3 * second), Ok(n * second));
        }
        assert_eq!(
            pace.take_within(now, 3 * second),
            Err(4 * second),
            "the fifth slot is 4 s away"
        );
        assert_eq!(
            pace.take_within(now, 3 * second),
            Err(4 * second),
            "and a refusal took none"
        );
        now += second;
        assert_eq!(pace.take_within(now, 3 * second), Ok(3 * second));
    }

    #[test]
    fn an_hour_holds_pulls_per_hour_slots() {
        let start = Instant::now();
        let mut pace = Pace::per_hour(3600);
        let waits: Vec<Duration> = (0..3601).map(|_| pace.take(start)).collect();
        assert_eq!(waits[3599], Duration::from_secs(3599));
        assert_eq!(
            waits[3600],
            Duration::from_secs(3600),
            "the 3601st: next hour"
        );
    }
}
