//! A proxy-cache world for cache tests: a real upstream registry behind a counting front,
//! Harbor (the double) with one proxy-cache project over it and one local referrer, and
//! sidecars started on demand with the cache configuration a test wants.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Sidecar;
use crate::counting_proxy::CountingProxy;
use crate::harbor_double::{
    DoubleAccount, DoubleConfig, DoubleProject, DoubleRegistry, HarborDouble,
};
use crate::upstreams::{FerroOci, Pusher, Sample, Upstream};

/// The sidecar's robot account in the Harbor double.
pub const ROBOT: (&str, &str) = ("robot$referrers-sidecar", "robot-secret");
/// A user who may pull from the proxy-cache project.
pub const ALICE: (&str, &str) = ("alice", "alice-secret");

/// An upstream behind a counting front, Harbor (the double) with one proxy-cache project over
/// it and one local referrer, and nothing started yet on the sidecar side.
pub struct ProxyWorld {
    pub harbor: HarborDouble,
    pub front: CountingProxy,
    pub sample: Sample,
    pub local: Value,
    _upstream: Upstream,
}

impl ProxyWorld {
    pub async fn start() -> Self {
        Self::start_on(FerroOci::start(), false).await
    }

    pub async fn start_on(upstream: Upstream, fallback_tag: bool) -> Self {
        let sample = Pusher::new(&upstream.url())
            .push_sample("team/app", fallback_tag)
            .await;
        let front = CountingProxy::start(&upstream.url());
        let harbor = hub_proxy_harbor("upstream", &front.url());
        let local = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "1".repeat(64)),
            "size": 321,
            "artifactType": "application/vnd.cncf.notary.signature",
        });
        harbor.set_local_referrers(
            "hub-proxy/team/app",
            &sample.subject.digest,
            vec![local.clone()],
        );
        Self {
            harbor,
            front,
            sample,
            local,
            _upstream: upstream,
        }
    }

    /// A sidecar for this world with `cache_yaml` under `cache:` (and `extra` appended).
    #[must_use]
    pub fn sidecar(&self, cache_yaml: &str, extra: &str) -> Sidecar {
        Sidecar::start(&format!(
            "harbor:\n  url: {}\n  username: {}\n  password: {}\nprojects:\n  enabled: [hub-proxy]\nupstream:\n  allow_private_realms: true\n  timeout: 5s\ncache:\n{cache_yaml}{extra}",
            self.harbor.url(),
            ROBOT.0,
            ROBOT.1,
        ))
    }

    #[must_use]
    pub fn path(&self) -> String {
        format!(
            "/v2/hub-proxy/team/app/referrers/{}",
            self.sample.subject.digest
        )
    }

    #[must_use]
    pub fn upstream_referrers_requests(&self) -> usize {
        self.front.seen_with("/referrers/").len()
    }
}

/// One request: status, `X-Referrers-Cache`, `X-Referrers-Upstream`, digests served.
pub async fn ask(sidecar: &Sidecar, path: &str) -> (u16, String, String, Vec<String>) {
    let response = crate::http_client()
        .get(sidecar.url(path))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().expect("header").to_owned())
            .unwrap_or_default()
    };
    let (cache, upstream) = (header("x-referrers-cache"), header("x-referrers-upstream"));
    let index: Value = response.json().await.expect("json");
    let digests = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| d["digest"].as_str().expect("digest").to_owned())
        .collect();
    (status, cache, upstream, digests)
}

/// Waits (bounded) until `check` holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[must_use]
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not exported:\n{metrics}"))
}

/// Harbor (the double) with one proxy-cache project, `hub-proxy`, over the registry `name` at
/// `url`, the sidecar's robot account and a user who may pull from the project.
#[must_use]
pub fn hub_proxy_harbor(name: &str, url: &str) -> HarborDouble {
    HarborDouble::start(DoubleConfig {
        projects: vec![DoubleProject::proxy(1, "hub-proxy", 1)],
        registries: vec![DoubleRegistry {
            id: 1,
            name: name.into(),
            url: url.into(),
            registry_type: "docker-registry".into(),
            insecure: true,
        }],
        accounts: vec![
            DoubleAccount {
                name: ROBOT.0.into(),
                password: ROBOT.1.into(),
                projects: vec![],
                system_reader: true,
            },
            DoubleAccount {
                name: ALICE.0.into(),
                password: ALICE.1.into(),
                projects: vec!["hub-proxy".into()],
                system_reader: false,
            },
        ],
        ..DoubleConfig::default()
    })
}
