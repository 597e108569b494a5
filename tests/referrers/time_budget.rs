//! One time budget per referrers request (`response.deadline`): an upstream that does not
//! answer within it gives the local referrers at once, and its fetch goes on to fill the cache
//! for the next request. (A core that does not answer within it is a row of the fault matrix,
//! `tests/cache/fault_matrix.rs`.)

use std::time::{Duration, Instant};

use e2e::metrics::{self, Tier, UpstreamResult};
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::wait::wait_for_metric;
use e2e::world::{World, ask, referrers_path};

/// The budget the tests give the sidecar.
const BUDGET: Duration = Duration::from_secs(2);

/// A generous bound on an answer that must come at the budget: a loaded machine may be slow,
/// but without a budget these requests never end.
const WELL_AFTER_BUDGET: Duration = Duration::from_secs(20);

const SUBJECT: &str = "sha256:00000000000000000000000000000000000000000000000000000000000000a1";

#[tokio::test]
async fn an_upstream_slower_than_the_budget_gives_the_local_referrers_then_a_hit() {
    let upstream = ScriptedUpstream::start(2);
    upstream.hold();
    let world = World::hub_proxy_over("scripted", &upstream.url());
    world
        .harbor
        .set_local_referrers("hub-proxy/team/app", SUBJECT, vec![world.local.clone()]);
    let sidecar = world.sidecar_with(|s| s.response.deadline = BUDGET);
    let path = referrers_path("hub-proxy/team/app", SUBJECT);

    let started = Instant::now();
    let first = ask(&sidecar, &path).await;
    assert!(
        started.elapsed() < WELL_AFTER_BUDGET,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (first.status, first.cache.as_str(), first.upstream.as_str()),
        (200, "miss", "timeout")
    );
    assert_eq!(first.digests, [world.local_digest()]);
    assert_eq!(upstream.referrers_requests(), 1, "the fetch is under way");

    // The fetch outlives the request that started it, and fills the cache.
    upstream.release();
    wait_for_metric(&sidecar, &metrics::cache_stores(Tier::Memory), 1.0).await;
    let second = ask(&sidecar, &path).await;
    assert_eq!(
        (
            second.status,
            second.cache.as_str(),
            second.upstream.as_str()
        ),
        (200, "hit", "api")
    );
    assert_eq!(
        second.digests.len(),
        3,
        "two upstream referrers and the local one"
    );
    assert_eq!(
        upstream.referrers_requests(),
        2,
        "two pages, each asked once"
    );
    let timeouts = sidecar
        .metric(&metrics::upstream_results(
            "scripted",
            UpstreamResult::Timeout,
        ))
        .await;
    assert!(
        (timeouts - 1.0).abs() < f64::EPSILON,
        "counted for the registry: {timeouts}"
    );
}
