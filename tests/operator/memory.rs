//! What a caller of the operator API can make the sidecar hold stays bounded: 5,000 calls, each
//! with its own 20 KiB user name and password, are refused before Harbor is asked and raise the
//! sidecar's resident memory by less than 16 MiB.

use e2e::harbor_double::DoubleProject;
use e2e::metrics::{self, Endpoint, OperatorResult};
use e2e::wait::wait_for_metric;
use e2e::world::World;
use futures_util::StreamExt as _;

const CALLS: usize = 5_000;
const AT_ONCE: usize = 16;
const NAME_BYTES: usize = 20 * 1024;
const GROWTH_LIMIT: u64 = 16 * 1024 * 1024;

/// `GET` a project's status as caller `i`, whose user name is `NAME_BYTES` long: the status.
async fn status_as(client: &reqwest::Client, url: &str, i: usize) -> u16 {
    let name = format!("{i:05}{}", "u".repeat(NAME_BYTES - 5));
    client
        .get(url)
        .basic_auth(name, Some(format!("password-{i}")))
        .send()
        .await
        .expect("status request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn five_thousand_callers_with_20_kib_user_names_cost_under_16_mib() {
    let world = World::builder()
        .project(DoubleProject::proxy(5, "hub-proxy", 1))
        .start();
    let sidecar = world.sidecar();
    let url = sidecar.url("/referrers-sidecar/v1/projects/hub-proxy");
    let client = e2e::http_client();

    // A first round brings every worker's buffers to their working size before the measure.
    for i in 0..AT_ONCE {
        assert_eq!(status_as(&client, &url, i).await, 401);
    }
    let before = sidecar.rss_bytes();
    let statuses: Vec<u16> = futures_util::stream::iter(AT_ONCE..AT_ONCE + CALLS)
        .map(|i| status_as(&client, &url, i))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    assert!(statuses.iter().all(|&s| s == 401), "every call is refused");
    wait_for_metric(
        &sidecar,
        &metrics::operator_requests(Endpoint::Status, OperatorResult::Unauthorized),
        (AT_ONCE + CALLS) as f64,
    )
    .await;
    let after = sidecar.rss_bytes();

    assert!(
        world
            .harbor
            .requests_to("/api/v2.0/users/current")
            .is_empty(),
        "no such user name reaches Harbor"
    );
    let growth = after.saturating_sub(before);
    assert!(
        growth < GROWTH_LIMIT,
        "{CALLS} callers with {NAME_BYTES}-byte user names raised RSS by {} KiB ({} → {} KiB)",
        growth / 1024,
        before / 1024,
        after / 1024
    );
}
