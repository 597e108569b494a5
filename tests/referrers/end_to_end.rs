//! The product, end to end: a client asks the sidecar for the referrers of a mirrored image and
//! gets the upstream's (real registries: ferro-oci-server with the referrers API, distribution
//! with only the fallback tag) merged with Harbor's local ones, exactly as the OCI spec says,
//! and only when Harbor core authorizes the caller.

use std::collections::BTreeSet;

use e2e::Sidecar;
use e2e::config::{Configure, Secret, registry};
use e2e::harbor_double::{DoubleConfig, DoubleProject};
use e2e::metrics::{self, Outcome};
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::upstreams::{DockerRegistry, FerroOci, Pusher};
use e2e::users::{ALICE, BOB, User};
use e2e::world::{Mirror, World, digests, referrers_path};
use serde_json::{Value, json};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";

/// Harbor (the double) over two real upstreams behind counting fronts (`api-proxy` over one
/// with the referrers API, `tag-proxy` over one with only the fallback tag, both enabled;
/// `off-proxy` over the first, not enabled; `local`, no proxy cache), and a sidecar for it.
async fn start() -> (World, Sidecar) {
    let world = world_with(|_| {}).await;
    let sidecar = world.sidecar();
    (world, sidecar)
}

/// The world of [`start`], Harbor changed by `adjust`, and no sidecar yet.
async fn world_with(adjust: impl FnOnce(&mut DoubleConfig)) -> World {
    let world = World::builder()
        .mirror(
            "api-proxy",
            "api-upstream",
            Mirror::with_referrers_api().await,
        )
        .mirror(
            "tag-proxy",
            "tag-upstream",
            Mirror::with_fallback_tag().await,
        )
        .project(DoubleProject::proxy(3, "off-proxy", 1))
        .project(DoubleProject::local(4, "local"))
        .user(ALICE, &["api-proxy", "tag-proxy", "off-proxy", "local"])
        .user(BOB, &["local"])
        .harbor(adjust)
        .start();
    // Harbor has the upstream's signature too (pulled through the proxy once), reported the
    // way Harbor 2.8–2.10 do (wrong size and artifactType), plus a signature of its own.
    let api = world.mirror("api-proxy");
    let upstream_signature = &api.sample.referrers[0];
    let mut stale_copy = upstream_signature.descriptor();
    stale_copy["size"] = json!(upstream_signature.size + 999);
    stale_copy["artifactType"] = json!("application/vnd.oci.image.config.v1+json");
    world.harbor.set_local_referrers(
        "api-proxy/team/app",
        &api.sample.subject.digest,
        vec![stale_copy, world.local.clone()],
    );
    world
}

/// The target of a `Link: <target>; rel="next"` header.
fn link_target(link: &str) -> String {
    link.trim_start_matches('<')
        .split('>')
        .next()
        .expect("link target")
        .to_owned()
}

fn sorted(mut digests: Vec<String>) -> Vec<String> {
    digests.sort();
    digests
}

#[tokio::test]
async fn api_upstream_and_local_referrers_are_merged_and_upstream_wins() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    let response = sidecar
        .get_as(&referrers_path("api-proxy/team/app", subject), ALICE)
        .await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], INDEX);
    assert_eq!(headers["x-referrers-upstream"], "api");
    assert_eq!(headers["x-total-count"], "3");
    assert!(headers.get("oci-filters-applied").is_none());
    let index: Value = response.json().await.expect("json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], INDEX);

    let signature = &world.mirror("api-proxy").sample.referrers[0];
    let sbom = &world.mirror("api-proxy").sample.referrers[1];
    let local_digest = world.local["digest"].as_str().expect("digest");
    let expected = sorted(vec![
        signature.digest.clone(),
        sbom.digest.clone(),
        local_digest.to_owned(),
    ]);
    assert_eq!(
        digests(&index),
        expected,
        "merged, deduplicated, sorted by digest"
    );
    let by_digest = |d: &str| {
        index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|m| m["digest"] == d)
            .cloned()
            .expect("descriptor")
    };
    // The upstream's descriptor replaces Harbor's stale copy of the same referrer.
    assert_eq!(by_digest(&signature.digest), signature.descriptor());
    assert_eq!(by_digest(&sbom.digest)["annotations"], sbom.annotations);
    assert_eq!(by_digest(local_digest), world.local);
    // The upstream was asked without a filter, through its referrers API.
    let asked = world.mirror("api-proxy").front.seen_with("/referrers/");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(!asked[0].target().contains("artifactType"));
}

/// The access log: one JSON line per request, with its status and duration, and the request's
/// span (method, path without the query, the caller's request id).
#[tokio::test]
async fn a_served_request_writes_one_access_line_with_its_span() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    let path = referrers_path("api-proxy/team/app", subject);
    let response = e2e::http_client()
        .get(sidecar.url(&format!("{path}?artifactType={SBOM}")))
        .basic_auth(ALICE.name, Some(ALICE.password))
        .header("X-Request-Id", "access-line-1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let access_lines = || -> Vec<Value> {
        sidecar
            .logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| {
                line["target"] == "referrers_sidecar::access"
                    && line["span"]["request_id"] == "access-line-1"
            })
            .collect()
    };
    e2e::wait::eventually("the access line", async || !access_lines().is_empty()).await;
    let lines = access_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "request");
    assert_eq!(line["status"], 200);
    assert!(line["duration_us"].is_u64(), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["http.method"], "GET");
    assert_eq!(
        line["span"]["http.target"], path,
        "the path, never the query"
    );
    assert!(line["span"]["http.client_ip"].is_string(), "{line}");
}

#[tokio::test]
async fn fallback_tag_upstream_and_local_referrers_are_merged() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("tag-proxy").sample.subject.digest;
    let response = sidecar
        .get_as(&referrers_path("tag-proxy/team/app", subject), ALICE)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-referrers-upstream"], "tag");
    let index: Value = response.json().await.expect("json");
    assert_eq!(digests(&index), world.merged("tag-proxy"));
    let tag = subject.replacen(':', "-", 1);
    assert!(
        !world
            .mirror("tag-proxy")
            .front
            .seen_with(&format!("/manifests/{tag}"))
            .is_empty(),
        "the fallback tag was read: {:?}",
        world.mirror("tag-proxy").front.seen()
    );
}

#[tokio::test]
async fn artifact_type_filter_applies_to_the_merged_list() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    let base = referrers_path("api-proxy/team/app", subject);
    // `+` sent raw must stay a `+`; sent as %2B it is the same type.
    for query in [
        format!("artifactType={SIGNATURE}"),
        "artifactType=application/vnd.dev.cosign.artifact.sig.v1%2Bjson".to_owned(),
    ] {
        let response = sidecar.get_as(&format!("{base}?{query}"), ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["oci-filters-applied"], "artifactType");
        assert_eq!(response.headers()["x-total-count"], "1");
        let index: Value = response.json().await.expect("json");
        assert_eq!(
            digests(&index),
            vec![world.mirror("api-proxy").sample.referrers[0].digest.clone()]
        );
    }
    // Several types: any of them, local ones included.
    let query = format!(
        "artifactType={}&artifactType=application/vnd.cncf.notary.signature",
        SBOM.replace('+', "%2B")
    );
    let index: Value = sidecar
        .get_as(&format!("{base}?{query}"), ALICE)
        .await
        .json()
        .await
        .expect("json");
    let types: BTreeSet<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["artifactType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([SBOM, "application/vnd.cncf.notary.signature"])
    );
    // Core was never asked with the filter: the sidecar filters the merged list itself.
    assert!(
        world
            .harbor
            .requests_to("/v2/")
            .iter()
            .all(|r| !r.query.contains("artifactType")),
    );
}

#[tokio::test]
async fn paging_with_n_walks_every_descriptor_exactly_once() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    let mut path = format!("{}?n=1", referrers_path("api-proxy/team/app", subject));
    let mut seen = Vec::new();
    for _ in 0..10 {
        let response = sidecar.get_as(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-total-count"], "3");
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().expect("link").to_owned());
        let index: Value = response.json().await.expect("json");
        let page = digests(&index);
        assert_eq!(page.len(), 1);
        seen.extend(page);
        match link {
            Some(link) => {
                assert!(link.ends_with("; rel=\"next\""), "{link}");
                path = link_target(&link);
                assert!(
                    path.starts_with("/v2/api-proxy/team/app/referrers/"),
                    "{path}"
                );
                assert!(path.contains("n=1"), "{path}");
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen, sorted(seen.clone()), "pages follow digest order");
}

#[tokio::test]
async fn a_page_asked_with_n_is_also_cut_at_response_max_bytes_with_a_link_to_the_rest() {
    const MAX_BYTES: usize = 1024;
    let upstream = ScriptedUpstream::start(2);
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let subject = format!("sha256:{}", "5".repeat(64));
    // Five local referrers of about 500 bytes each: together far over response.max_bytes.
    let local: Vec<Value> = (0..5)
        .map(|i| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{:064x}", 0x100 + i),
                "size": 1,
                "annotations": {"note": "x".repeat(400)},
            })
        })
        .collect();
    world
        .harbor
        .set_local_referrers("hub-proxy/team/app", &subject, local);
    let sidecar = world.sidecar_with(|s| s.response.max_bytes = MAX_BYTES);

    let mut path = format!("{}?n=100", referrers_path("hub-proxy/team/app", &subject));
    let mut seen = Vec::new();
    let mut pages = 0;
    for _ in 0..10 {
        let response = sidecar.get_as(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        let link = response
            .headers()
            .get("link")
            .map(|l| l.to_str().expect("link").to_owned());
        let body = response.bytes().await.expect("body");
        let page = digests(&serde_json::from_slice(&body).expect("json"));
        assert!(
            page.len() == 1 || body.len() <= MAX_BYTES,
            "{} descriptors in {} bytes",
            page.len(),
            body.len()
        );
        pages += 1;
        seen.extend(page);
        match link {
            Some(link) => {
                path = link_target(&link);
                assert!(path.contains("n=100"), "{path}");
            }
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        7,
        "five local and two upstream referrers: {seen:?}"
    );
    assert_eq!(seen, sorted(seen.clone()));
    assert!(pages > 1, "n=100 alone would have given one page");
}

#[tokio::test]
async fn head_gets_the_same_status_and_headers_without_a_body() {
    let (world, sidecar) = start().await;
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    let get = sidecar.get_as(&path, ALICE).await;
    let get_length = get.headers()["content-length"].clone();
    let head = e2e::http_client()
        .head(sidecar.url(&path))
        .basic_auth(ALICE.name, Some(ALICE.password))
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.status(),
        200,
        "core 404s HEAD; the sidecar asks core with GET"
    );
    assert_eq!(head.headers()["content-type"], INDEX);
    assert_eq!(head.headers()["x-total-count"], "3");
    assert_eq!(head.headers()["content-length"], get_length);
    assert!(head.bytes().await.expect("body").is_empty());
    assert!(
        world
            .harbor
            .requests_to("/v2/")
            .iter()
            .all(|r| r.method == "GET")
    );
}

#[tokio::test]
async fn anonymous_clients_get_the_challenge_and_after_the_token_dance_the_list() {
    let (world, sidecar) = start().await;
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    let challenge = e2e::http_client()
        .get(sidecar.url(&path))
        .header("Host", "harbor.example.com")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("request");
    assert_eq!(challenge.status(), 401);
    let www = challenge.headers()["www-authenticate"]
        .to_str()
        .expect("header");
    assert!(
        www.starts_with("Bearer realm=\"https://harbor.example.com/service/token\""),
        "the realm is built from the client's Host: {www}"
    );
    assert_eq!(
        challenge.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert!(
        world.mirror("api-proxy").front.seen().is_empty(),
        "no upstream call before authorization"
    );

    // The real client: oci-client does the token dance through the sidecar and reads the list.
    let reference: oci_client::Reference = format!(
        "127.0.0.1:{}/api-proxy/team/app@{}",
        sidecar.port,
        world.mirror("api-proxy").sample.subject.digest
    )
    .parse()
    .expect("reference");
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    client
        .auth(
            &reference,
            &oci_client::secrets::RegistryAuth::Basic(ALICE.name.into(), ALICE.password.into()),
            oci_client::RegistryOperation::Pull,
        )
        .await
        .expect("token dance");
    let index = client
        .pull_referrers(&reference, None)
        .await
        .expect("referrers");
    assert_eq!(index.manifests.len(), 3);
    let filtered = client
        .pull_referrers(&reference, Some(SBOM))
        .await
        .expect("filtered referrers");
    assert_eq!(filtered.manifests.len(), 1);
    assert_eq!(
        filtered.manifests[0].digest,
        world.mirror("api-proxy").sample.referrers[1].digest
    );
}

#[tokio::test]
async fn a_caller_without_access_gets_cores_401_and_no_upstream_request_is_made() {
    let (world, sidecar) = start().await;
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    // Bob's token is for another project; Basic credentials for him are refused too.
    let token = world
        .harbor
        .token(Some(BOB), "repository:local/thing:pull")
        .await;
    for authorization in [format!("Bearer {token}"), BOB.basic_authorization()] {
        let response = e2e::http_client()
            .get(sidecar.url(&path))
            .header("Authorization", authorization)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "Basic realm=\"harbor\""
        );
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    }
    assert!(
        world.mirror("api-proxy").front.seen().is_empty(),
        "{:?}",
        world.mirror("api-proxy").front.seen()
    );
    assert!(
        world.harbor.requests_to("/api/v2.0/projects").is_empty(),
        "no project lookup for a caller core did not authorize"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(&format!("{} 2", metrics::requests(Outcome::Denied))),
        "{metrics}"
    );
}

#[tokio::test]
async fn disabled_and_non_proxy_projects_get_cores_answer_byte_for_byte() {
    let (world, sidecar) = start().await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    world
        .harbor
        .set_local_referrers("off-proxy/team/app", subject, vec![world.local.clone()]);
    world
        .harbor
        .set_local_referrers("local/team/app", subject, vec![world.local.clone()]);
    for repository in ["off-proxy/team/app", "local/team/app"] {
        let path = referrers_path(repository, subject);
        for query in [
            "",
            "?artifactType=application/vnd.cncf.notary.signature&n=5",
        ] {
            let through_sidecar = sidecar.get_as(&format!("{path}{query}"), ALICE).await;
            let direct = e2e::http_client()
                .get(format!("{}{path}{query}", world.harbor.url()))
                .basic_auth(ALICE.name, Some(ALICE.password))
                .send()
                .await
                .expect("direct");
            assert_eq!(through_sidecar.status(), direct.status());
            for header in ["content-type", "x-total-count", "oci-filters-applied"] {
                assert_eq!(
                    through_sidecar.headers().get(header),
                    direct.headers().get(header),
                    "{repository}{query}: {header}"
                );
            }
            assert!(
                through_sidecar
                    .headers()
                    .get("x-referrers-upstream")
                    .is_none()
            );
            assert_eq!(
                through_sidecar.bytes().await.expect("body"),
                direct.bytes().await.expect("body"),
                "{repository}{query}"
            );
        }
    }
    assert!(
        world.mirror("api-proxy").front.seen().is_empty(),
        "{:?}",
        world.mirror("api-proxy").front.seen()
    );
}

#[tokio::test]
async fn upstream_stopped_mid_test_still_gives_local_referrers() {
    let (mut world, sidecar) = start().await;
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    // The upstream answers (for another subject), then stops; the subject is not cached yet.
    let other = referrers_path("api-proxy/team/app", &format!("sha256:{}", "9".repeat(64)));
    let before = sidecar.get_as(&other, ALICE).await;
    assert_eq!(before.headers()["x-referrers-upstream"], "api");
    world.mirror_mut("api-proxy").front.stop();
    let response = sidecar.get_as(&path, ALICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-referrers-upstream"], "error");
    assert_eq!(response.headers()["x-referrers-cache"], "miss");
    let index: Value = response.json().await.expect("json");
    let local_digest = world.local["digest"].as_str().expect("digest");
    let mut expected = vec![
        world.mirror("api-proxy").sample.referrers[0].digest.clone(),
        local_digest.to_owned(),
    ];
    expected.sort();
    assert_eq!(
        digests(&index),
        expected,
        "local referrers alone (Harbor's two)"
    );
}

#[tokio::test]
async fn the_zero_digest_probe_gets_an_empty_list() {
    let (world, sidecar) = start().await;
    let path = referrers_path("api-proxy/team/app", &format!("sha256:{}", "0".repeat(64)));
    let response = sidecar.get_as(&path, ALICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], INDEX);
    let index: Value = response.json().await.expect("json");
    assert_eq!(index["manifests"], json!([]));
    assert!(
        world
            .mirror("api-proxy")
            .front
            .seen_with("/referrers/")
            .is_empty()
    );
}

#[tokio::test]
async fn harbor_2_8_answers_are_accepted_and_corrected_by_the_upstream() {
    let world = world_with(|config| {
        config.legacy_2_8 = true;
        config.version = "v2.8.4-1a2b3c".into();
    })
    .await;
    let sidecar = world.sidecar();
    let response = sidecar
        .get_as(
            &referrers_path(
                "api-proxy/team/app",
                &world.mirror("api-proxy").sample.subject.digest,
            ),
            ALICE,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], INDEX);
    let index: Value = response.json().await.expect("json");
    let signature = &world.mirror("api-proxy").sample.referrers[0];
    let found = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["digest"] == signature.digest.as_str())
        .cloned()
        .expect("signature");
    assert_eq!(found["size"], signature.size);
    assert_eq!(found["artifactType"], SIGNATURE);
}

#[tokio::test]
async fn docker_hub_single_segment_names_map_to_library_on_both_sides() {
    // A local registry stands in for Docker Hub: nothing may leave the machine.
    let hub = FerroOci::start();
    let pusher = Pusher::new(&hub.url());
    let world = World::builder()
        .mirror(
            "hub-proxy",
            "hub",
            Mirror::start(hub, pusher, "library/nginx", false).await,
        )
        .user(ALICE, &["hub-proxy"])
        .harbor(|config| config.registries[0].registry_type = "docker-hub".into())
        .enable(&["*"])
        .start();
    let sidecar = world.sidecar();
    let (front, sample) = (
        &world.mirror("hub-proxy").front,
        &world.mirror("hub-proxy").sample,
    );
    let path = format!("/v2/hub-proxy/nginx/referrers/{}", sample.subject.digest);
    let response = sidecar.get_as(&path, ALICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-referrers-upstream"], "api");
    let index: Value = response.json().await.expect("json");
    assert_eq!(
        digests(&index).len(),
        3,
        "two upstream + one local under library/"
    );

    let upstream_paths: Vec<String> = front
        .seen_with("/referrers/")
        .into_iter()
        .map(|s| s.target())
        .collect();
    assert_eq!(
        upstream_paths,
        vec![format!(
            "/v2/library/nginx/referrers/{}",
            sample.subject.digest
        )]
    );
    let core_paths: BTreeSet<String> = world
        .harbor
        .requests_to("/v2/")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        core_paths,
        BTreeSet::from([
            format!("/v2/hub-proxy/nginx/referrers/{}", sample.subject.digest),
            format!(
                "/v2/hub-proxy/library/nginx/referrers/{}",
                sample.subject.digest
            ),
        ])
    );
}

#[tokio::test]
async fn upstream_credentials_go_only_to_the_host_they_are_bound_to() {
    const MIRROR: User = User {
        name: "mirror",
        password: "mirror-secret",
    };
    let upstream = DockerRegistry::start_with_htpasswd(MIRROR.name, MIRROR.password);
    let pusher = Pusher::new(&upstream.url()).with_authorization(&MIRROR.basic_authorization());
    let world = World::builder()
        .mirror(
            "private-proxy",
            "private",
            Mirror::start(upstream, pusher, "team/app", true).await,
        )
        .user(ALICE, &["private-proxy"])
        .start();
    let front = &world.mirror("private-proxy").front;
    let sample = &world.mirror("private-proxy").sample;
    let path = format!(
        "/v2/private-proxy/team/app/referrers/{}",
        sample.subject.digest
    );
    for (bound_host, expect_upstream, expect_sent) in [
        (format!("127.0.0.1:{}", front.port), "tag", true),
        ("registry.example.com".to_owned(), "error", false),
    ] {
        front.clear();
        let sidecar = world.sidecar_with(|s| {
            let mut private = registry("private", &bound_host);
            private.username = Some(MIRROR.name.into());
            private.password = Some(Secret::new(MIRROR.password));
            s.registries.insert("private".into(), private);
        });
        let response = sidecar.get_as(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-referrers-upstream"],
            expect_upstream,
            "{bound_host}"
        );
        let sent = front
            .seen()
            .iter()
            .any(|s| s.authorization().is_some_and(|a| a.starts_with("Basic ")));
        assert_eq!(
            sent,
            expect_sent,
            "credentials bound to {bound_host}: {:?}",
            front.seen()
        );
        let logs = sidecar.logs().join("\n");
        assert!(!logs.contains("mirror-secret"), "a secret reached the logs");
    }
}

#[tokio::test]
async fn a_project_harbor_merges_itself_gets_cores_answer_unchanged() {
    let world = world_with(|config| {
        let mut project = DoubleProject::proxy(5, "api-proxy-216", 1);
        project
            .metadata
            .insert("proxy_referrer_api".into(), "true".into());
        config.projects.push(project);
        let alice = config
            .accounts
            .iter_mut()
            .find(|a| a.name == ALICE.name)
            .expect("alice");
        alice.projects.push("api-proxy-216".into());
    })
    .await;
    let subject = &world.mirror("api-proxy").sample.subject.digest;
    world
        .harbor
        .set_local_referrers("api-proxy-216/team/app", subject, vec![world.local.clone()]);
    // Enabled by the wildcard, but Harbor (>= 2.16) does its own merge for this project.
    let sidecar = world.sidecar_with(|s| s.enable(&["*"]));
    let path = referrers_path("api-proxy-216/team/app", subject);
    for _ in 0..2 {
        let response = sidecar.get_as(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-referrers-upstream").is_none());
        let index: Value = response.json().await.expect("json");
        assert_eq!(index["manifests"], json!([world.local.clone()]));
    }
    assert!(world.mirror("api-proxy").front.seen().is_empty());
    let logged = sidecar
        .logs()
        .iter()
        .filter(|l| l.contains("Harbor merges upstream referrers itself"))
        .count();
    assert_eq!(logged, 1, "logged once per project");
}

#[tokio::test]
async fn a_slow_core_gives_504_and_no_upstream_call() {
    let world = world_with(|_| {}).await;
    world.harbor.hold_referrers();
    let sidecar = world.sidecar_with(|s| {
        s.enable(&["api-proxy"]);
        s.harbor.timeout = std::time::Duration::from_secs(1);
    });
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    let response = sidecar.get_as(&path, ALICE).await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        world.mirror("api-proxy").front.seen().is_empty(),
        "never an upstream call without core's 200"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(&format!("{} 1", metrics::requests(Outcome::CoreError))),
        "{metrics}"
    );

    // Core gone altogether: 502.
    let url = world.harbor.url();
    drop(world);
    let response = sidecar.get_as(&path, ALICE).await;
    assert_eq!(response.status(), 502, "core at {url} is down");
}

#[tokio::test]
async fn a_registry_type_the_sidecar_does_not_know_gets_local_referrers_and_no_upstream_call() {
    let world = world_with(|config| {
        config.registries[0].registry_type = "new-cloud".into();
    })
    .await;
    let sidecar = world.sidecar();
    let path = referrers_path(
        "api-proxy/team/app",
        &world.mirror("api-proxy").sample.subject.digest,
    );
    for _ in 0..2 {
        let response = sidecar.get_as(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-referrers-upstream"], "skipped");
        let index: Value = response.json().await.expect("json");
        let local_digest = world.local["digest"].as_str().expect("digest");
        assert_eq!(
            sorted(digests(&index)),
            sorted(vec![
                world.mirror("api-proxy").sample.referrers[0].digest.clone(),
                local_digest.to_owned(),
            ]),
            "Harbor's two local referrers"
        );
    }
    assert!(
        world.mirror("api-proxy").front.seen().is_empty(),
        "{:?}",
        world.mirror("api-proxy").front.seen()
    );
}
