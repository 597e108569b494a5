//! A circuit breaker: after enough consecutive failures, stop calling for a cool-down, then let
//! one probe through; its success closes the breaker, its failure opens it again. A state
//! machine the caller passes the time to, read from its clock, and [`Breaker::call`], the one
//! way a call goes out behind it.

use std::future::Future;
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

/// What a call's result says about the callee's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered: a probe's success closes the breaker.
    Healthy,
    /// It failed: counted toward opening the breaker.
    Failed,
    /// An answer that says nothing about its health ([`Breaker::record_inconclusive`]).
    Inconclusive,
}

/// How a call changed the breaker, for the caller to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its failure opened the breaker.
    Opened,
    /// Its success closed a breaker that was open or probing.
    Closed,
}

/// A call the breaker let through: what it returned, and how it changed the breaker.
#[derive(Debug)]
pub struct Called<T> {
    pub value: T,
    pub change: Option<Change>,
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

    #[must_use]
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Whether a call may go out at `now`. When the cool-down is over, the first caller is
    /// let through as the probe.
    pub fn allow(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if now >= until => {
                *state = State::HalfOpen {
                    until: now + self.cooldown,
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// Whether [`Breaker::allow`] would let a call through at `now`, without taking the probe.
    #[must_use]
    pub fn would_allow(&self, now: Instant) -> bool {
        match *self.lock() {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } => now >= until,
        }
    }

    pub fn record_success(&self) {
        *self.lock() = State::Closed { failures: 0 };
    }

    /// An answer that says nothing about the registry's health, such as a rate limit: a
    /// closed breaker keeps its count (it is no success), and a probe that got it does not
    /// close the breaker, which opens again for a cool-down.
    pub fn record_inconclusive(&self, now: Instant) {
        let mut state = self.lock();
        if matches!(*state, State::HalfOpen { .. }) {
            *state = State::Open {
                until: now + self.cooldown,
            };
        }
    }

    /// Returns true when this failure opened the breaker.
    pub fn record_failure(&self, now: Instant) -> bool {
        let mut state = self.lock();
        let failures = match *state {
            State::Closed { failures } => failures + 1,
            State::HalfOpen { .. } | State::Open { .. } => self.failures_to_open,
        };
        if failures >= self.failures_to_open {
            let was_open = matches!(*state, State::Open { .. });
            *state = State::Open {
                until: now + self.cooldown,
            };
            !was_open
        } else {
            *state = State::Closed { failures };
            false
        }
    }

    /// Runs `call` behind the breaker: asks [`Self::allow`] first (`None`: refused, and
    /// `call` never runs), then records what `verdict` makes of its value. `now` reads the
    /// caller's clock; `track` is told the state after the admission and after the verdict
    /// (for a gauge).
    pub async fn call<T>(
        &self,
        now: impl Fn() -> Instant,
        track: impl Fn(BreakerState),
        call: impl Future<Output = T>,
        verdict: impl FnOnce(&T) -> Verdict,
    ) -> Option<Called<T>> {
        let allowed = self.allow(now());
        track(self.state());
        if !allowed {
            return None;
        }
        let value = call.await;
        let change = match verdict(&value) {
            Verdict::Healthy => {
                let was_open = self.state() != BreakerState::Closed;
                self.record_success();
                was_open.then_some(Change::Closed)
            }
            Verdict::Failed => self.record_failure(now()).then_some(Change::Opened),
            Verdict::Inconclusive => {
                self.record_inconclusive(now());
                None
            }
        };
        track(self.state());
        Some(Called { value, change })
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

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[test]
    fn consecutive_failures_open_it_and_a_success_in_between_resets_the_count() {
        let breaker = Breaker::new(3, COOLDOWN);
        let now = Instant::now();
        assert!(breaker.allow(now));
        assert!(!breaker.record_failure(now));
        breaker.record_success();
        assert!(!breaker.record_failure(now));
        assert!(!breaker.record_failure(now));
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.record_failure(now), "the third in a row opens it");
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(now));
        assert!(!breaker.allow(now + COOLDOWN - Duration::from_millis(1)));
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_success_closes_it() {
        let breaker = Breaker::new(1, COOLDOWN);
        let opened = Instant::now();
        assert!(breaker.record_failure(opened));
        let later = opened + COOLDOWN;
        assert!(breaker.would_allow(later));
        assert_eq!(breaker.state(), BreakerState::Open, "asking takes no probe");
        assert!(breaker.allow(later), "the probe");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow(later), "one probe at a time");
        assert!(!breaker.would_allow(later));
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow(later));
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cool_down() {
        let breaker = Breaker::new(3, COOLDOWN);
        let opened = Instant::now();
        for _ in 0..3 {
            breaker.record_failure(opened);
        }
        let probe = opened + COOLDOWN;
        assert!(breaker.allow(probe));
        assert!(breaker.record_failure(probe), "one failure is enough now");
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(probe + COOLDOWN - Duration::from_millis(1)));
        assert!(breaker.allow(probe + COOLDOWN));
    }

    #[test]
    fn a_probe_whose_verdict_never_came_is_replaced_after_a_cool_down() {
        let breaker = Breaker::new(1, COOLDOWN);
        let opened = Instant::now();
        breaker.record_failure(opened);
        let probe = opened + COOLDOWN;
        assert!(breaker.allow(probe));
        assert!(!breaker.allow(probe + COOLDOWN - Duration::from_millis(1)));
        assert!(breaker.allow(probe + COOLDOWN), "the next probe");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[test]
    fn an_inconclusive_answer_neither_resets_the_count_nor_closes_a_probe() {
        let breaker = Breaker::new(2, COOLDOWN);
        let now = Instant::now();
        breaker.record_failure(now);
        breaker.record_inconclusive(now);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(
            breaker.record_failure(now),
            "the count was kept: this is the second"
        );
        let probe = now + COOLDOWN;
        assert!(breaker.allow(probe));
        breaker.record_inconclusive(probe);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow(probe + COOLDOWN - Duration::from_millis(1)));
        assert!(breaker.allow(probe + COOLDOWN), "the next probe");
    }

    #[tokio::test]
    async fn a_call_behind_it_is_refused_when_open_and_its_verdict_is_recorded() {
        use std::cell::{Cell, RefCell};
        let breaker = Breaker::new(2, COOLDOWN);
        let now = Cell::new(Instant::now());
        let tracked = RefCell::new(Vec::new());
        let call = |value: u32, verdict: Verdict| {
            breaker.call(
                || now.get(),
                |state| tracked.borrow_mut().push(state),
                async move { value },
                move |_| verdict,
            )
        };

        let called = call(1, Verdict::Healthy)
            .await
            .expect("closed: let through");
        assert_eq!((called.value, called.change), (1, None));
        assert!(call(2, Verdict::Failed).await.unwrap().change.is_none());
        let opened = call(3, Verdict::Failed).await.unwrap();
        assert_eq!(opened.change, Some(Change::Opened));
        let mut expected = vec![BreakerState::Closed; 5];
        expected.push(BreakerState::Open);
        assert_eq!(
            tracked.take(),
            expected,
            "after admission and after each verdict"
        );

        let ran = Cell::new(false);
        let refused = breaker
            .call(
                || now.get(),
                |state| tracked.borrow_mut().push(state),
                async { ran.set(true) },
                |()| Verdict::Healthy,
            )
            .await;
        assert!(refused.is_none() && !ran.get(), "open: the call never runs");
        assert_eq!(tracked.take(), [BreakerState::Open], "told once");

        now.set(now.get() + COOLDOWN);
        let probe = call(4, Verdict::Inconclusive).await.unwrap();
        assert_eq!(probe.change, None);
        assert_eq!(breaker.state(), BreakerState::Open, "an inconclusive probe");
        assert_eq!(tracked.take(), [BreakerState::HalfOpen, BreakerState::Open]);

        now.set(now.get() + COOLDOWN);
        let closed = call(5, Verdict::Healthy).await.unwrap();
        assert_eq!(closed.change, Some(Change::Closed));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failure_while_open_does_not_report_opening_again() {
        let breaker = Breaker::new(1, COOLDOWN);
        let now = Instant::now();
        assert!(breaker.record_failure(now));
        assert!(!breaker.record_failure(now));
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
