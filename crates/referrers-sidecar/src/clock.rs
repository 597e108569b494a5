//! Time as the cache and the breakers read it, injectable so their policy runs under a manual
//! clock in tests.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

/// Two readings of now: wall-clock milliseconds for what replicas share (an entry's
/// `fetched_at`), and a monotonic instant for this process's own deadlines.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// A monotonic reading, for cool-downs and waits.
    fn instant(&self) -> Instant;
    /// Waits `duration` on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// The system's clocks and tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        tokio::time::sleep(duration).boxed()
    }
}

/// A clock that moves only when told to: by [`ManualClock::advance`], and by its own sleeps,
/// which move it forward at once and yield to other tasks (so a wait loop runs through its
/// deadline without real time passing). For unit tests only.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct ManualClock {
    start: Instant,
    start_ms: u64,
    elapsed: std::sync::Mutex<Duration>,
}

#[cfg(test)]
impl ManualClock {
    /// A clock reading `start_ms` milliseconds since the epoch.
    #[must_use]
    pub fn at(start_ms: u64) -> Self {
        Self {
            start: Instant::now(),
            start_ms,
            elapsed: std::sync::Mutex::new(Duration::ZERO),
        }
    }

    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }

    fn elapsed(&self) -> Duration {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.elapsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.start_ms.saturating_add(elapsed)
    }

    fn instant(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.advance(duration);
        tokio::task::yield_now().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_both_readings_together() {
        let clock = ManualClock::at(1_000);
        let before = clock.instant();
        clock.advance(Duration::from_millis(250));
        clock.sleep(Duration::from_secs(1)).await;
        assert_eq!(clock.now_ms(), 2_250);
        assert_eq!(clock.instant() - before, Duration::from_millis(1_250));
    }
}
