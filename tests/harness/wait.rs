//! Waiting for something a test can observe (a request seen, a metric value, an answer), never
//! for a sleep to be long enough: every wait polls and is bounded by [`LIMIT`].

use std::time::{Duration, Instant};

use crate::Sidecar;

/// How long any wait may take: generous, for a loaded 2-core machine.
pub const LIMIT: Duration = Duration::from_secs(30);

/// How often a condition is checked.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `check` holds; panics naming `what` after [`LIMIT`].
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {LIMIT:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `series` on `sidecar`'s `/metrics` is at least `value`.
pub async fn wait_for_metric(sidecar: &Sidecar, series: &str, value: f64) {
    eventually(&format!("{series} >= {value}"), async || {
        sidecar.metric(series).await >= value
    })
    .await;
}

/// [`eventually`] for code without a runtime (starting processes): blocks the thread.
pub fn blocking(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "not within {LIMIT:?}: {what}");
        std::thread::sleep(POLL);
    }
}
