//! Against real registries started on loopback: distribution 2.8 (`docker-registry`, no
//! referrers API; anonymous and behind htpasswd) and `ferro-oci-server` (the referrers API).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use e2e::upstreams::{DockerRegistry, FerroOci, Pusher, Sample};
use oci_referrers::Digest;
use registry_client::{
    AuthError, ClientConfig, Credentials, LimitKind, ReferrersSource, Registry, RegistryClient,
    RegistryKind, RequestKind, RequestObserver, UpstreamError,
};

/// Records every request the client reports.
#[derive(Default)]
struct Recorder(Mutex<Vec<(RequestKind, Option<u16>)>>);

impl RequestObserver for Recorder {
    fn on_request(&self, _: &str, kind: RequestKind, status: Option<u16>, _: Duration) {
        self.0.lock().unwrap().push((kind, status));
    }
}

impl Recorder {
    fn count(&self, kind: RequestKind) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == kind)
            .count()
    }
}

fn client(recorder: &Arc<Recorder>) -> RegistryClient {
    RegistryClient::new(ClientConfig {
        // The upstreams live on 127.0.0.1.
        allow_private_realms: true,
        timeout: Duration::from_secs(30),
        observer: Some(Arc::clone(recorder) as Arc<dyn RequestObserver>),
        ..support::test_config()
    })
    .unwrap()
}

fn registry(url: &str, credentials: Option<Credentials>) -> Registry {
    Registry {
        name: "upstream".into(),
        base_url: url.parse().unwrap(),
        kind: RegistryKind::Distribution,
        insecure: true,
        credentials,
    }
}

fn digest(text: &str) -> Digest {
    text.parse().unwrap()
}

/// The listed descriptors, as JSON, sorted by digest: what was pushed must come back whole.
fn listed(list: &registry_client::UpstreamReferrers) -> Vec<serde_json::Value> {
    let mut values: Vec<_> = list
        .descriptors
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    values.sort_by_key(|v| v["digest"].as_str().unwrap().to_owned());
    values
}

fn pushed(sample: &Sample) -> Vec<serde_json::Value> {
    let mut values: Vec<_> = sample.referrers.iter().map(|r| r.descriptor()).collect();
    values.sort_by_key(|v| v["digest"].as_str().unwrap().to_owned());
    values
}

#[tokio::test]
async fn ferro_lists_through_the_api_with_annotations_intact() {
    let upstream = FerroOci::start();
    let sample = Pusher::new(&upstream.url())
        .push_sample("team/app", false)
        .await;
    let recorder = Arc::new(Recorder::default());
    let list = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), None),
            "team/app",
            &digest(&sample.subject.digest),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::Api);
    assert!(!list.truncated);
    assert_eq!(list.rejected, 0);
    assert_eq!(listed(&list), pushed(&sample));
    assert_eq!(recorder.count(RequestKind::Tag), 0);
}

#[tokio::test]
async fn ferro_with_an_unknown_subject_is_an_empty_list() {
    let upstream = FerroOci::start();
    let recorder = Arc::new(Recorder::default());
    let list = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), None),
            "team/app",
            &digest(&format!("sha256:{}", "0".repeat(64))),
            None,
        )
        .await
        .unwrap();
    assert!(list.descriptors.is_empty());
    assert_eq!(list.source, ReferrersSource::Api);
}

#[tokio::test]
async fn distribution_lists_through_the_fallback_tag_and_remembers_the_api_is_absent() {
    let upstream = DockerRegistry::start();
    let pusher = Pusher::new(&upstream.url());
    let sample = pusher.push_sample("team/app", true).await;
    let recorder = Arc::new(Recorder::default());
    let client = client(&recorder);
    let registry = registry(&upstream.url(), None);
    let subject = digest(&sample.subject.digest);

    let list = client
        .list_referrers(&registry, "team/app", &subject, None)
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::FallbackTag);
    assert_eq!(listed(&list), pushed(&sample));
    assert_eq!(
        list.tag_digest.as_ref().map(Digest::as_str),
        sample.fallback_index.as_deref()
    );
    let api_calls = recorder.count(RequestKind::Api);

    // Second listing: straight to the tag.
    let again = client
        .list_referrers(&registry, "team/app", &subject, None)
        .await
        .unwrap();
    assert_eq!(again, list);
    assert_eq!(recorder.count(RequestKind::Api), api_calls);
    assert_eq!(recorder.count(RequestKind::Tag), 2);
}

#[tokio::test]
async fn distribution_without_a_fallback_tag_is_an_empty_none_list() {
    let upstream = DockerRegistry::start();
    let sample = Pusher::new(&upstream.url())
        .push_sample("team/app", false)
        .await;
    let recorder = Arc::new(Recorder::default());
    let list = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), None),
            "team/app",
            &digest(&sample.subject.digest),
            None,
        )
        .await
        .unwrap();
    assert!(list.descriptors.is_empty());
    assert_eq!(list.source, ReferrersSource::None);
    // An unknown repository too.
    let list = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), None),
            "nobody/here",
            &digest(&sample.subject.digest),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::None);
}

#[tokio::test]
async fn distribution_behind_htpasswd_needs_credentials_bound_to_its_host() {
    let upstream = DockerRegistry::start_with_htpasswd("alice", "s3cret");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let sample = Pusher::new(&upstream.url())
        .with_authorization(&format!("Basic {basic}"))
        .push_sample("team/app", true)
        .await;
    let subject = digest(&sample.subject.digest);
    let credentials = |bound_host: String| {
        Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
            bound_host,
        })
    };
    let recorder = Arc::new(Recorder::default());

    let list = client(&recorder)
        .list_referrers(
            &registry(
                &upstream.url(),
                credentials(format!("127.0.0.1:{}", upstream.port)),
            ),
            "team/app",
            &subject,
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::FallbackTag);
    assert_eq!(listed(&list), pushed(&sample));

    // Bound to another host: not sent, so the registry refuses.
    let refused = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), credentials("registry.example".into())),
            "team/app",
            &subject,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        UpstreamError::Auth(AuthError::Denied { status: 401 })
    );

    let wrong = client(&recorder)
        .list_referrers(
            &registry(
                &upstream.url(),
                Some(Credentials {
                    username: "alice".into(),
                    password: "wrong".into(),
                    bound_host: format!("127.0.0.1:{}", upstream.port),
                }),
            ),
            "team/app",
            &subject,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.step(), "auth");
}

#[tokio::test]
async fn a_manifest_is_read_by_digest_with_the_registrys_credentials_within_its_bound() {
    let upstream = DockerRegistry::start_with_htpasswd("alice", "s3cret");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let sample = Pusher::new(&upstream.url())
        .with_authorization(&format!("Basic {basic}"))
        .push_sample("team/app", false)
        .await;
    let registry = registry(
        &upstream.url(),
        Some(Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
            bound_host: format!("127.0.0.1:{}", upstream.port),
        }),
    );
    let signature = &sample.referrers[0];
    let recorder = Arc::new(Recorder::default());
    let client = client(&recorder);

    let bytes = client
        .get_manifest(&registry, "team/app", &digest(&signature.digest), 4096)
        .await
        .unwrap();
    assert_eq!(bytes.len(), signature.size);
    assert_eq!(e2e::upstreams::sha256_digest(&bytes), signature.digest);
    assert_eq!(recorder.count(RequestKind::Manifest), 1);

    // One byte over the bound: refused, nothing kept.
    let over = client
        .get_manifest(
            &registry,
            "team/app",
            &digest(&signature.digest),
            signature.size - 1,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            over,
            UpstreamError::Limit {
                kind: LimitKind::Manifest,
                ..
            }
        ),
        "{over}"
    );
    let unknown = client
        .get_manifest(
            &registry,
            "team/app",
            &digest(&format!("sha256:{}", "0".repeat(64))),
            4096,
        )
        .await
        .unwrap_err();
    assert_eq!(unknown, UpstreamError::Manifest { status: 404 });
    assert!(!unknown.counts_against_breaker());
}

#[tokio::test]
async fn distribution_behind_token_auth_is_read_with_a_bearer_token_from_its_realm() {
    use support::jwt::TokenIssuer;
    use support::{Origin, Reply};

    let issuer = std::sync::Arc::new(TokenIssuer::new("test-issuer", "test-registry"));
    let minter = std::sync::Arc::clone(&issuer);
    let realm = Origin::start(move |seen| {
        // The realm grants pull on the repository of the requested scope, to the robot only.
        if seen.authorization.as_deref() != Some("Basic cm9ib3Q6cGE1NQ==") {
            return Reply::status(401);
        }
        let scope = seen
            .query()
            .split('&')
            .find_map(|pair| pair.strip_prefix("scope="))
            .unwrap_or_default()
            .replace("%3A", ":")
            .replace("%2F", "/");
        let repository = scope
            .strip_prefix("repository:")
            .and_then(|s| s.strip_suffix(":pull"))
            .unwrap_or_default()
            .to_owned();
        Reply::json(
            200,
            &serde_json::json!({"token": minter.token(&repository, &["pull"]), "expires_in": 300}),
        )
    });
    let upstream = DockerRegistry::start_with_token_auth(
        &format!("{}/token", realm.url()),
        "test-registry",
        "test-issuer",
        &issuer.cert_pem,
    );
    let sample = Pusher::new(&upstream.url())
        .with_authorization(&format!(
            "Bearer {}",
            issuer.token("team/app", &["pull", "push"])
        ))
        .push_sample("team/app", true)
        .await;
    let recorder = Arc::new(Recorder::default());
    let credentials = Some(Credentials {
        username: "robot".into(),
        password: "pa55".into(),
        bound_host: format!("127.0.0.1:{}", upstream.port),
    });
    let list = client(&recorder)
        .list_referrers(
            &registry(&upstream.url(), credentials),
            "team/app",
            &digest(&sample.subject.digest),
            None,
        )
        .await
        .unwrap();
    assert_eq!(list.source, ReferrersSource::FallbackTag);
    assert_eq!(listed(&list), pushed(&sample));
    assert_eq!(recorder.count(RequestKind::Token), 1);
    assert_eq!(realm.requests().len(), 1);
}
