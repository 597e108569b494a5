//! Pulls per upstream registry spread evenly in time: at most `store.pulls_per_minute` each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The next free slot of each registry.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    next: HashMap<String, Instant>,
}

impl Pace {
    /// Slots `60 s / pulls_per_minute` apart (one per minute at least: validated at start).
    #[must_use]
    pub fn per_minute(pulls_per_minute: u32) -> Self {
        Self {
            interval: Duration::from_secs(60) / pulls_per_minute.max(1),
            next: HashMap::new(),
        }
    }

    /// Takes `registry`'s next slot at or after `now`: how long to wait for it.
    pub fn take(&mut self, registry: &str, now: Instant) -> Duration {
        let slot = self.next.get(registry).map_or(now, |next| (*next).max(now));
        self.next.insert(registry.to_owned(), slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spread_per_registry_and_unused_time_is_not_saved_up() {
        let mut pace = Pace::per_minute(60);
        let start = Instant::now();
        assert_eq!(pace.take("hub", start), Duration::ZERO);
        assert_eq!(pace.take("hub", start), Duration::from_secs(1));
        assert_eq!(pace.take("hub", start), Duration::from_secs(2));
        // Another registry has slots of its own.
        assert_eq!(pace.take("ghcr", start), Duration::ZERO);
        // Long after, the next pull goes at once, and only one.
        let later = start + Duration::from_secs(600);
        assert_eq!(pace.take("hub", later), Duration::ZERO);
        assert_eq!(pace.take("hub", later), Duration::from_secs(1));
    }
}
