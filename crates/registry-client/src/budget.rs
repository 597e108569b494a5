//! The process-wide budget of upstream bytes held at once: every listing reserves what it
//! reads before reading it, and gives it back when it is done, so many huge lists at once
//! cannot take the process's memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes all listings may hold at once. Cheap to clone; clones share the budget.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    in_use: AtomicUsize,
}

/// The budget was exhausted: the listing that asked gives up rather than wait, since the
/// listings holding the budget may themselves wait for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream memory budget of {limit} bytes exhausted")]
pub struct OverBudget {
    /// The whole budget, in bytes.
    pub limit: usize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                in_use: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes reserved right now, by every listing.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// The whole budget, in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// An empty reservation that grows as a listing reads.
    #[must_use]
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: Arc::clone(&self.inner),
            held: 0,
        }
    }
}

/// What one listing holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Inner>,
    held: usize,
}

impl Reservation {
    /// Takes `bytes` more, or nothing when the budget cannot spare them.
    ///
    /// # Errors
    ///
    /// [`OverBudget`] when the other reservations leave less than `bytes`.
    pub fn grow(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let limit = self.budget.limit;
        self.budget
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                in_use.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map_err(|_| OverBudget { limit })?;
        self.held += bytes;
        Ok(())
    }

    /// Gives back `bytes` (at most what is held) before the reservation ends.
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.budget.in_use.fetch_sub(bytes, Ordering::AcqRel);
        self.held -= bytes;
    }

    /// Bytes this reservation holds.
    #[must_use]
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut first = budget.reservation();
        first.grow(60).unwrap();
        let mut second = budget.reservation();
        second.grow(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(first);
        assert_eq!(budget.in_use(), 40);
        second.grow(60).unwrap();
        assert_eq!((second.held(), budget.in_use()), (100, 100));
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_request_the_budget_cannot_spare_is_refused_and_takes_nothing() {
        let budget = MemoryBudget::new(100);
        let mut holder = budget.reservation();
        holder.grow(90).unwrap();
        let mut late = budget.reservation();
        assert_eq!(late.grow(11), Err(OverBudget { limit: 100 }));
        assert_eq!((late.held(), budget.in_use()), (0, 90));
        late.grow(10).unwrap();
        assert_eq!(late.grow(1), Err(OverBudget { limit: 100 }));
        assert_eq!(late.grow(usize::MAX), Err(OverBudget { limit: 100 }));
        holder.shrink(50);
        late.grow(50).unwrap();
        assert_eq!((holder.held(), late.held(), budget.in_use()), (40, 60, 100));
    }

    #[test]
    fn shrinking_never_gives_back_more_than_is_held() {
        let budget = MemoryBudget::new(100);
        let mut other = budget.reservation();
        other.grow(30).unwrap();
        let mut reservation = budget.reservation();
        reservation.grow(20).unwrap();
        reservation.shrink(500);
        assert_eq!((reservation.held(), budget.in_use()), (0, 30));
    }
}
