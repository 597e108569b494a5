//! The warm queue: pulled artifacts waiting for their background fetch, bounded (a full queue
//! drops, never waits) and holding each artifact once while it waits or is being warmed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::event::Pulled;
use crate::metrics::Metrics;

/// What became of an artifact offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// Already waiting or being warmed.
    Duplicate,
    /// The queue is full.
    Dropped,
}

/// The sending side, shared by every worker of the HTTP server.
pub struct WarmQueue {
    sender: mpsc::Sender<Pulled>,
    /// Artifacts queued or being warmed: one fetch per artifact at a time.
    pending: Mutex<HashSet<Pulled>>,
    /// Whether the queue was found full since it last took an artifact: logged once per
    /// flood, counted always.
    full: AtomicBool,
    metrics: Arc<Metrics>,
}

impl WarmQueue {
    /// A queue of at most `size` waiting artifacts, and its receiving side.
    #[must_use]
    pub fn new(size: usize, metrics: Arc<Metrics>) -> (Arc<Self>, mpsc::Receiver<Pulled>) {
        let (sender, receiver) = mpsc::channel(size);
        let queue = Self {
            sender,
            pending: Mutex::new(HashSet::new()),
            full: AtomicBool::new(false),
            metrics,
        };
        (Arc::new(queue), receiver)
    }

    /// Queues `pulled` unless it is already pending or the queue is full; never waits.
    pub fn offer(&self, pulled: Pulled) -> Offered {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.contains(&pulled) {
            return Offered::Duplicate;
        }
        // Under the lock, so `pending` and the channel agree.
        match self.sender.try_send(pulled.clone()) {
            Ok(()) => {
                pending.insert(pulled);
                self.metrics.webhook_queue_depth.inc();
                self.full.store(false, Ordering::Relaxed);
                Offered::Queued
            }
            Err(_) => {
                if !self.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(name = %pulled.name, digest = %pulled.digest, "warm queue full (webhook.queue_size): pulled artifacts are dropped, not warmed, until it drains");
                }
                Offered::Dropped
            }
        }
    }

    /// A worker took `pulled` off the queue.
    pub fn taken(&self) {
        self.metrics.webhook_queue_depth.dec();
    }

    /// `pulled` is warmed (whatever the result): it may be queued again.
    pub fn done(&self, pulled: &Pulled) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pulled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulled(n: u8) -> Pulled {
        Pulled {
            name: "hub-proxy/library/nginx".parse().unwrap(),
            digest: format!("sha256:{}", hex::encode([n; 32])).parse().unwrap(),
        }
    }

    #[test]
    fn an_artifact_is_held_once_until_done_and_a_full_queue_drops() {
        let metrics = Arc::new(Metrics::new(&[]).unwrap());
        let (queue, mut receiver) = WarmQueue::new(2, Arc::clone(&metrics));
        assert_eq!(queue.offer(pulled(1)), Offered::Queued);
        assert_eq!(queue.offer(pulled(1)), Offered::Duplicate);
        assert_eq!(queue.offer(pulled(2)), Offered::Queued);
        assert_eq!(queue.offer(pulled(3)), Offered::Dropped);
        assert_eq!(metrics.webhook_queue_depth.get(), 2);

        // Taken but not done: still a duplicate, while its place in the queue is free.
        let first = receiver.try_recv().unwrap();
        queue.taken();
        assert_eq!(first, pulled(1));
        assert_eq!(metrics.webhook_queue_depth.get(), 1);
        assert_eq!(queue.offer(pulled(1)), Offered::Duplicate);
        assert_eq!(queue.offer(pulled(3)), Offered::Queued);

        queue.done(&first);
        assert_eq!(queue.offer(pulled(1)), Offered::Dropped, "full again");
        let _ = receiver.try_recv().unwrap();
        queue.taken();
        assert_eq!(queue.offer(pulled(1)), Offered::Queued);
        assert_eq!(metrics.webhook_queue_depth.get(), 2);
    }
}
