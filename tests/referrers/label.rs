//! The switch in Harbor: a proxy-cache project carrying the project label `referrers-proxy`
//! is served without being named in `projects.enabled`; what the user sees (status, headers,
//! the list) and what reached the upstream and Harbor's labels API.

use std::time::Duration;

use e2e::metrics::{self, HarborApiError};
use e2e::users::ALICE;
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask, referrers_path};

const LABEL: &str = "referrers-proxy";

/// `hub-proxy` over a mirror with the referrers API, not named in `projects.enabled`.
async fn unlisted_world() -> World {
    World::hub_proxy_builder(Mirror::with_referrers_api().await)
        .enable(&["other-proxy"])
        .start()
}

/// The queries of the label requests Harbor received, percent-decoded.
fn label_requests(world: &World) -> Vec<String> {
    world
        .harbor
        .requests_to("/api/v2.0/labels")
        .iter()
        .map(|seen| {
            percent_encoding::percent_decode_str(&seen.query)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_labelled_project_is_served_and_its_label_read_once_per_ttl() {
    let world = unlisted_world().await;
    world.harbor.add_project_label("hub-proxy", LABEL);
    let sidecar = world.sidecar();
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");

    let first = ask(&sidecar, &path).await;
    assert_eq!(
        (first.status, first.cache.as_str(), first.upstream.as_str()),
        (200, "miss", "api")
    );
    world.assert_merged("hub-proxy", &first);
    assert_eq!(mirror.referrers_requests(), 1);

    let second = ask(&sidecar, &path).await;
    assert_eq!(
        (second.cache.as_str(), second.upstream.as_str()),
        ("hit", "api")
    );
    assert_eq!(second.digests, first.digests);
    let labels = label_requests(&world);
    assert_eq!(
        labels.len(),
        1,
        "one label call per project per TTL: {labels:?}"
    );
    assert!(
        labels[0].contains("scope=p") && labels[0].contains("project_id=1"),
        "{labels:?}"
    );
}

#[tokio::test]
async fn a_removed_label_gives_cores_answer_after_the_ttl() {
    let world = unlisted_world().await;
    world.harbor.add_project_label("hub-proxy", LABEL);
    let sidecar = world.sidecar_with(|s| s.harbor.project_info_ttl = Duration::from_secs(1));
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");
    let served = ask(&sidecar, &path).await;
    assert_eq!((served.status, served.upstream.as_str()), (200, "api"));
    assert_eq!(mirror.referrers_requests(), 1);

    world.harbor.remove_label(LABEL);
    let mut back = None;
    eventually("core's answer once the label is forgotten", async || {
        let answer = ask(&sidecar, &path).await;
        if answer.upstream.is_empty() {
            back = Some(answer);
            return true;
        }
        // Until then, the cached list is served as before.
        assert_eq!(answer.digests.len(), served.digests.len(), "{answer:?}");
        false
    })
    .await;
    world.assert_core_answer(&back.expect("the answer waited for"));
    assert_eq!(mirror.referrers_requests(), 1, "no upstream call after");
}

#[tokio::test]
async fn a_label_whose_name_only_contains_the_switch_does_not_turn_it_on() {
    let world = unlisted_world().await;
    world
        .harbor
        .add_project_label("hub-proxy", &format!("{LABEL}-old"));
    let sidecar = world.sidecar();
    let path = world.subject_path("hub-proxy");
    for _ in 0..2 {
        world.assert_core_answer(&ask(&sidecar, &path).await);
    }
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 0);
    let labels = label_requests(&world);
    assert_eq!(labels.len(), 1, "the answer is cached: {labels:?}");
    // One listing of the project's labels, compared exactly here (Harbor's filter is fuzzy).
    assert!(!labels[0].contains("name="), "{labels:?}");
}

#[tokio::test]
async fn a_robot_without_label_list_keeps_the_configured_projects_and_says_so() {
    let mirror = Mirror::with_referrers_api().await;
    let upstream_url = mirror.url();
    let world = World::builder()
        .mirror("hub-proxy", "upstream", mirror)
        .proxy_cache("labelled-proxy", "upstream-too", &upstream_url)
        .user(ALICE, &["hub-proxy", "labelled-proxy"])
        .enable(&["hub-proxy"])
        .harbor(|harbor| harbor.labels_listable = false)
        .start();
    world.harbor.add_project_label("labelled-proxy", LABEL);
    let sample = &world.mirror("hub-proxy").sample;
    let labelled_repository = format!("labelled-proxy/{}", world.mirror("hub-proxy").repository);
    world.harbor.set_local_referrers(
        &labelled_repository,
        &sample.subject.digest,
        vec![world.local.clone()],
    );
    let sidecar = world.sidecar();

    let configured = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (configured.status, configured.upstream.as_str()),
        (200, "api")
    );
    assert_eq!(configured.digests.len(), 3, "{configured:?}");

    let labelled_path = referrers_path(&labelled_repository, &sample.subject.digest);
    for _ in 0..2 {
        world.assert_core_answer(&ask(&sidecar, &labelled_path).await);
    }
    assert_eq!(
        world.mirror("hub-proxy").referrers_requests(),
        1,
        "only the configured project reached the upstream"
    );
    // One refusal per project and TTL: labelled-proxy's serve label, and hub-proxy's labels
    // read in the background for `projects.store_label` (on by default).
    let forbidden = metrics::harbor_api_errors(HarborApiError::Forbidden);
    wait_for_metric(&sidecar, &forbidden, 2.0).await;
    assert_eq!(sidecar.metric(&forbidden).await, 2.0);
    let refused = sidecar
        .logs()
        .iter()
        .filter(|line| line.contains("label:list") && line.contains("\"level\":\"ERROR\""))
        .count();
    assert_eq!(refused, 1, "logged once, as an error naming the permission");
}
