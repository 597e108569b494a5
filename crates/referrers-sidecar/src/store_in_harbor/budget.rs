//! Per subject, the referrers taken on (queued, checked, stored): at most
//! `store.max_per_subject` within the time pulled digests are remembered, so one subject's list
//! costs a bounded number of upstream pulls and a bounded share of the project's quota; and the
//! refusals already logged for it, so that a flood of descriptors is one log line per reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::future::Cache;

use crate::outcome::PullResult;

/// How many subjects are remembered at most.
const MAX_SUBJECTS: u64 = 100_000;

#[derive(Debug, Default)]
struct Spent {
    taken: u32,
    /// One bit per [`PullResult`] (its place in `ALL`) logged for the subject.
    logged: u64,
}

/// Each subject's budget, keyed `<repository>@<subject>` (where Harbor keeps it).
#[derive(Clone)]
pub struct Budgets {
    most: u32,
    subjects: Cache<String, Arc<Mutex<Spent>>>,
}

impl Budgets {
    /// `most` referrers per subject, each subject remembered for `keep_for` from its first.
    #[must_use]
    pub fn new(most: u32, keep_for: Duration) -> Self {
        Self {
            most,
            subjects: Cache::builder()
                .max_capacity(MAX_SUBJECTS)
                .time_to_live(keep_for)
                .build(),
        }
    }

    /// Takes one referrer on for `subject`; false when it had `most` already.
    pub async fn take(&self, subject: &str) -> bool {
        let spent = self.spent(subject).await;
        let mut spent = lock(&spent);
        if spent.taken >= self.most {
            return false;
        }
        spent.taken += 1;
        true
    }

    /// Gives back a referrer taken on for `subject` that was not decided (dropped, skipped, or
    /// failed): it is offered again later, and takes its place again then.
    pub async fn give_back(&self, subject: &str) {
        if let Some(spent) = self.subjects.get(subject).await {
            let mut spent = lock(&spent);
            spent.taken = spent.taken.saturating_sub(1);
        }
    }

    /// Whether `result` is the first of its kind for `subject`: the one to log.
    pub async fn first(&self, subject: &str, result: PullResult) -> bool {
        let bit = PullResult::ALL
            .iter()
            .position(|r| *r == result)
            .map_or(0, |place| 1u64 << place);
        let spent = self.spent(subject).await;
        let mut spent = lock(&spent);
        let first = spent.logged & bit == 0;
        spent.logged |= bit;
        first
    }

    async fn spent(&self, subject: &str) -> Arc<Mutex<Spent>> {
        self.subjects
            .get_with_by_ref(subject, async { Arc::default() })
            .await
    }
}

fn lock(spent: &Mutex<Spent>) -> std::sync::MutexGuard<'_, Spent> {
    spent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subject_takes_at_most_its_budget_and_gets_back_what_was_not_decided() {
        let budgets = Budgets::new(2, Duration::from_secs(3600));
        assert!(budgets.take("hub/app@sha256:a").await);
        assert!(budgets.take("hub/app@sha256:a").await);
        assert!(!budgets.take("hub/app@sha256:a").await, "full");
        assert!(budgets.take("hub/app@sha256:b").await, "per subject");
        budgets.give_back("hub/app@sha256:a").await;
        assert!(budgets.take("hub/app@sha256:a").await);
        assert!(!budgets.take("hub/app@sha256:a").await);
        // Giving back what was never taken takes nothing below zero.
        budgets.give_back("hub/app@sha256:c").await;
        budgets.give_back("hub/app@sha256:c").await;
        assert!(budgets.take("hub/app@sha256:c").await);
        assert!(budgets.take("hub/app@sha256:c").await);
        assert!(!budgets.take("hub/app@sha256:c").await);
    }

    #[tokio::test]
    async fn each_refusal_is_logged_once_per_subject() {
        let budgets = Budgets::new(2, Duration::from_secs(3600));
        assert!(budgets.first("a", PullResult::WrongSubject).await);
        assert!(!budgets.first("a", PullResult::WrongSubject).await);
        assert!(budgets.first("a", PullResult::TooLarge).await);
        assert!(budgets.first("b", PullResult::WrongSubject).await);
        assert!(!budgets.first("a", PullResult::TooLarge).await);
    }
}
