//! One world for the end-to-end tests: Harbor (the double) with proxy-cache projects over
//! upstream registries, the accounts, mirrored content with one referrer only Harbor has, and
//! sidecars configured for all of it.

use std::time::Duration;

use referrers_sidecar::config::Settings;
use serde_json::{Value, json};

use crate::Sidecar;
use crate::config::Configure;
use crate::counting_proxy::CountingProxy;
use crate::harbor_double::{DoubleConfig, DoubleProject, DoubleRegistry, HarborDouble};
use crate::upstreams::{DockerRegistry, FerroOci, Pusher, Sample, Upstream};
use crate::users::{ALICE, ROBOT, User};

/// A real upstream registry with sample content in one repository, behind a counting front
/// (the address Harbor is given), so a test sees what reached the upstream.
pub struct Mirror {
    pub front: CountingProxy,
    pub sample: Sample,
    /// Where the sample is, upstream (`team/app`).
    pub repository: String,
    upstream: Upstream,
}

impl Mirror {
    /// `upstream` with [`Pusher::push_sample`] in `repository` (and its fallback tag when
    /// `fallback_tag`), pushed with `pusher`.
    pub async fn start(
        upstream: Upstream,
        pusher: Pusher,
        repository: &str,
        fallback_tag: bool,
    ) -> Self {
        let sample = pusher.push_sample(repository, fallback_tag).await;
        let front = CountingProxy::start(&upstream.url());
        Self {
            front,
            sample,
            repository: repository.into(),
            upstream,
        }
    }

    /// ferro-oci-server (the referrers API) with the sample in `team/app`.
    pub async fn with_referrers_api() -> Self {
        let upstream = FerroOci::start();
        let pusher = Pusher::new(&upstream.url());
        Self::start(upstream, pusher, "team/app", false).await
    }

    /// distribution (no referrers API) with the sample and its fallback tag in `team/app`.
    pub async fn with_fallback_tag() -> Self {
        let upstream = DockerRegistry::start();
        let pusher = Pusher::new(&upstream.url());
        Self::start(upstream, pusher, "team/app", true).await
    }

    /// The front's address: what Harbor stores as the registry's URL.
    #[must_use]
    pub fn url(&self) -> String {
        self.front.url()
    }

    /// The registry itself, not behind the front: where its owners push (signatures,
    /// attachments), unseen by the front's count.
    #[must_use]
    pub fn registry_url(&self) -> String {
        self.upstream.url()
    }

    /// Referrers API requests that reached the upstream.
    #[must_use]
    pub fn referrers_requests(&self) -> usize {
        self.front.seen_with("/referrers/").len()
    }
}

/// What [`World::builder`] starts: registries, projects and accounts in the Harbor double.
pub struct WorldBuilder {
    harbor: DoubleConfig,
    mirrors: Vec<(String, Mirror)>,
    enabled: Vec<String>,
    sidecar: Settings,
    /// Whether Harbor's local referrer of a mirrored subject is an SBOM it generated.
    harbor_sbom: bool,
}

impl WorldBuilder {
    /// A proxy-cache project `project` over a registry named `registry` at `url`, enabled in
    /// the sidecar.
    #[must_use]
    pub fn proxy_cache(mut self, project: &str, registry: &str, url: &str) -> Self {
        let registry_id = self.harbor.registries.len() as i64 + 1;
        self.harbor.registries.push(DoubleRegistry {
            id: registry_id,
            name: registry.into(),
            url: url.into(),
            registry_type: "docker-registry".into(),
            insecure: true,
        });
        let project_id = self.harbor.projects.len() as i64 + 1;
        self.harbor
            .projects
            .push(DoubleProject::proxy(project_id, project, registry_id));
        self.enabled.push(project.into());
        self
    }

    /// [`proxy_cache`](Self::proxy_cache) over `mirror`; Harbor has the mirror's subject with
    /// [`World::local`] as its local referrer.
    #[must_use]
    pub fn mirror(mut self, project: &str, registry: &str, mirror: Mirror) -> Self {
        self = self.proxy_cache(project, registry, &mirror.url());
        self.mirrors.push((project.into(), mirror));
        self
    }

    /// Harbor's local referrer of each mirrored subject is an SBOM Harbor generated (a real
    /// manifest, stored as Harbor stores it, fetchable by digest) in place of the made-up
    /// [`World::local`]: what clients that fetch every referrer need.
    #[must_use]
    pub fn harbor_sbom(mut self) -> Self {
        self.harbor_sbom = true;
        self
    }

    /// Another project, as given (not enabled in the sidecar).
    #[must_use]
    pub fn project(mut self, project: DoubleProject) -> Self {
        self.harbor.projects.push(project);
        self
    }

    /// `user`, with pull access to `projects`.
    #[must_use]
    pub fn user(mut self, user: User, projects: &[&str]) -> Self {
        self.harbor.accounts.push(user.account(projects));
        self
    }

    /// Another Harbor account, as given (a project admin, the system admin).
    #[must_use]
    pub fn account(mut self, account: crate::harbor_double::DoubleAccount) -> Self {
        self.harbor.accounts.push(account);
        self
    }

    /// The sidecar's `projects.enabled`, in place of the proxy-cache projects added.
    #[must_use]
    pub fn enable(mut self, projects: &[&str]) -> Self {
        self.enabled = projects.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Changes how Harbor behaves (version, quirks, registry types).
    #[must_use]
    pub fn harbor(mut self, adjust: impl FnOnce(&mut DoubleConfig)) -> Self {
        adjust(&mut self.harbor);
        self
    }

    /// Configuration every sidecar of the world starts from.
    #[must_use]
    pub fn sidecar(mut self, adjust: impl FnOnce(&mut Settings)) -> Self {
        adjust(&mut self.sidecar);
        self
    }

    /// Starts Harbor (the double).
    #[must_use]
    pub fn start(self) -> World {
        let harbor = HarborDouble::start(self.harbor);
        let local = local_signature();
        let mut sboms = Vec::new();
        for (project, mirror) in &self.mirrors {
            let repository = format!("{project}/{}", mirror.repository);
            if self.harbor_sbom {
                let sbom = harbor.generate_sbom(&repository, &mirror.sample.subject);
                sboms.push((project.clone(), sbom.descriptor()));
            } else {
                harbor.set_local_referrers(
                    &repository,
                    &mirror.sample.subject.digest,
                    vec![local.clone()],
                );
            }
        }
        let enabled = self.enabled;
        let sidecar = self.sidecar.with(|s| {
            s.harbor.url = harbor.url().parse().expect("Harbor's URL");
            s.robot(ROBOT);
            s.enable(&enabled);
            s.upstream.allow_private_realms = true;
            // Registries on loopback: a manifest GET every 10 ms, not Docker Hub's pace.
            s.store.pulls_per_hour = 360_000;
        });
        World {
            harbor,
            local,
            sboms,
            mirrors: self.mirrors,
            sidecar,
        }
    }
}

/// Harbor (the double) with its projects, the mirrors behind them, and what a sidecar for it
/// is configured with.
pub struct World {
    pub harbor: HarborDouble,
    /// A referrer only Harbor has (a signature made in Harbor), on every mirrored subject.
    pub local: Value,
    /// With [`WorldBuilder::harbor_sbom`]: per project, the SBOM Harbor generated of the
    /// mirrored subject, Harbor's local referrer there in place of [`local`](Self::local).
    sboms: Vec<(String, Value)>,
    mirrors: Vec<(String, Mirror)>,
    /// What its sidecars start from: Harbor's URL, the robot, the enabled projects, upstreams
    /// on loopback allowed and paced for loopback.
    sidecar: Settings,
}

impl World {
    /// No projects yet; the sidecar's robot account in Harbor.
    #[must_use]
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            harbor: DoubleConfig {
                accounts: vec![ROBOT.system_reader()],
                ..DoubleConfig::default()
            },
            mirrors: Vec::new(),
            enabled: Vec::new(),
            sidecar: crate::config::loopback(),
            harbor_sbom: false,
        }
    }

    /// The world of the cache tests: one proxy-cache project, `hub-proxy`, over `mirror`, and
    /// [`ALICE`] who may pull from it.
    pub fn hub_proxy(mirror: Mirror) -> Self {
        Self::hub_proxy_builder(mirror)
            .sidecar(|s| s.upstream.timeout = Duration::from_secs(5))
            .start()
    }

    /// [`hub_proxy`](Self::hub_proxy)'s projects and accounts, to build on (more projects, the
    /// projects enabled, Harbor's behaviour), with the sidecar's defaults.
    #[must_use]
    pub fn hub_proxy_builder(mirror: Mirror) -> WorldBuilder {
        Self::builder()
            .mirror("hub-proxy", "upstream", mirror)
            .user(ALICE, &["hub-proxy"])
    }

    /// One proxy-cache project, `hub-proxy`, over the registry `registry` at `url` (an
    /// upstream the test holds), and [`ALICE`] who may pull from it.
    #[must_use]
    pub fn hub_proxy_over(registry: &str, url: &str) -> Self {
        Self::builder()
            .proxy_cache("hub-proxy", registry, url)
            .user(ALICE, &["hub-proxy"])
            .start()
    }

    /// The mirror behind `project`.
    #[must_use]
    pub fn mirror(&self, project: &str) -> &Mirror {
        self.mirrors
            .iter()
            .find_map(|(name, mirror)| (name == project).then_some(mirror))
            .unwrap_or_else(|| panic!("no mirror behind {project}"))
    }

    /// The mirror behind `project`, to stop it.
    pub fn mirror_mut(&mut self, project: &str) -> &mut Mirror {
        self.mirrors
            .iter_mut()
            .find_map(|(name, mirror)| (name == project).then_some(mirror))
            .unwrap_or_else(|| panic!("no mirror behind {project}"))
    }

    /// The referrers path of the mirrored subject, through `project`.
    #[must_use]
    pub fn subject_path(&self, project: &str) -> String {
        let mirror = self.mirror(project);
        referrers_path(
            &format!("{project}/{}", mirror.repository),
            &mirror.sample.subject.digest,
        )
    }

    /// Harbor's local referrer of the subject mirrored behind `project`.
    #[must_use]
    pub fn local_of(&self, project: &str) -> &Value {
        self.sboms
            .iter()
            .find_map(|(name, sbom)| (name == project).then_some(sbom))
            .unwrap_or(&self.local)
    }

    /// The digest of [`local`](Self::local).
    #[must_use]
    pub fn local_digest(&self) -> &str {
        self.local["digest"].as_str().expect("digest")
    }

    /// The referrers of the subject mirrored behind `project` once merged: the upstream's and
    /// Harbor's local one, sorted.
    #[must_use]
    pub fn merged(&self, project: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .mirror(project)
            .sample
            .referrers
            .iter()
            .map(|r| r.digest.clone())
            .collect();
        all.push(
            self.local_of(project)["digest"]
                .as_str()
                .expect("digest")
                .to_owned(),
        );
        all.sort();
        all
    }

    /// Asserts that `answer` lists the upstream's and Harbor's referrers of the subject
    /// mirrored behind `project`, merged (in any order).
    pub fn assert_merged(&self, project: &str, answer: &Answer) {
        let mut served = answer.digests.clone();
        served.sort();
        assert_eq!(
            served,
            self.merged(project),
            "upstream and local referrers, merged: {answer:?}"
        );
    }

    /// Asserts that `answer` is core's own for a mirrored subject: Harbor's local referrer
    /// alone, no `X-Referrers-*` headers.
    pub fn assert_core_answer(&self, answer: &Answer) {
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(
            (answer.cache.as_str(), answer.upstream.as_str()),
            ("", ""),
            "core's own answer: {answer:?}"
        );
        assert_eq!(answer.digests, [self.local_digest()], "{answer:?}");
    }

    /// A sidecar for this world.
    #[must_use]
    pub fn sidecar(&self) -> Sidecar {
        Sidecar::start(&self.sidecar)
    }

    /// A sidecar for this world, configured further by `adjust`.
    #[must_use]
    pub fn sidecar_with(&self, adjust: impl FnOnce(&mut Settings)) -> Sidecar {
        Sidecar::start(&self.sidecar.clone().with(adjust))
    }
}

/// `/v2/<repository>/referrers/<subject>`.
#[must_use]
pub fn referrers_path(repository: &str, subject: &str) -> String {
    format!("/v2/{repository}/referrers/{subject}")
}

/// A Notary signature made in Harbor: no upstream has it.
fn local_signature() -> Value {
    json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "1".repeat(64)),
        "size": 321,
        "artifactType": "application/vnd.cncf.notary.signature",
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[\"abc\"]"},
    })
}

/// What a client saw of one referrers request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `X-Referrers-Cache` (empty when absent).
    pub cache: String,
    /// `X-Referrers-Upstream` (empty when absent).
    pub upstream: String,
    /// The digests served, in order.
    pub digests: Vec<String>,
}

/// What a client saw of one referrers request, whatever its body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// `X-Referrers-Cache` (empty when absent).
    pub cache: String,
    /// `X-Referrers-Upstream` (empty when absent).
    pub upstream: String,
    pub body: String,
}

/// One referrers request to `sidecar` as [`ALICE`], its body read as text (an error, or what
/// core relayed, as well as an index).
pub async fn reply(sidecar: &Sidecar, path: &str) -> Reply {
    reply_with(sidecar, path, &[]).await
}

/// [`reply`] to a request carrying `headers` too.
pub async fn reply_with(sidecar: &Sidecar, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = crate::http_client()
        .get(sidecar.url(path))
        .basic_auth(ALICE.name, Some(ALICE.password));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("header").to_owned())
            .unwrap_or_default()
    };
    let (status, cache, upstream) = (
        response.status().as_u16(),
        header("x-referrers-cache"),
        header("x-referrers-upstream"),
    );
    Reply {
        status,
        cache,
        upstream,
        body: response.text().await.expect("body"),
    }
}

/// One referrers request to `sidecar` as [`ALICE`], answered with an index.
pub async fn ask(sidecar: &Sidecar, path: &str) -> Answer {
    let Reply {
        status,
        cache,
        upstream,
        body,
    } = reply(sidecar, path).await;
    let index: Value = serde_json::from_str(&body)
        .unwrap_or_else(|error| panic!("not an index ({error}): {body}"));
    Answer {
        status,
        cache,
        upstream,
        digests: digests(&index),
    }
}

/// The digests of an image index's `manifests`, in order.
#[must_use]
pub fn digests(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Asks (as [`ask`]) until the sidecar answers with `X-Referrers-Cache: cache`, for a state
/// that comes with time (an entry going stale, then expiring); returns the answers before it
/// and that answer. Bounded by [`crate::wait::LIMIT`].
pub async fn ask_until(sidecar: &Sidecar, path: &str, cache: &str) -> (Vec<Answer>, Answer) {
    let mut before = Vec::new();
    let mut reached = None;
    crate::wait::eventually(&format!("X-Referrers-Cache: {cache}"), async || {
        let answer = ask(sidecar, path).await;
        if answer.cache == cache {
            reached = Some(answer);
            true
        } else {
            before.push(answer);
            false
        }
    })
    .await;
    (before, reached.expect("the answer waited for"))
}
