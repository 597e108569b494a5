//! A burst of identical referrers requests — a rollout's admission checks, all with the same
//! service credentials — costs Harbor core one call per worker while it is in flight; every
//! request gets the same answer, and other credentials (one core refuses among them) never ride
//! on it.

use std::sync::Arc;

use e2e::metrics::CORE_CALLS_COALESCED;
use e2e::users::{ALICE, BOB, User};
use e2e::wait::eventually;
use e2e::world::{Mirror, World, referrers_path};
use futures_util::future::join_all;

const BURST: usize = 40;

#[tokio::test]
async fn a_burst_of_identical_requests_costs_core_one_call_per_worker() {
    let world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .user(BOB, &["hub-proxy"])
        .start();
    let sidecar = Arc::new(world.sidecar());
    let path = referrers_path(
        "hub-proxy/team/app",
        &world.mirror("hub-proxy").sample.subject.digest,
    );
    // Warm the serving decision and the cache, then hold core's referrers answers.
    assert_eq!(sidecar.get_as(&path, ALICE).await.status(), 200);
    let referrers_calls = || {
        world
            .harbor
            .requests_to("/v2/hub-proxy/team/app/referrers/")
            .len()
    };
    let before = referrers_calls();
    world.harbor.hold_referrers();

    let ask = |user: User| {
        let (sidecar, path) = (Arc::clone(&sidecar), path.clone());
        tokio::spawn(async move {
            let response = sidecar.get_as(&path, user).await;
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        })
    };
    let burst: Vec<_> = (0..BURST).map(|_| ask(ALICE)).collect();
    let bob = ask(BOB);
    let stranger = ask(User {
        password: "not-her-password",
        ..ALICE
    });
    // Every one of alice's requests is either core's call or waiting on another's.
    eventually(
        "alice's burst reached core or joined a call in flight",
        async || {
            // A failed read is tried again on the next round.
            let Ok(response) = e2e::http_client()
                .get(format!("http://127.0.0.1:{}/metrics", sidecar.metrics_port))
                .send()
                .await
            else {
                return false;
            };
            let Ok(text) = response.text().await else {
                return false;
            };
            let coalesced = e2e::metric(&text, CORE_CALLS_COALESCED);
            let calls = referrers_calls() - before;
            // Bob's call is in flight too, and the stranger's, which core refuses.
            coalesced as usize + calls >= BURST + 2
        },
    )
    .await;
    world.harbor.release_referrers();

    let answers: Vec<(u16, String)> = join_all(burst)
        .await
        .into_iter()
        .map(|joined| joined.expect("no panic"))
        .collect();
    let (bob, stranger) = (bob.await.expect("bob"), stranger.await.expect("stranger"));
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    assert!(
        answers.iter().all(|answer| answer.1 == answers[0].1),
        "every request of the burst gets the same answer"
    );
    assert_eq!(bob.0, 200, "{bob:?}");
    assert_eq!(bob.1, answers[0].1, "bob may read the same list");
    assert_eq!(
        stranger.0, 401,
        "a wrong password rides on no one's call: {stranger:?}"
    );

    let calls = referrers_calls() - before;
    let coalesced = sidecar.metric(CORE_CALLS_COALESCED).await as usize;
    // At most one call per worker for alice (each worker shares its own calls in flight), one
    // for bob, one for the stranger's refused request.
    let workers = workers(&sidecar);
    assert!(
        calls <= workers + 2,
        "{calls} calls to core for a burst of {BURST} on {workers} workers"
    );
    assert!(
        coalesced >= BURST - workers,
        "{coalesced} of {BURST} requests shared a call"
    );
}

/// How many workers the sidecar runs, as it logged at start.
fn workers(sidecar: &e2e::Sidecar) -> usize {
    sidecar
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "connections to Harbor core pooled per worker")
        .and_then(|event| event["workers"].as_u64())
        .expect("the workers logged at start") as usize
}
