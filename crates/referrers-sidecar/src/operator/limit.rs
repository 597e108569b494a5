//! How often the operator API does one project's work, in this replica: at most so many calls
//! in any minute (a sliding window), purges and status calls each on a budget of their own
//! (`operator.purges_per_minute`, `operator.status_per_minute`). A call past its budget is told
//! how long until a slot frees, and nothing else is done for it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::warm::WarmPacing;
use crate::clock::Clock;
use crate::config::OperatorSettings;

/// The window budgets are counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// Projects tracked before those with no call left in the window are forgotten. Only projects
/// Harbor knows are tracked (a caller must be allowed first), so this is no bound on what a
/// caller can make the replica keep, only on how often it looks for what to forget.
const FORGET_PAST: usize = 10_000;

/// A call refused: a slot of its budget frees in `retry_after` (whole seconds, at least one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("over the project's budget of calls: retry in {} s", retry_after.as_secs())]
pub struct Limited {
    pub retry_after: Duration,
}

/// One budget: `per_minute` calls of each project in any minute.
#[derive(Debug)]
pub struct CallBudget {
    per_minute: usize,
    /// When each project's calls in the window were taken, oldest first.
    calls: Mutex<HashMap<String, VecDeque<Instant>>>,
    clock: Arc<dyn Clock>,
}

impl CallBudget {
    #[must_use]
    pub fn per_minute(per_minute: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            per_minute: usize::try_from(per_minute).unwrap_or(usize::MAX).max(1),
            calls: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Takes a slot of `project`'s budget, or says when one frees.
    pub fn take(&self, project: &str) -> Result<(), Limited> {
        let now = self.clock.instant();
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        if calls.len() > FORGET_PAST {
            calls.retain(|_, taken| taken.back().is_some_and(|last| now < *last + WINDOW));
        }
        let taken = calls.entry(project.to_owned()).or_default();
        while taken.front().is_some_and(|first| *first + WINDOW <= now) {
            taken.pop_front();
        }
        if taken.len() < self.per_minute {
            taken.push_back(now);
            return Ok(());
        }
        // Full: the oldest call leaves the window first.
        let left = taken.front().map_or(WINDOW, |first| *first + WINDOW - now);
        Err(Limited {
            retry_after: Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0))
                .max(Duration::from_secs(1)),
        })
    }
}

/// The operator API's budgets, and the bounds of its warm-ups.
#[derive(Debug)]
pub struct OperatorBudgets {
    pub purges: CallBudget,
    pub status: CallBudget,
    pub warm: WarmPacing,
}

impl OperatorBudgets {
    #[must_use]
    pub fn new(settings: &OperatorSettings, clock: &Arc<dyn Clock>) -> Self {
        Self {
            purges: CallBudget::per_minute(settings.purges_per_minute, Arc::clone(clock)),
            status: CallBudget::per_minute(settings.status_per_minute, Arc::clone(clock)),
            warm: WarmPacing::new(settings, Arc::clone(clock)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn budget(per_minute: u32) -> (CallBudget, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::at(0));
        let budget = CallBudget::per_minute(per_minute, Arc::clone(&clock) as Arc<dyn Clock>);
        (budget, clock)
    }

    fn refused_for(result: Result<(), Limited>) -> Duration {
        result.expect_err("refused").retry_after
    }

    /// Six purges in a minute, the seventh is told when the first leaves the window; then one
    /// slot frees at a time, as each call leaves it.
    #[test]
    fn a_project_gets_its_budget_per_sliding_minute_and_learns_when_a_slot_frees() {
        let (budget, clock) = budget(6);
        for _ in 0..6 {
            budget.take("hub").expect("within the budget");
            clock.advance(Duration::from_secs(5));
        }
        // 30 s after the first call: it leaves the window in 30 s.
        assert_eq!(refused_for(budget.take("hub")), Duration::from_secs(30));
        clock.advance(Duration::from_millis(29_500));
        assert_eq!(
            refused_for(budget.take("hub")),
            Duration::from_secs(1),
            "half a second left is one second to wait"
        );
        clock.advance(Duration::from_millis(500));
        budget.take("hub").expect("the first call left the window");
        assert_eq!(
            refused_for(budget.take("hub")),
            Duration::from_secs(5),
            "the second call leaves it 5 s later"
        );
        clock.advance(WINDOW);
        for _ in 0..6 {
            budget.take("hub").expect("a whole budget again");
        }
    }

    #[test]
    fn each_project_has_its_own_budget_and_refusals_take_no_slot() {
        let (budget, clock) = budget(2);
        budget.take("hub").unwrap();
        budget.take("hub").unwrap();
        for _ in 0..100 {
            assert!(budget.take("hub").is_err());
        }
        budget.take("ghcr").expect("another project's budget");
        clock.advance(WINDOW);
        budget.take("hub").expect("the refused calls took no slot");
    }

    #[test]
    fn purges_and_status_calls_are_counted_apart() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(0));
        let settings = OperatorSettings {
            purges_per_minute: 1,
            status_per_minute: 2,
            ..OperatorSettings::default()
        };
        let budgets = OperatorBudgets::new(&settings, &clock);
        budgets.purges.take("hub").unwrap();
        assert!(budgets.purges.take("hub").is_err());
        budgets
            .status
            .take("hub")
            .expect("purges do not spend the status budget");
        budgets.status.take("hub").unwrap();
        assert!(budgets.status.take("hub").is_err());
    }

    #[test]
    fn projects_with_no_call_left_in_the_window_are_forgotten() {
        let (budget, clock) = budget(1);
        for n in 0..=FORGET_PAST {
            budget.take(&format!("p{n}")).unwrap();
        }
        clock.advance(WINDOW);
        budget.take("new").unwrap();
        assert_eq!(budget.calls.lock().unwrap().len(), 1);
    }
}
