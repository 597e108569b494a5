//! One fetch per key at a time in this process: concurrent callers for a key share the result
//! of the first one's fetch. The fetch runs as a task of its own, so a caller that goes away
//! does not cancel it for the others.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

pub struct SingleFlight<V: Clone + Send + Sync + 'static> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, Option<V>>>>>,
}

impl<V: Clone + Send + Sync + 'static> Default for SingleFlight<V> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// The result of the fetch for `key`: started by `fetch` when none is in flight, else the
    /// one in flight. The flag says whether this caller waited for another's fetch. `None`
    /// when the fetch task panicked.
    pub async fn run<F>(self: &Arc<Self>, key: &str, fetch: impl FnOnce() -> F) -> (Option<V>, bool)
    where
        F: Future<Output = V> + Send + 'static,
    {
        let (shared, joined) = {
            let mut inflight = self.lock();
            if let Some(shared) = inflight.get(key) {
                (shared.clone(), true)
            } else {
                let this = Arc::clone(self);
                let owned_key = key.to_owned();
                let work = fetch();
                let task = tokio::spawn(async move {
                    // Removed however the fetch ends, a panic included: a key left "in flight"
                    // would make every later caller wait for nothing.
                    let _done = Landing {
                        flights: this,
                        key: owned_key,
                    };
                    work.await
                });
                let shared = async move { task.await.ok() }.boxed().shared();
                inflight.insert(key.to_owned(), shared.clone());
                (shared, false)
            }
        };
        (shared.await, joined)
    }

    /// Whether a fetch for `key` is in flight.
    #[must_use]
    pub fn is_running(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Shared<BoxFuture<'static, Option<V>>>>> {
        self.inflight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Takes a key out of the in-flight map when dropped.
struct Landing<V: Clone + Send + Sync + 'static> {
    flights: Arc<SingleFlight<V>>,
    key: String,
}

impl<V: Clone + Send + Sync + 'static> Drop for Landing<V> {
    fn drop(&mut self) {
        self.flights.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let flights = Arc::new(SingleFlight::<usize>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut all = Box::pin(futures_util::future::join_all((0..50).map(|_| {
            let calls = Arc::clone(&calls);
            let mut gate = gate_rx.clone();
            flights.run("k", move || async move {
                let _ = gate.wait_for(|open| *open).await;
                calls.fetch_add(1, Ordering::SeqCst) + 41
            })
        })));
        // One poll reaches every caller while the fetch is held at the gate.
        assert!((&mut all).now_or_never().is_none());
        assert!(flights.is_running("k"));
        gate_tx.send(true).unwrap();
        let results = all.await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(value, _)| *value == Some(41)));
        assert_eq!(results.iter().filter(|(_, waited)| *waited).count(), 49);
        assert!(!flights.is_running("k"));
    }

    #[tokio::test]
    async fn a_panicking_fetch_lands_too() {
        let flights = Arc::new(SingleFlight::<usize>::default());
        let (value, _) = flights
            .run("k", || async { panic!("fetch failed hard") })
            .await;
        assert_eq!(value, None);
        assert!(!flights.is_running("k"));
        let (value, _) = flights.run("k", || async { 7 }).await;
        assert_eq!(value, Some(7));
    }
}
