//! Harbor 2.16's proxy allowlist (`proxy_cache_filter_pattern` / `proxy_cache_filter_kind`):
//! a repository the project's allowlist excludes gets core's answer and causes no upstream
//! call (nor does a pull webhook for it); a repository it allows is merged as before.

use e2e::config::Configure;
use e2e::harbor_webhook::{Format, artifact_event, post};
use e2e::metrics::{self, WarmResult};
use e2e::users::ALICE;
use e2e::wait::wait_for_metric;
use e2e::world::{Mirror, World, ask};

/// `hub-proxy` over a mirror with the referrers API (the sample is in `team/app`), with the
/// allowlist `pattern` of `kind`.
async fn allowlisted_world(pattern: &str, kind: Option<&str>) -> World {
    let world = World::hub_proxy_builder(Mirror::with_referrers_api().await).start();
    world
        .harbor
        .set_proxy_cache_filter("hub-proxy", pattern, kind);
    world
}

#[tokio::test]
async fn an_excluded_repository_gets_cores_answer_and_no_upstream_call() {
    let world = allowlisted_world("library/**", None).await;
    let sidecar = world.sidecar();
    let path = world.subject_path("hub-proxy");
    for _ in 0..2 {
        world.assert_core_answer(&ask(&sidecar, &path).await);
    }
    // A filtered request goes to core as it came.
    let filtered = sidecar
        .get_as(
            &format!("{path}?artifactType=application%2Fvnd.cncf.notary.signature"),
            ALICE,
        )
        .await;
    assert_eq!(filtered.status(), 200);
    assert!(filtered.headers().get("x-referrers-upstream").is_none());
    assert_eq!(
        world.mirror("hub-proxy").referrers_requests(),
        0,
        "the upstream was never asked"
    );
}

#[tokio::test]
async fn an_allowed_repository_is_merged() {
    // Anchored at both ends, as Harbor anchors it: `team` alone would exclude `team/app`.
    let world = allowlisted_world("team/.+", Some("regex")).await;
    let sidecar = world.sidecar();
    let mirror = world.mirror("hub-proxy");

    let answer = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (
            answer.status,
            answer.cache.as_str(),
            answer.upstream.as_str()
        ),
        (200, "miss", "api")
    );
    world.assert_merged("hub-proxy", &answer);
    assert_eq!(mirror.referrers_requests(), 1);
}

#[tokio::test]
async fn a_regex_is_anchored_like_harbors() {
    let world = allowlisted_world("team", Some("regex")).await;
    let sidecar = world.sidecar();
    world.assert_core_answer(&ask(&sidecar, &world.subject_path("hub-proxy")).await);
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 0);
}

#[tokio::test]
async fn a_pull_webhook_for_an_excluded_repository_reaches_no_upstream() {
    const SECRET: &str = "Bearer webhook-s3cret";
    let world = allowlisted_world("library/**", None).await;
    let sidecar = world.sidecar_with(|s| s.webhook_auth_header(SECRET));
    let mirror = world.mirror("hub-proxy");
    let pulled = artifact_event(
        Format::Default,
        "PULL_ARTIFACT",
        &format!("hub-proxy/{}", mirror.repository),
        &mirror.sample.subject.digest,
        "latest",
    );
    assert_eq!(
        post(&sidecar, Some(SECRET), Format::Default, &pulled).await,
        202
    );
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Unserved), 1.0).await;
    assert_eq!(mirror.front.seen_with("/v2/").len(), 0, "no upstream call");
}
