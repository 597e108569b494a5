//! The product, end to end: a client asks the sidecar for the referrers of a mirrored image and
//! gets the upstream's (real registries: ferro-oci-server with the referrers API, distribution
//! with only the fallback tag) merged with Harbor's local ones, exactly as the OCI spec says,
//! and only when Harbor core authorizes the caller.

use std::collections::BTreeSet;

use e2e::Sidecar;
use e2e::counting_proxy::CountingProxy;
use e2e::harbor_double::{
    DoubleAccount, DoubleConfig, DoubleProject, DoubleRegistry, HarborDouble,
};
use e2e::upstreams::{DockerRegistry, FerroOci, Pusher, Sample, Upstream};
use serde_json::{Value, json};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SIGNATURE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";
const ROBOT: (&str, &str) = ("robot$referrers-sidecar", "robot-secret");
const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");

/// Harbor (the double), two real upstreams behind counting fronts, and the sidecar.
struct World {
    harbor: HarborDouble,
    sidecar: Sidecar,
    api_front: CountingProxy,
    tag_front: CountingProxy,
    /// Content on the upstream with the referrers API (`team/app`).
    api_sample: Sample,
    /// Content on the upstream without it (`team/app`, fallback tag pushed).
    tag_sample: Sample,
    /// A referrer only Harbor has (a signature made locally).
    local_only: Value,
    _api_upstream: Upstream,
    _tag_upstream: Upstream,
}

fn account(credentials: (&str, &str), projects: &[&str], system_reader: bool) -> DoubleAccount {
    DoubleAccount {
        name: credentials.0.into(),
        password: credentials.1.into(),
        projects: projects.iter().map(|p| (*p).to_owned()).collect(),
        system_reader,
    }
}

fn registry(id: i64, name: &str, url: &str, registry_type: &str) -> DoubleRegistry {
    DoubleRegistry {
        id,
        name: name.into(),
        url: url.into(),
        registry_type: registry_type.into(),
        insecure: true,
    }
}

impl World {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut DoubleConfig)) -> Self {
        let api_upstream = FerroOci::start();
        let tag_upstream = DockerRegistry::start();
        let api_sample = Pusher::new(&api_upstream.url())
            .push_sample("team/app", false)
            .await;
        let tag_sample = Pusher::new(&tag_upstream.url())
            .push_sample("team/app", true)
            .await;
        let api_front = CountingProxy::start(&api_upstream.url());
        let tag_front = CountingProxy::start(&tag_upstream.url());

        let mut config = DoubleConfig {
            projects: vec![
                DoubleProject::proxy(1, "api-proxy", 1),
                DoubleProject::proxy(2, "tag-proxy", 2),
                DoubleProject::proxy(3, "off-proxy", 1),
                DoubleProject::local(4, "local"),
            ],
            registries: vec![
                registry(1, "api-upstream", &api_front.url(), "docker-registry"),
                registry(2, "tag-upstream", &tag_front.url(), "docker-registry"),
            ],
            accounts: vec![
                account(ROBOT, &[], true),
                account(
                    ALICE,
                    &["api-proxy", "tag-proxy", "off-proxy", "local"],
                    false,
                ),
                account(BOB, &["local"], false),
            ],
            ..DoubleConfig::default()
        };
        adjust(&mut config);
        let harbor = HarborDouble::start(config);

        // Harbor has the upstream's signature too (pulled through the proxy once), reported the
        // way Harbor 2.8–2.10 do (wrong size and artifactType), plus a signature of its own.
        let upstream_signature = &api_sample.referrers[0];
        let mut stale_copy = upstream_signature.descriptor();
        stale_copy["size"] = json!(upstream_signature.size + 999);
        stale_copy["artifactType"] = json!("application/vnd.oci.image.config.v1+json");
        let local_only = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "1".repeat(64)),
            "size": 321,
            "artifactType": "application/vnd.cncf.notary.signature",
            "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[\"abc\"]"},
        });
        harbor.set_local_referrers(
            "api-proxy/team/app",
            &api_sample.subject.digest,
            vec![stale_copy, local_only.clone()],
        );
        harbor.set_local_referrers(
            "tag-proxy/team/app",
            &tag_sample.subject.digest,
            vec![local_only.clone()],
        );

        let sidecar = sidecar_for(&harbor, "[api-proxy, tag-proxy]", "");
        Self {
            harbor,
            sidecar,
            api_front,
            tag_front,
            api_sample,
            tag_sample,
            local_only,
            _api_upstream: api_upstream,
            _tag_upstream: tag_upstream,
        }
    }

    fn referrers_path(&self, repository: &str, subject: &str) -> String {
        format!("/v2/{repository}/referrers/{subject}")
    }

    /// `GET` with basic credentials, as docker and oras send them to Harbor.
    async fn get(&self, path: &str, who: (&str, &str)) -> reqwest::Response {
        get_as(&self.sidecar, path, who).await
    }
}

/// The sidecar's configuration in front of `harbor`: its robot account, the projects
/// `enabled` (a YAML list), upstreams on loopback allowed, and `extra` YAML.
fn sidecar_config(harbor: &HarborDouble, enabled: &str, extra: &str) -> String {
    format!(
        "harbor:\n  url: {}\n  username: {}\n  password: {}\nprojects:\n  enabled: {enabled}\nupstream:\n  allow_private_realms: true\n{extra}",
        harbor.url(),
        ROBOT.0,
        ROBOT.1,
    )
}

fn sidecar_for(harbor: &HarborDouble, enabled: &str, extra: &str) -> Sidecar {
    Sidecar::start(&sidecar_config(harbor, enabled, extra))
}

/// `GET path` on `sidecar` with `who`'s basic credentials.
async fn get_as(sidecar: &Sidecar, path: &str, who: (&str, &str)) -> reqwest::Response {
    e2e::http_client()
        .get(sidecar.url(path))
        .basic_auth(who.0, Some(who.1))
        .send()
        .await
        .expect("request")
}

fn digests(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .expect("manifests array")
        .iter()
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect()
}

fn sorted(mut digests: Vec<String>) -> Vec<String> {
    digests.sort();
    digests
}

#[tokio::test]
async fn api_upstream_and_local_referrers_are_merged_and_upstream_wins() {
    let world = World::start().await;
    let subject = &world.api_sample.subject.digest;
    let response = world
        .get(&world.referrers_path("api-proxy/team/app", subject), ALICE)
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

    let signature = &world.api_sample.referrers[0];
    let sbom = &world.api_sample.referrers[1];
    let local_digest = world.local_only["digest"].as_str().expect("digest");
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
    assert_eq!(by_digest(local_digest), world.local_only);
    // The upstream was asked without a filter, through its referrers API.
    let asked = world.api_front.seen_with("/referrers/");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(!asked[0].target.contains("artifactType"));
}

#[tokio::test]
async fn fallback_tag_upstream_and_local_referrers_are_merged() {
    let world = World::start().await;
    let subject = &world.tag_sample.subject.digest;
    let response = world
        .get(&world.referrers_path("tag-proxy/team/app", subject), ALICE)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-referrers-upstream"], "tag");
    let index: Value = response.json().await.expect("json");
    let mut expected: Vec<String> = world
        .tag_sample
        .referrers
        .iter()
        .map(|r| r.digest.clone())
        .collect();
    expected.push(world.local_only["digest"].as_str().expect("digest").into());
    assert_eq!(digests(&index), sorted(expected));
    let tag = subject.replacen(':', "-", 1);
    assert!(
        !world
            .tag_front
            .seen_with(&format!("/manifests/{tag}"))
            .is_empty(),
        "the fallback tag was read: {:?}",
        world.tag_front.seen()
    );
}

#[tokio::test]
async fn artifact_type_filter_applies_to_the_merged_list() {
    let world = World::start().await;
    let subject = &world.api_sample.subject.digest;
    let base = world.referrers_path("api-proxy/team/app", subject);
    // `+` sent raw must stay a `+`; sent as %2B it is the same type.
    for query in [
        format!("artifactType={SIGNATURE}"),
        "artifactType=application/vnd.dev.cosign.artifact.sig.v1%2Bjson".to_owned(),
    ] {
        let response = world.get(&format!("{base}?{query}"), ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["oci-filters-applied"], "artifactType");
        assert_eq!(response.headers()["x-total-count"], "1");
        let index: Value = response.json().await.expect("json");
        assert_eq!(
            digests(&index),
            vec![world.api_sample.referrers[0].digest.clone()]
        );
    }
    // Several types: any of them, local ones included.
    let query = format!(
        "artifactType={}&artifactType=application/vnd.cncf.notary.signature",
        SBOM.replace('+', "%2B")
    );
    let index: Value = world
        .get(&format!("{base}?{query}"), ALICE)
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
    let world = World::start().await;
    let subject = &world.api_sample.subject.digest;
    let mut path = format!(
        "{}?n=1",
        world.referrers_path("api-proxy/team/app", subject)
    );
    let mut seen = Vec::new();
    for _ in 0..10 {
        let response = world.get(&path, ALICE).await;
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
                path = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .expect("link target")
                    .to_owned();
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
async fn head_gets_the_same_status_and_headers_without_a_body() {
    let world = World::start().await;
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    let get = world.get(&path, ALICE).await;
    let get_length = get.headers()["content-length"].clone();
    let head = e2e::http_client()
        .head(world.sidecar.url(&path))
        .basic_auth(ALICE.0, Some(ALICE.1))
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
    let world = World::start().await;
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    let challenge = e2e::http_client()
        .get(world.sidecar.url(&path))
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
        world.api_front.seen().is_empty(),
        "no upstream call before authorization"
    );

    // The real client: oci-client does the token dance through the sidecar and reads the list.
    let reference: oci_client::Reference = format!(
        "127.0.0.1:{}/api-proxy/team/app@{}",
        world.sidecar.port, world.api_sample.subject.digest
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
            &oci_client::secrets::RegistryAuth::Basic(ALICE.0.into(), ALICE.1.into()),
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
        world.api_sample.referrers[1].digest
    );
}

#[tokio::test]
async fn a_caller_without_access_gets_cores_401_and_no_upstream_request_is_made() {
    let world = World::start().await;
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    // Bob's token is for another project; Basic credentials for him are refused too.
    let token = world
        .harbor
        .token(Some(BOB), "repository:local/thing:pull")
        .await;
    for authorization in [format!("Bearer {token}"), {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", BOB.0, BOB.1))
        )
    }] {
        let response = e2e::http_client()
            .get(world.sidecar.url(&path))
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
        world.api_front.seen().is_empty(),
        "{:?}",
        world.api_front.seen()
    );
    assert!(
        world.harbor.requests_to("/api/v2.0/projects").is_empty(),
        "no project lookup for a caller core did not authorize"
    );
    let metrics = world.sidecar.metrics().await;
    assert!(
        metrics.contains("harbor_referrers_requests_total{outcome=\"denied\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn disabled_and_non_proxy_projects_get_cores_answer_byte_for_byte() {
    let world = World::start().await;
    let subject = &world.api_sample.subject.digest;
    world.harbor.set_local_referrers(
        "off-proxy/team/app",
        subject,
        vec![world.local_only.clone()],
    );
    world
        .harbor
        .set_local_referrers("local/team/app", subject, vec![world.local_only.clone()]);
    for repository in ["off-proxy/team/app", "local/team/app"] {
        let path = world.referrers_path(repository, subject);
        for query in [
            "",
            "?artifactType=application/vnd.cncf.notary.signature&n=5",
        ] {
            let through_sidecar = world.get(&format!("{path}{query}"), ALICE).await;
            let direct = e2e::http_client()
                .get(format!("{}{path}{query}", world.harbor.url()))
                .basic_auth(ALICE.0, Some(ALICE.1))
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
        world.api_front.seen().is_empty(),
        "{:?}",
        world.api_front.seen()
    );
}

#[tokio::test]
async fn upstream_stopped_mid_test_still_gives_local_referrers() {
    let mut world = World::start().await;
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    // The upstream answers (for another subject), then stops; the subject is not cached yet.
    let other = world.referrers_path("api-proxy/team/app", &format!("sha256:{}", "9".repeat(64)));
    let before = world.get(&other, ALICE).await;
    assert_eq!(before.headers()["x-referrers-upstream"], "api");
    world.api_front.stop();
    let response = world.get(&path, ALICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-referrers-upstream"], "error");
    assert_eq!(response.headers()["x-referrers-cache"], "miss");
    let index: Value = response.json().await.expect("json");
    let local_digest = world.local_only["digest"].as_str().expect("digest");
    let mut expected = vec![
        world.api_sample.referrers[0].digest.clone(),
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
    let world = World::start().await;
    let path = world.referrers_path("api-proxy/team/app", &format!("sha256:{}", "0".repeat(64)));
    let response = world.get(&path, ALICE).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], INDEX);
    let index: Value = response.json().await.expect("json");
    assert_eq!(index["manifests"], json!([]));
    assert!(world.api_front.seen_with("/referrers/").is_empty());
}

#[tokio::test]
async fn harbor_2_8_answers_are_accepted_and_corrected_by_the_upstream() {
    let world = World::start_with(|config| {
        config.legacy_2_8 = true;
        config.version = "v2.8.4-1a2b3c".into();
    })
    .await;
    let response = world
        .get(
            &world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest),
            ALICE,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], INDEX);
    let index: Value = response.json().await.expect("json");
    let signature = &world.api_sample.referrers[0];
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
    let sample = Pusher::new(&hub.url())
        .push_sample("library/nginx", false)
        .await;
    let front = CountingProxy::start(&hub.url());
    let harbor = HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(1, "hub-proxy", 1)],
        registries: vec![registry(1, "hub", &front.url(), "docker-hub")],
        accounts: vec![
            account(ROBOT, &[], true),
            account(ALICE, &["hub-proxy"], false),
        ],
        ..DoubleConfig::default()
    });
    let local = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "2".repeat(64)),
        "size": 99,
        "artifactType": "application/vnd.cncf.notary.signature",
    });
    harbor.set_local_referrers(
        "hub-proxy/library/nginx",
        &sample.subject.digest,
        vec![local],
    );
    let sidecar = sidecar_for(&harbor, "['*']", "");
    let path = format!("/v2/hub-proxy/nginx/referrers/{}", sample.subject.digest);
    let response = get_as(&sidecar, &path, ALICE).await;
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
        .map(|s| s.target)
        .collect();
    assert_eq!(
        upstream_paths,
        vec![format!(
            "/v2/library/nginx/referrers/{}",
            sample.subject.digest
        )]
    );
    let core_paths: BTreeSet<String> = harbor
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
    let upstream = DockerRegistry::start_with_htpasswd("mirror", "mirror-secret");
    let sample = Pusher::new(&upstream.url())
        .with_authorization(&format!("Basic {}", {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode("mirror:mirror-secret")
        }))
        .push_sample("team/app", true)
        .await;
    let front = CountingProxy::start(&upstream.url());
    let harbor = HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(1, "private-proxy", 1)],
        registries: vec![registry(1, "private", &front.url(), "docker-registry")],
        accounts: vec![
            account(ROBOT, &[], true),
            account(ALICE, &["private-proxy"], false),
        ],
        ..DoubleConfig::default()
    });
    let path = format!(
        "/v2/private-proxy/team/app/referrers/{}",
        sample.subject.digest
    );
    for (bound_host, expect_upstream, expect_sent) in [
        (format!("127.0.0.1:{}", front.port), "tag", true),
        ("registry.example.com".to_owned(), "error", false),
    ] {
        front.clear();
        let sidecar = sidecar_for(
            &harbor,
            "[private-proxy]",
            &format!(
                "registries:\n  private:\n    harbor_registry: private\n    host: \"{bound_host}\"\n    username: mirror\n    password: mirror-secret\n"
            ),
        );
        let response = get_as(&sidecar, &path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["x-referrers-upstream"],
            expect_upstream,
            "{bound_host}"
        );
        let sent = front.seen().iter().any(|s| {
            s.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic "))
        });
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
    let world = World::start_with(|config| {
        let mut project = DoubleProject::proxy(5, "api-proxy-216", 1);
        project
            .metadata
            .insert("proxy_referrer_api".into(), "true".into());
        config.projects.push(project);
        config.accounts[1].projects.push("api-proxy-216".into());
    })
    .await;
    let subject = &world.api_sample.subject.digest;
    world.harbor.set_local_referrers(
        "api-proxy-216/team/app",
        subject,
        vec![world.local_only.clone()],
    );
    // Enabled by the wildcard, but Harbor (>= 2.16) does its own merge for this project.
    let sidecar = sidecar_for(&world.harbor, "['*']", "");
    let path = world.referrers_path("api-proxy-216/team/app", subject);
    for _ in 0..2 {
        let response = get_as(&sidecar, &path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-referrers-upstream").is_none());
        let index: Value = response.json().await.expect("json");
        assert_eq!(index["manifests"], json!([world.local_only.clone()]));
    }
    assert!(world.api_front.seen().is_empty());
    let logged = sidecar
        .logs()
        .iter()
        .filter(|l| l.contains("Harbor merges upstream referrers itself"))
        .count();
    assert_eq!(logged, 1, "logged once per project");
}

#[tokio::test]
async fn a_slow_core_gives_504_and_no_upstream_call() {
    let world = World::start_with(|config| {
        config.referrers_delay = std::time::Duration::from_secs(5);
    })
    .await;
    let sidecar = Sidecar::start_with_env(
        &sidecar_config(&world.harbor, "[api-proxy]", ""),
        &[("REFERRERS_SIDECAR__HARBOR__TIMEOUT", "1s")],
    );
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    let response = get_as(&sidecar, &path, ALICE).await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    assert!(
        world.api_front.seen().is_empty(),
        "never an upstream call without core's 200"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains("harbor_referrers_requests_total{outcome=\"core_error\"} 1"),
        "{metrics}"
    );

    // Core gone altogether: 502.
    let url = world.harbor.url();
    drop(world);
    let response = get_as(&sidecar, &path, ALICE).await;
    assert_eq!(response.status(), 502, "core at {url} is down");
}

#[tokio::test]
async fn a_registry_type_the_sidecar_does_not_know_gets_local_referrers_and_no_upstream_call() {
    let world = World::start_with(|config| {
        config.registries[0].registry_type = "new-cloud".into();
    })
    .await;
    let path = world.referrers_path("api-proxy/team/app", &world.api_sample.subject.digest);
    for _ in 0..2 {
        let response = world.get(&path, ALICE).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-referrers-upstream"], "skipped");
        let index: Value = response.json().await.expect("json");
        let local_digest = world.local_only["digest"].as_str().expect("digest");
        assert_eq!(
            sorted(digests(&index)),
            sorted(vec![
                world.api_sample.referrers[0].digest.clone(),
                local_digest.to_owned(),
            ]),
            "Harbor's two local referrers"
        );
    }
    assert!(
        world.api_front.seen().is_empty(),
        "{:?}",
        world.api_front.seen()
    );
}
