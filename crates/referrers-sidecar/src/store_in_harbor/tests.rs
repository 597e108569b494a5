//! Offering lists to store in Harbor: once per fetched list and subject, only listed artifact
//! types, nothing for a project known not to store, and a full queue that drops without
//! forgetting to retry.

use std::collections::BTreeMap;

use harbor_client::Project;
use registry_client::{ReferrersSource, Registry, RegistryKind};

use super::*;
use crate::cache::CachedList;
use crate::outcome::{CacheResult, UpstreamResult};

/// When the first list was fetched, in milliseconds since the epoch.
const T0: u64 = 1_700_000_000_000;

fn list(types: &[(char, Option<&str>)]) -> PreparedList {
    let manifests: Vec<serde_json::Value> = types
        .iter()
        .map(|(digit, artifact_type)| {
            let mut descriptor = serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", digit.to_string().repeat(64)),
                "size": 10,
            });
            if let Some(artifact_type) = artifact_type {
                descriptor["artifactType"] = serde_json::json!(artifact_type);
            }
            descriptor
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    let decoded = oci_referrers::decode_index(index.to_string().as_bytes()).unwrap();
    PreparedList::new(&decoded.descriptors)
}

fn store(queue_size: usize) -> (StoreInHarbor, mpsc::Receiver<Job>) {
    let (jobs, receiver) = mpsc::channel(queue_size);
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let store = StoreInHarbor {
        jobs,
        artifact_types: crate::config::StoreSettings::default().parsed_artifact_types(),
        remembered: Remembered::new(),
        remember_for: Duration::from_secs(3600),
        offered_lists: offered_lists(Duration::from_secs(3600)),
        serving: Arc::new(Serving::new(
            crate::config::ProjectsSettings::default(),
            BTreeMap::new(),
            Duration::from_secs(30),
            Arc::clone(&metrics),
        )),
        metrics,
    };
    (store, receiver)
}

/// A store whose queue is full already: each referrer walked is counted as dropped.
fn full_store() -> (StoreInHarbor, mpsc::Receiver<Job>) {
    let (store, jobs) = store(1);
    let waiting = Job {
        key: "hub/team/other@waiting".into(),
        project: "hub".into(),
        repository: "hub/team/other".parse().unwrap(),
        digest: format!("sha256:{}", "0".repeat(64)).parse().unwrap(),
        registry: "dockerhub".into(),
    };
    store.jobs.try_send(waiting).unwrap();
    (store, jobs)
}

fn target() -> UpstreamTarget {
    UpstreamTarget::new(
        Registry {
            name: "dockerhub".into(),
            base_url: "https://registry.example/".parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: false,
            credentials: None,
        },
        "team/app".into(),
        false,
    )
}

/// A cache hit serving one signature fetched at `fetched_at_ms`.
fn signed(fetched_at_ms: u64) -> UpstreamAnswer {
    let list = CachedList {
        fetched_at_ms,
        source: ReferrersSource::Api,
        tag_digest: None,
        descriptors: list(&[('a', Some("application/vnd.dev.cosign.artifact.sig.v1+json"))]),
    };
    UpstreamAnswer {
        list: Some(Arc::new(list)),
        upstream: UpstreamResult::Api,
        cache: CacheResult::Hit,
    }
}

fn subject(digit: char) -> Digest {
    format!("sha256:{}", digit.to_string().repeat(64))
        .parse()
        .unwrap()
}

async fn offer(store: &StoreInHarbor, name: &str, subject: &Digest, answer: &UpstreamAnswer) {
    store
        .offer(&name.parse().unwrap(), subject, &target(), answer)
        .await;
}

#[tokio::test]
async fn the_same_list_served_twice_is_walked_once() {
    let (store, _jobs) = full_store();
    let hit = signed(T0);
    offer(&store, "hub/team/app", &subject('1'), &hit).await;
    assert_eq!(dropped(&store), 1);
    offer(&store, "hub/team/app", &subject('1'), &hit).await;
    assert_eq!(dropped(&store), 1, "the same fetch is not walked again");
}

#[tokio::test]
async fn a_list_fetched_again_is_walked_again() {
    let (store, _jobs) = full_store();
    offer(&store, "hub/team/app", &subject('1'), &signed(T0)).await;
    offer(&store, "hub/team/app", &subject('1'), &signed(T0)).await;
    assert_eq!(dropped(&store), 1);
    offer(&store, "hub/team/app", &subject('1'), &signed(T0 + 60_000)).await;
    assert_eq!(dropped(&store), 2, "a refreshed list is offered");
}

#[tokio::test]
async fn another_subjects_list_is_walked() {
    let (store, _jobs) = full_store();
    let hit = signed(T0);
    offer(&store, "hub/team/app", &subject('1'), &hit).await;
    offer(&store, "hub/team/app", &subject('1'), &hit).await;
    assert_eq!(dropped(&store), 1);
    // Another digest in the same repository, and the same digest in another repository.
    offer(&store, "hub/team/app", &subject('2'), &hit).await;
    assert_eq!(dropped(&store), 2);
    offer(&store, "hub/team/web", &subject('1'), &hit).await;
    assert_eq!(dropped(&store), 3);
}

#[tokio::test]
async fn a_project_known_not_to_store_is_offered_nothing_and_nothing_is_remembered() {
    let (store, mut jobs) = store(10);
    let proxy = || Project::new(4, "hub".into(), Some(2), BTreeMap::new());
    store
        .serving
        .facts()
        .remember("hub", Some(proxy()), Some(&["referrers-proxy"]))
        .await;
    offer(&store, "hub/team/app", &subject('1'), &signed(T0)).await;
    assert!(
        jobs.try_recv().is_err(),
        "no job for the worker to turn down"
    );
    let referrer = format!("hub/team/app@sha256:{}", "a".repeat(64));
    assert_eq!(store.remembered.0.get(&referrer).await, None);
    assert_eq!(
        store
            .offered_lists
            .get(&format!("hub/team/app@{}", subject('1')))
            .await,
        None
    );

    // The project admin adds the store label: the very same list is offered now.
    store
        .serving
        .facts()
        .remember(
            "hub",
            Some(proxy()),
            Some(&["referrers-proxy", "referrers-proxy-store"]),
        )
        .await;
    offer(&store, "hub/team/app", &subject('1'), &signed(T0)).await;
    assert_eq!(jobs.try_recv().unwrap().key, referrer);
}

#[tokio::test]
async fn a_project_whose_facts_are_not_at_hand_is_left_to_the_worker() {
    let (store, mut jobs) = store(10);
    offer(&store, "hub/team/app", &subject('1'), &signed(T0)).await;
    let job = jobs.try_recv().unwrap();
    assert_eq!(job.project, "hub");
    assert_eq!(job.digest.as_str(), format!("sha256:{}", "a".repeat(64)));
}

fn dropped(store: &StoreInHarbor) -> u64 {
    store
        .metrics
        .store_pulls
        .with_label_values(&[PullResult::Dropped.as_str()])
        .get()
}

#[tokio::test]
async fn listed_types_are_queued_once_and_a_full_queue_drops_without_forgetting_to_retry() {
    let (store, mut jobs) = store(1);
    let repository: RepositoryName = "hub/team/app".parse().unwrap();
    let referrers = list(&[
        ('a', Some("application/vnd.dev.cosign.artifact.sig.v1+json")),
        ('b', Some("application/spdx+json")),
        ('c', Some("application/vnd.example.other")),
        ('d', None),
    ]);

    store
        .offer_list("hub", &repository, "dockerhub", &referrers)
        .await;
    let first = jobs.try_recv().unwrap();
    assert_eq!(first.digest.as_str(), format!("sha256:{}", "a".repeat(64)));
    assert_eq!(first.key, format!("hub/team/app@{}", first.digest));
    assert_eq!(
        (first.project.as_str(), first.registry.as_str()),
        ("hub", "dockerhub")
    );
    assert!(jobs.try_recv().is_err(), "the SBOM found the queue full");
    assert_eq!(dropped(&store), 1);

    // Offered again: the signature is remembered, the dropped SBOM goes now.
    store
        .offer_list("hub", &repository, "dockerhub", &referrers)
        .await;
    let second = jobs.try_recv().unwrap();
    assert_eq!(second.digest.as_str(), format!("sha256:{}", "b".repeat(64)));
    assert!(jobs.try_recv().is_err());
    store
        .offer_list("hub", &repository, "dockerhub", &referrers)
        .await;
    assert!(jobs.try_recv().is_err(), "each digest once");
    assert_eq!(dropped(&store), 1);
}

#[tokio::test]
async fn no_artifact_types_means_no_pulls() {
    let (mut store, mut jobs) = store(10);
    store.artifact_types.clear();
    let repository: RepositoryName = "hub/team/app".parse().unwrap();
    let referrers = list(&[('a', Some("application/spdx+json")), ('b', None)]);
    store
        .offer_list("hub", &repository, "dockerhub", &referrers)
        .await;
    assert!(jobs.try_recv().is_err());
}

#[tokio::test]
async fn keeping_a_digest_anew_replaces_its_lifetime() {
    let remembered = Remembered::new();
    assert!(remembered.insert_new("k", Duration::from_secs(3600)).await);
    assert!(!remembered.insert_new("k", Duration::from_secs(3600)).await);
    // A lifetime that has run out at once: offered again with the next list.
    remembered.keep("k", Duration::ZERO).await;
    assert!(remembered.insert_new("k", Duration::from_secs(3600)).await);
}
