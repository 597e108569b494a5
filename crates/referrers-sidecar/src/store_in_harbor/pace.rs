//! One registry's upstream manifest `GET`s spread evenly in time: at most
//! `store.pulls_per_hour`, the check of a referrer and core's pull of it each taking a slot.

use std::time::{Duration, Instant};

/// A registry's next free slot.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: Option<Instant>,
}

impl Pace {
    /// Slots `1 h / pulls_per_hour` apart (one an hour at least: validated at start).
    #[must_use]
    pub fn per_hour(pulls_per_hour: u32) -> Self {
        Self {
            interval: Duration::from_secs(3600) / pulls_per_hour.max(1),
            next: None,
        }
    }

    /// Takes the next slot at or after `now`: how long to wait for it.
    pub fn take(&mut self, now: Instant) -> Duration {
        let slot = self.next.map_or(now, |next| next.max(now));
        self.next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[tokio::test]
    async fn slots_are_spread_and_unused_time_is_not_saved_up() {
        let clock = ManualClock::at(1_700_000_000_000);
        // Docker Hub's anonymous ten an hour: one every six minutes.
        let mut pace = Pace::per_hour(10);
        let six_minutes = Duration::from_secs(360);
        assert_eq!(pace.take(clock.instant()), Duration::ZERO);
        assert_eq!(pace.take(clock.instant()), six_minutes);
        assert_eq!(pace.take(clock.instant()), 2 * six_minutes);
        // Waiting for one's slot: the next is a whole interval after it.
        clock.sleep(2 * six_minutes).await;
        assert_eq!(pace.take(clock.instant()), six_minutes);
        // Long idle, the next goes at once, and only one.
        clock.advance(Duration::from_secs(24 * 3600));
        assert_eq!(pace.take(clock.instant()), Duration::ZERO);
        assert_eq!(pace.take(clock.instant()), six_minutes);
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
