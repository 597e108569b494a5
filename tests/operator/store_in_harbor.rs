//! Upstream signatures stored in Harbor: what the Harbor core double does as a proxy cache (a
//! referrer pulled by digest through a proxy-cache project becomes one of core's own local
//! referrers), what the sidecar's `projects.store_in_harbor` makes of it, and what it refuses
//! to have Harbor pull: referrers whose manifest is not what the list said or declares too
//! much, lists cut short; and a slow registry that holds only its own pulls.

use e2e::config::Configure;
use e2e::harbor_webhook;
use e2e::metrics::{self, PullResult, StatusClass, UpstreamKind, WarmResult};
use e2e::redis::RedisServer;
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::upstreams::{MANIFEST_MEDIA_TYPE, Pushed, Pusher, sha256_digest};
use e2e::users::{ALICE, ROBOT};
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask, digests, referrers_path, reply};
use serde_json::{Value, json};

/// `hub-proxy` over a mirror with the referrers API, and `other-proxy` over the same upstream
/// (with Harbor's local referrer too); [`ALICE`] may pull from both.
async fn two_projects() -> World {
    let mirror = Mirror::with_referrers_api().await;
    let url = mirror.url();
    let world = World::builder()
        .mirror("hub-proxy", "upstream", mirror)
        .proxy_cache("other-proxy", "upstream-too", &url)
        .user(ALICE, &["hub-proxy", "other-proxy"])
        .start();
    let subject = world.mirror("hub-proxy").sample.subject.digest.clone();
    world
        .harbor
        .set_local_referrers("other-proxy/team/app", &subject, vec![world.local.clone()]);
    world
}

/// Manifest pulls of `project/team/app` that reached Harbor (the double).
fn manifest_pulls(world: &World, project: &str) -> Vec<e2e::seen::Seen> {
    world
        .harbor
        .requests_to(&format!("/v2/{project}/team/app/manifests/"))
}

fn sorted(mut digests: Vec<String>) -> Vec<String> {
    digests.sort();
    digests
}

/// `GET` on the Harbor double as [`ALICE`], with a token for `hub-proxy/team/app`.
async fn get_from_core(world: &World, path: &str) -> reqwest::Response {
    get_from_core_in(world, "hub-proxy", path).await
}

/// `GET` on the Harbor double as [`ALICE`], with a token for `<project>/team/app`.
async fn get_from_core_in(world: &World, project: &str, path: &str) -> reqwest::Response {
    let token = world
        .harbor
        .token(Some(ALICE), &format!("repository:{project}/team/app:pull"))
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
    core_referrers_of(world, "hub-proxy", subject).await
}

/// Core's own (local) referrers of `subject` in `<project>/team/app`.
async fn core_referrers_of(world: &World, project: &str, subject: &str) -> Vec<String> {
    let path = format!("/v2/{project}/team/app/referrers/{subject}");
    let response = get_from_core_in(world, project, &path).await;
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

#[tokio::test]
async fn with_store_in_harbor_upstream_signatures_become_cores_own_referrers() {
    let mut world = two_projects().await;
    let sidecar = world.sidecar_with(|s| s.projects.store_in_harbor = vec!["hub-proxy".into()]);
    let subject = world.mirror("hub-proxy").sample.subject.digest.clone();
    // The sample's upstream referrers (a cosign signature and an SPDX SBOM, both of the
    // default artifact types) and Harbor's local one.
    let expected = world.merged("hub-proxy");

    // A project that does not store in Harbor first: the facts its request just read say so,
    // so nothing of its list is queued, and none of other-proxy's pulls is coming.
    let other = ask(&sidecar, &referrers_path("other-proxy/team/app", &subject)).await;
    assert_eq!(sorted(other.digests), expected);
    let first = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (first.cache.as_str(), first.upstream.as_str()),
        ("miss", "api")
    );
    assert_eq!(sorted(first.digests.clone()), expected);

    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 2.0).await;
    let pulls = manifest_pulls(&world, "hub-proxy");
    let mut pulled: Vec<String> = pulls
        .iter()
        .map(|seen| seen.path.rsplit('/').next().expect("digest").to_owned())
        .collect();
    pulled.sort();
    let upstream_referrers: Vec<String> = expected
        .iter()
        .filter(|d| **d != world.local["digest"])
        .cloned()
        .collect();
    assert_eq!(
        pulled, upstream_referrers,
        "each upstream referrer, by digest, once"
    );
    let robot = ROBOT.basic_authorization();
    assert!(
        pulls
            .iter()
            .all(|seen| seen.method == "GET" && seen.authorization() == Some(robot.as_str())),
        "with the robot's credentials: {pulls:?}"
    );
    assert!(
        manifest_pulls(&world, "other-proxy").is_empty(),
        "no opt-in, no pull"
    );

    // Core now lists them itself; the merged answer has each digest once.
    assert_eq!(sorted(core_referrers(&world, &subject).await), expected);
    let merged = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(merged.cache, "hit");
    assert_eq!(merged.digests, first.digests, "no duplicate");
    assert_eq!(
        sidecar
            .metric(&metrics::store_pulls(PullResult::Pulled))
            .await,
        2.0
    );

    // The upstream gone, a sidecar with nothing cached still lists them: they are local now.
    world.mirror_mut("hub-proxy").front.stop();
    let fresh = world.sidecar_with(|s| s.projects.store_in_harbor = vec!["hub-proxy".into()]);
    let after = ask(&fresh, &world.subject_path("hub-proxy")).await;
    assert_eq!((after.status, after.upstream.as_str()), (200, "error"));
    assert_eq!(sorted(after.digests), expected);
}

#[tokio::test]
async fn the_store_label_opts_a_project_in_and_replicas_sharing_redis_pull_once() {
    let world = two_projects().await;
    world
        .harbor
        .add_project_label("other-proxy", "referrers-proxy-store");
    let redis = RedisServer::start();
    let replica = || {
        world.sidecar_with(|s| {
            s.projects.store_label = Some("referrers-proxy-store".into());
            s.redis(&redis.url(10));
        })
    };
    let (first, second) = (replica(), replica());
    let subject = world.mirror("hub-proxy").sample.subject.digest.clone();
    let path = referrers_path("other-proxy/team/app", &subject);

    // Each replica fetches and offers the list; one pull per digest in all.
    ask(&first, &path).await;
    wait_for_metric(&first, &metrics::store_pulls(PullResult::Pulled), 2.0).await;
    ask(&second, &path).await;
    wait_for_metric(&second, &metrics::store_pulls(PullResult::Already), 2.0).await;
    assert_eq!(manifest_pulls(&world, "other-proxy").len(), 2);
    assert_eq!(
        second
            .metric(&metrics::store_pulls(PullResult::Pulled))
            .await,
        0.0
    );
    assert!(manifest_pulls(&world, "hub-proxy").is_empty());
    assert_eq!(
        sorted(core_referrers_of(&world, "other-proxy", &subject).await),
        world.merged("hub-proxy")
    );
}

#[tokio::test]
async fn a_configured_project_carrying_the_default_store_label_stores_from_one_label_listing() {
    let world = two_projects().await;
    world
        .harbor
        .add_project_label("other-proxy", "referrers-proxy-store");
    // Both projects are served by the configuration; `projects.store_label` is left at its
    // default.
    let sidecar = world.sidecar();
    let subject = world.mirror("hub-proxy").sample.subject.digest.clone();

    // hub-proxy's request read its facts (asked first): it does not store, so nothing of its
    // list is queued, and once other-proxy's pulls are counted none of hub-proxy's is coming.
    ask(&sidecar, &world.subject_path("hub-proxy")).await;
    ask(&sidecar, &referrers_path("other-proxy/team/app", &subject)).await;
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 2.0).await;
    assert_eq!(manifest_pulls(&world, "other-proxy").len(), 2);
    assert!(manifest_pulls(&world, "hub-proxy").is_empty());
    assert_eq!(
        sorted(core_referrers_of(&world, "other-proxy", &subject).await),
        world.merged("hub-proxy")
    );
    // Each project's labels are listed once (no name filter) for every switch.
    let listings = world.harbor.requests_to("/api/v2.0/labels");
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(
        listings
            .iter()
            .all(|seen| seen.query.contains("scope=p") && !seen.query.contains("name=")),
        "{listings:?}"
    );
}

#[tokio::test]
async fn a_pull_through_the_route_warms_the_cache_by_webhook_and_stores_the_signatures() {
    const SECRET: &str = "Bearer webhook-s3cret";
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let sidecar = world.sidecar_with(|s| {
        s.webhook_auth_header(SECRET);
        s.projects.store_in_harbor = vec!["hub-proxy".into()];
    });
    world
        .harbor
        .send_pull_webhooks(&sidecar.url(harbor_webhook::PATH), SECRET);
    let subject = world.mirror("hub-proxy").sample.subject.digest.clone();
    let expected = world.merged("hub-proxy");

    // A client pulls the image by tag through the sidecar's route (passed through to core).
    let token: Value =
        e2e::http_client()
            .get(sidecar.url(
                "/service/token?service=harbor-registry&scope=repository:hub-proxy/team/app:pull",
            ))
            .basic_auth(ALICE.name, Some(ALICE.password))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
    let pulled = e2e::http_client()
        .get(sidecar.url("/v2/hub-proxy/team/app/manifests/v1"))
        .bearer_auth(token["token"].as_str().expect("token"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("pull");
    assert_eq!(pulled.status(), 200);
    assert_eq!(pulled.headers()["docker-content-digest"], subject.as_str());

    // Harbor's PULL_ARTIFACT warms the cache: the first verification is a hit.
    wait_for_metric(&sidecar, &metrics::webhook_warms(WarmResult::Fetched), 1.0).await;
    let first = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (first.cache.as_str(), first.upstream.as_str()),
        ("hit", "api")
    );
    assert_eq!(sorted(first.digests.clone()), expected);

    // The warmed list had the signatures stored in Harbor; the answer stays without duplicates.
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 2.0).await;
    assert_eq!(sorted(core_referrers(&world, &subject).await), expected);
    let again = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(again.digests, first.digests);
}

/// How a referrer pushed for [`referrers_of_all_kinds`] lies about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Its `subject` is another image, though the list names it under ours.
    OtherSubject,
    /// Its layer declares 1 GiB (the blob itself is small: only the declared size counts).
    Gigabyte,
    /// A signature of our subject, a few bytes.
    Valid,
}

/// Pushes, for `subject` in `team/app` at `base`, 40 referrers whose manifest names another
/// subject, 30 whose layer declares 1 GiB and 30 valid ones, all cosign signatures, and lists
/// them all as the subject's referrers (the fallback tag, which distribution reads for it).
async fn referrers_of_all_kinds(base: &str, subject: &Pushed) -> Vec<(Kind, Pushed)> {
    const COSIGN: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    let pusher = Pusher::new(base);
    let config = pusher.push_blob("team/app", b"{}").await;
    let payload = b"a signature";
    let layer = pusher.push_blob("team/app", payload).await;
    let other_subject = json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": format!("sha256:{}", "f".repeat(64)),
        "size": 300,
    });
    let ours = json!({
        "mediaType": subject.media_type,
        "digest": subject.digest,
        "size": subject.size,
    });
    let kinds = [
        (Kind::OtherSubject, 40),
        (Kind::Gigabyte, 30),
        (Kind::Valid, 30),
    ];
    let mut pushed = Vec::new();
    for (kind, count) in kinds {
        for n in 0..count {
            let (subject, layer_size) = match kind {
                Kind::OtherSubject => (&other_subject, payload.len()),
                Kind::Gigabyte => (&ours, 1 << 30),
                Kind::Valid => (&ours, payload.len()),
            };
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "artifactType": COSIGN,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": layer_size}],
                "subject": subject,
                "annotations": {"org.example.kind": format!("{kind:?} {n}")},
            });
            let bytes = serde_json::to_vec(&manifest).expect("manifest JSON");
            let digest = sha256_digest(&bytes);
            // Distribution checks that the blobs exist, not the sizes declared.
            pusher
                .push_manifest("team/app", &digest, MANIFEST_MEDIA_TYPE, &bytes)
                .await;
            let referrer = Pushed {
                digest,
                size: bytes.len(),
                media_type: MANIFEST_MEDIA_TYPE.into(),
                artifact_type: Some(COSIGN.into()),
                annotations: manifest["annotations"].clone(),
            };
            pushed.push((kind, referrer));
        }
    }
    let listed: Vec<Pushed> = pushed
        .iter()
        .map(|(_, referrer)| referrer.clone())
        .collect();
    pusher
        .push_fallback_index("team/app", subject, &listed)
        .await;
    pushed
}

fn digests_of(pushed: &[(Kind, Pushed)], kind: Kind) -> Vec<String> {
    sorted(
        pushed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, referrer)| referrer.digest.clone())
            .collect(),
    )
}

/// Manifest GETs by digest that reached the upstream behind `project`.
fn upstream_manifest_gets(world: &World, project: &str) -> Vec<e2e::seen::Seen> {
    world.mirror(project).front.seen_with("/manifests/sha256:")
}

#[tokio::test]
async fn referrers_whose_manifest_names_another_subject_or_declares_a_gigabyte_are_never_pulled() {
    let world = World::hub_proxy(Mirror::with_fallback_tag().await);
    let subject = world.mirror("hub-proxy").sample.subject.clone();
    let pushed = referrers_of_all_kinds(&world.mirror("hub-proxy").url(), &subject).await;
    world.mirror("hub-proxy").front.clear();
    let sidecar = world.sidecar_with(|s| {
        s.projects.store_in_harbor = vec!["hub-proxy".into()];
        // Every one of the hundred is checked (the budget has its own test).
        s.store.max_per_subject = 100;
    });

    let answer = ask(&sidecar, &world.subject_path("hub-proxy")).await;
    assert_eq!(
        (answer.upstream.as_str(), answer.digests.len()),
        ("tag", 101),
        "the hundred and Harbor's own: served, whatever they are"
    );
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 30.0).await;
    wait_for_metric(
        &sidecar,
        &metrics::store_pulls(PullResult::WrongSubject),
        40.0,
    )
    .await;
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::TooLarge), 30.0).await;

    // Core was asked for the thirty valid ones, each once, and for none of the seventy.
    let pulled: Vec<String> = manifest_pulls(&world, "hub-proxy")
        .iter()
        .map(|seen| seen.path.rsplit('/').next().expect("digest").to_owned())
        .collect();
    assert_eq!(sorted(pulled), digests_of(&pushed, Kind::Valid));
    for (result, count) in [
        (PullResult::Pulled, 30.0),
        (PullResult::WrongSubject, 40.0),
        (PullResult::TooLarge, 30.0),
        (PullResult::DigestMismatch, 0.0),
        (PullResult::Invalid, 0.0),
        (PullResult::WrongType, 0.0),
        (PullResult::CheckFailed, 0.0),
        (PullResult::SubjectBudget, 0.0),
    ] {
        assert_eq!(
            sidecar.metric(&metrics::store_pulls(result)).await,
            count,
            "{result:?}"
        );
    }
    // Each of the hundred read once to be checked, and the thirty once more by core: a stored
    // referrer costs two upstream manifest GETs, a refused one one.
    let gets = upstream_manifest_gets(&world, "hub-proxy");
    assert_eq!(gets.len(), 130, "{gets:?}");
    assert_eq!(
        sidecar
            .metric(&metrics::upstream_requests(
                "upstream",
                UpstreamKind::Manifest,
                StatusClass::Success
            ))
            .await,
        100.0
    );
    // Refusals are logged once per subject and reason, not once per referrer.
    let refusals = sidecar
        .logs()
        .iter()
        .filter(|line| line.contains("upstream referrer not stored in Harbor"))
        .count();
    assert_eq!(refusals, 2, "one line for wrong_subject, one for too_large");
}

#[tokio::test]
async fn a_list_cut_short_stores_nothing() {
    const TYPE: &str = "application/vnd.example.page+json";
    // Five referrers, one per page; two pages are read.
    let upstream = ScriptedUpstream::start(5);
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let sidecar = world.sidecar_with(|s| {
        s.projects.store_in_harbor = vec!["hub-proxy".into()];
        s.store.artifact_types = vec![TYPE.into()];
        s.upstream.max_pages = 2;
    });
    let path = |digit: char| {
        referrers_path(
            "hub-proxy/team/app",
            &format!("sha256:{}", digit.to_string().repeat(64)),
        )
    };
    let cut_short = reply(&sidecar, &path('a')).await;
    assert_eq!(
        (cut_short.status, cut_short.upstream.as_str()),
        (200, "truncated")
    );
    assert_eq!(
        sidecar
            .metric(&metrics::store_pulls(PullResult::TruncatedList))
            .await,
        2.0,
        "each referrer read from the pages, counted"
    );

    // A whole list from the same registry afterwards: its referrer goes through the same
    // lane, behind anything the cut list had queued.
    let whole = format!("sha256:{:064x}", 0xdef0);
    upstream.serve(vec![json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": whole,
        "size": 100,
        "artifactType": TYPE,
    })]);
    let complete = reply(&sidecar, &path('b')).await;
    assert_eq!(complete.upstream, "api");
    // The scripted registry keeps no manifests: the check finds none, and nothing is pulled.
    wait_for_metric(
        &sidecar,
        &metrics::store_pulls(PullResult::CheckFailed),
        1.0,
    )
    .await;
    let manifests: Vec<String> = upstream
        .targets()
        .into_iter()
        .filter(|target| target.contains("/manifests/"))
        .collect();
    assert_eq!(
        manifests,
        [format!("GET /v2/team/app/manifests/{whole}")],
        "only the whole list's referrer was read"
    );
    assert!(manifest_pulls(&world, "hub-proxy").is_empty());
}

#[tokio::test]
async fn a_slow_registry_holds_its_own_store_pulls_only() {
    let world = World::builder()
        .mirror("slow-proxy", "slow", Mirror::with_referrers_api().await)
        .mirror("fast-proxy", "fast", Mirror::with_referrers_api().await)
        .user(ALICE, &["slow-proxy", "fast-proxy"])
        .start();
    let sidecar = world.sidecar_with(|s| {
        s.projects.store_in_harbor = vec!["*".into()];
        // A held manifest GET outlasts every wait of this test.
        s.upstream.timeout = std::time::Duration::from_secs(300);
    });
    let slow = &world.mirror("slow-proxy").front;
    slow.hold("/manifests/sha256:");

    ask(&sidecar, &world.subject_path("slow-proxy")).await;
    eventually("the slow registry's first check is held", async || {
        upstream_manifest_gets(&world, "slow-proxy").len() == 1
    })
    .await;
    ask(&sidecar, &world.subject_path("fast-proxy")).await;
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 2.0).await;
    assert_eq!(manifest_pulls(&world, "fast-proxy").len(), 2);
    assert!(manifest_pulls(&world, "slow-proxy").is_empty());
    assert_eq!(
        upstream_manifest_gets(&world, "slow-proxy").len(),
        1,
        "the slow registry's check is still the one held"
    );
    assert_eq!(
        sidecar
            .metric(&metrics::store_pulls(PullResult::CheckFailed))
            .await,
        0.0
    );

    slow.release();
    wait_for_metric(&sidecar, &metrics::store_pulls(PullResult::Pulled), 4.0).await;
    assert_eq!(manifest_pulls(&world, "slow-proxy").len(), 2);
}
