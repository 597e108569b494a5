//! The clients users run, end to end: cosign and notation verify signatures that exist only on
//! the upstream registry, oras, regctl, crane and go-containerregistry list and fetch every
//! referrer — through the sidecar, for a Harbor proxy-cache project — where Harbor core alone
//! (Harbor up to 2.15) gives them nothing but its own referrers.
//!
//! One scenario for every test: distribution (no referrers API: the clients write the
//! referrers tag schema) holds an image with two referrers of its own; cosign and notation sign
//! it and oras attaches an SBOM, all upstream; Harbor (the double) has generated an SBOM of it,
//! its one local referrer; [`ALICE`] may pull from the proxy-cache project `hub-proxy`.

mod degraded;
mod listing;
mod signatures;

use e2e::Sidecar;
use e2e::clients::Clients;
use e2e::config::Settings;
use e2e::users::ALICE;
use e2e::world::{Mirror, World};
use serde_json::Value;

const PROJECT: &str = "hub-proxy";
const ATTACHED: &str = "application/vnd.example.sbom.v1";
/// The file oras attaches (in the clients' home, its working directory), and its content.
const ATTACHED_FILE: &str = "sbom.spdx.json";
const ATTACHED_CONTENT: &str = r#"{"spdxVersion":"SPDX-2.3","name":"team/app"}"#;

/// The scenario, with a sidecar in front of Harbor.
struct Signed {
    world: World,
    sidecar: Sidecar,
    clients: Clients,
    /// The image's digest.
    subject: String,
    /// The attached SBOM's digest (oras), upstream.
    attached: String,
    /// What the upstream lists, as regctl reads it there (sorted).
    upstream: Vec<String>,
}

impl Signed {
    /// The scenario; its sidecar configured further by `adjust`.
    async fn start(adjust: impl FnOnce(&mut Settings)) -> Self {
        let world = World::builder()
            .mirror(PROJECT, "upstream", Mirror::with_fallback_tag().await)
            .harbor_sbom()
            .user(ALICE, &[PROJECT])
            .start();
        let sidecar = world.sidecar_with(adjust);
        let mut clients = Clients::new();
        let mirror = world.mirror(PROJECT);
        let upstream_host = host_of(&mirror.registry_url());
        let subject = mirror.sample.subject.digest.clone();
        clients.registry(&upstream_host, None);
        clients.registry(&format!("127.0.0.1:{}", sidecar.port), Some(ALICE));
        clients.registry(&format!("127.0.0.1:{}", world.harbor.port), Some(ALICE));

        let signed = format!("{upstream_host}/{}@{subject}", mirror.repository);
        clients.cosign_key_pair();
        clients.cosign_sign(&signed);
        clients.notation_test_key();
        clients.notation_sign(&signed);
        clients.file(ATTACHED_FILE, ATTACHED_CONTENT);
        let attached = clients.ok(
            "oras",
            &[
                "attach",
                "--plain-http",
                "--artifact-type",
                ATTACHED,
                "--format",
                "go-template={{.digest}}",
                &signed,
                &format!("{ATTACHED_FILE}:application/spdx+json"),
            ],
        );
        let attached = attached.trim().to_owned();
        // The sample's two referrers, cosign's bundle, notation's signature, oras' SBOM.
        let upstream = regctl_list(&clients, &signed);
        assert_eq!(upstream.len(), 5, "{upstream:?}");
        for pushed in mirror
            .sample
            .referrers
            .iter()
            .map(|r| &r.digest)
            .chain([&attached])
        {
            assert!(upstream.contains(pushed), "{pushed} upstream: {upstream:?}");
        }
        Self {
            world,
            sidecar,
            clients,
            subject,
            attached,
            upstream,
        }
    }

    /// The image through the sidecar (`127.0.0.1:<port>/hub-proxy/team/app@<digest>`).
    fn through_sidecar(&self) -> String {
        self.image(self.sidecar.port, &format!("@{}", self.subject))
    }

    /// The image through Harbor core alone.
    fn through_core(&self) -> String {
        self.image(self.world.harbor.port, &format!("@{}", self.subject))
    }

    /// The image by its tag through the sidecar (`…/hub-proxy/team/app:v1`).
    fn tagged_through_sidecar(&self) -> String {
        self.image(self.sidecar.port, ":v1")
    }

    /// The image by its tag through Harbor core alone.
    fn tagged_through_core(&self) -> String {
        self.image(self.world.harbor.port, ":v1")
    }

    /// `127.0.0.1:<port>/hub-proxy/team/app<reference>` (`:tag` or `@digest`).
    fn image(&self, port: u16, reference: &str) -> String {
        format!(
            "127.0.0.1:{port}/{PROJECT}/{}{reference}",
            self.world.mirror(PROJECT).repository
        )
    }

    /// `image` with the digest `digest` in place of the subject's.
    fn at(image: &str, digest: &str) -> String {
        let (repository, _) = image.split_once('@').expect("a digest reference");
        format!("{repository}@{digest}")
    }

    /// Harbor's local referrer: the SBOM it generated.
    fn harbor_sbom(&self) -> String {
        self.world.local_of(PROJECT)["digest"]
            .as_str()
            .expect("digest")
            .to_owned()
    }

    /// The upstream's referrers and Harbor's, merged (sorted).
    fn merged(&self) -> Vec<String> {
        let mut merged = self.upstream.clone();
        merged.push(self.harbor_sbom());
        sorted(merged)
    }
}

/// `host:port` of `http://host:port`.
fn host_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// The digests regctl lists for `image` (sorted).
fn regctl_list(clients: &Clients, image: &str) -> Vec<String> {
    let listed: Value = serde_json::from_str(&clients.ok(
        "regctl",
        &["artifact", "list", image, "--format", "{{json .}}"],
    ))
    .expect("regctl's JSON");
    sorted(
        listed["descriptors"]
            .as_array()
            .expect("descriptors")
            .iter()
            .map(|d| d["digest"].as_str().expect("digest").to_owned())
            .collect(),
    )
}

fn sorted(mut digests: Vec<String>) -> Vec<String> {
    digests.sort();
    digests
}
