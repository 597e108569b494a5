//! A circuit breaker: after enough consecutive failures, stop calling for a cool-down, then let
//! one probe through; its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    #[must_use]
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is out; everything else waits for its verdict, or until a cool-down passes
    /// without one (the probe's caller went away) and another probe may go.
    HalfOpen {
        until: Instant,
    },
}

#[derive(Debug)]
pub struct Breaker {
    failures_to_open: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    #[must_use]
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go out now. When the cool-down is over, the first caller is let
    /// through as the probe.
    pub fn allow(&self) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if Instant::now() >= until => {
                *state = State::HalfOpen {
                    until: Instant::now() + self.cooldown,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// Whether [`Breaker::allow`] would let a call through now, without taking the probe.
    #[must_use]
    pub fn would_allow(&self) -> bool {
        match *self.lock() {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } => Instant::now() >= until,
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// Returns true when this failure opened the breaker.
    pub fn record_failure(&self) -> bool {
        let mut state = self.lock();
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::HalfOpen { .. } | State::Open { .. } => self.failures_to_open,
        };
        if failures >= self.failures_to_open {
            let was_open = matches!(*state, State::Open { .. });
            *state = State::Open {
                until: Instant::now() + self.cooldown,
            };
            !was_open
        } else {
            *state = State::Closed { failures };
            false
        }
    }

    #[must_use]
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_then_probes_once() {
        let breaker = Breaker::new(3, Duration::ZERO);
        assert!(breaker.allow());
        assert!(!breaker.record_failure());
        breaker.record_success();
        assert!(!breaker.record_failure());
        assert!(!breaker.record_failure());
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(
            breaker.record_failure(),
            "the third consecutive failure opens it"
        );
        assert_eq!(breaker.state(), BreakerState::Open);
        // Cool-down of zero: the next caller is the probe, the one after it waits.
        assert!(breaker.allow());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // Zero cool-down: a probe whose verdict never came is replaced at once.
        assert!(breaker.would_allow());
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow());
    }

    #[test]
    fn a_probe_blocks_others_until_its_verdict_or_a_cool_down() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        breaker.record_failure();
        assert!(!breaker.would_allow());
        *breaker.lock() = State::Open {
            until: Instant::now(),
        };
        assert!(breaker.would_allow());
        assert!(breaker.allow(), "the probe");
        assert!(!breaker.allow(), "one probe at a time");
        assert!(!breaker.would_allow());
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let breaker = Breaker::new(1, Duration::from_secs(3600));
        breaker.record_failure();
        assert!(!breaker.allow(), "open during the cool-down");
        let breaker = Breaker::new(1, Duration::ZERO);
        breaker.record_failure();
        assert!(breaker.allow());
        assert!(breaker.record_failure());
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
