//! Upstream signatures stored in Harbor: what the Harbor core double does as a proxy cache (a
//! referrer pulled by digest through a proxy-cache project becomes one of core's own local
//! referrers), and what the sidecar's `projects.store_in_harbor` makes of it.

use e2e::users::ALICE;
use e2e::world::{Mirror, World, digests};
use serde_json::Value;

/// `GET` on the Harbor double as [`ALICE`], with a token from its token service.
async fn get_from_core(world: &World, path: &str) -> reqwest::Response {
    let token = world
        .harbor
        .token(Some(ALICE), "repository:hub-proxy/team/app:pull")
        .await;
    e2e::http_client()
        .get(format!("{}{path}", world.harbor.url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("request to core")
}

/// Core's own (local) referrers of `subject` in `hub-proxy/team/app`.
async fn core_referrers(world: &World, subject: &str) -> Vec<String> {
    let response = get_from_core(
        world,
        &format!("/v2/hub-proxy/team/app/referrers/{subject}"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let index: Value = response.json().await.expect("index");
    digests(&index)
}

#[tokio::test]
async fn the_core_double_pulls_through_caches_and_records_a_referrer_as_harbor_does() {
    let mut world = World::builder()
        .mirror("hub-proxy", "upstream", Mirror::with_referrers_api().await)
        .user(ALICE, &["hub-proxy"])
        .start();
    let sample = world.mirror("hub-proxy").sample.clone();
    let subject = sample.subject.digest.clone();
    let signature = sample.referrers[0].clone();
    let local = world.local["digest"].as_str().expect("digest").to_owned();
    assert_eq!(core_referrers(&world, &subject).await, vec![local.clone()]);

    // By tag: the subject's exact bytes, its digest preserved.
    let by_tag = get_from_core(&world, "/v2/hub-proxy/team/app/manifests/v1").await;
    assert_eq!(by_tag.status(), 200);
    assert_eq!(by_tag.headers()["docker-content-digest"], subject.as_str());
    let bytes = by_tag.bytes().await.expect("manifest");
    assert_eq!(e2e::upstreams::sha256_digest(&bytes), subject);

    // By digest: the signature, which has a subject, becomes a local referrer.
    let path = format!("/v2/hub-proxy/team/app/manifests/{}", signature.digest);
    let by_digest = get_from_core(&world, &path).await;
    assert_eq!(by_digest.status(), 200);
    assert_eq!(
        by_digest.headers()["content-type"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value = by_digest.json().await.expect("manifest json");
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    let mut listed = core_referrers(&world, &subject).await;
    listed.sort();
    let mut expected = vec![local, signature.digest.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let response = get_from_core(
        &world,
        &format!("/v2/hub-proxy/team/app/referrers/{subject}"),
    )
    .await;
    let index: Value = response.json().await.expect("index");
    let stored = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["digest"] == signature.digest.as_str())
        .expect("the signature is listed");
    assert_eq!(
        stored,
        &signature.descriptor(),
        "as the upstream describes it"
    );

    // A blob, by digest.
    let blob = get_from_core(&world, &format!("/v2/hub-proxy/team/app/blobs/{layer}")).await;
    assert_eq!(blob.status(), 200);
    assert_eq!(
        e2e::upstreams::sha256_digest(&blob.bytes().await.expect("blob")),
        layer
    );

    // The upstream gone, what was cached is still served, and still listed.
    world.mirror_mut("hub-proxy").front.stop();
    let cached = get_from_core(&world, &path).await;
    assert_eq!(cached.status(), 200);
    assert_eq!(core_referrers(&world, &subject).await.len(), 2);
    let never_pulled = get_from_core(
        &world,
        &format!(
            "/v2/hub-proxy/team/app/manifests/{}",
            sample.referrers[1].digest
        ),
    )
    .await;
    assert_eq!(never_pulled.status(), 404);
}
