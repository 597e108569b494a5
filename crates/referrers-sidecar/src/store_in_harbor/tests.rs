//! Offering lists to store in Harbor: once per fetched list and subject, only listed artifact
//! types, nothing for a project known not to store, nothing from a list the cache does not
//! keep, a budget per subject, and a full queue that drops without forgetting to retry.

use std::collections::BTreeMap;

use harbor_client::Project;
use registry_client::{ReferrersSource, Registry, RegistryKind};

use super::*;
use crate::cache::CachedList;
use crate::outcome::CacheResult;

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
    store_with(queue_size, 32)
}

/// A store whose subjects take `max_per_subject` referrers each.
fn store_with(queue_size: usize, max_per_subject: u32) -> (StoreInHarbor, mpsc::Receiver<Job>) {
    let (jobs, receiver) = mpsc::channel(queue_size);
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let remember_for = Duration::from_secs(3600);
    let store = StoreInHarbor {
        jobs,
        artifact_types: crate::config::StoreSettings::default().parsed_artifact_types(),
        memory: Memory {
            remembered: Remembered::new(),
            budgets: Budgets::new(max_per_subject, remember_for),
            remember_for,
            metrics: Arc::clone(&metrics),
        },
        offered_lists: offered_lists(remember_for),
        serving: Arc::new(Serving::new(
            crate::config::ProjectsSettings::default(),
            BTreeMap::new(),
            Duration::from_secs(30),
            metrics,
        )),
    };
    (store, receiver)
}

/// A store whose queue is full already: each referrer walked is counted as dropped.
fn full_store() -> (StoreInHarbor, mpsc::Receiver<Job>) {
    let (store, jobs) = store(1);
    let waiting = Job {
        key: "hub/team/other@waiting".into(),
        subject_key: "hub/team/other@subject".into(),
        project: "hub".into(),
        repository: "hub/team/other".parse().unwrap(),
        listed: Listed {
            digest: sha256('0'),
            subject: sha256('9'),
            artifact_type: "application/spdx+json".parse().unwrap(),
        },
        target: target(),
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
        kept: true,
    }
}

fn sha256(digit: char) -> Digest {
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
    offer(&store, "hub/team/app", &sha256('1'), &hit).await;
    assert_eq!(dropped(&store), 1);
    offer(&store, "hub/team/app", &sha256('1'), &hit).await;
    assert_eq!(dropped(&store), 1, "the same fetch is not walked again");
}

#[tokio::test]
async fn a_list_fetched_again_is_walked_again() {
    let (store, _jobs) = full_store();
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0)).await;
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0)).await;
    assert_eq!(dropped(&store), 1);
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0 + 60_000)).await;
    assert_eq!(dropped(&store), 2, "a refreshed list is offered");
}

#[tokio::test]
async fn another_subjects_list_is_walked() {
    let (store, _jobs) = full_store();
    let hit = signed(T0);
    offer(&store, "hub/team/app", &sha256('1'), &hit).await;
    offer(&store, "hub/team/app", &sha256('1'), &hit).await;
    assert_eq!(dropped(&store), 1);
    // Another digest in the same repository, and the same digest in another repository.
    offer(&store, "hub/team/app", &sha256('2'), &hit).await;
    assert_eq!(dropped(&store), 2);
    offer(&store, "hub/team/web", &sha256('1'), &hit).await;
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
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0)).await;
    assert!(
        jobs.try_recv().is_err(),
        "no job for the worker to turn down"
    );
    let referrer = format!("hub/team/app@sha256:{}", "a".repeat(64));
    assert_eq!(store.memory.remembered.0.get(&referrer).await, None);
    assert_eq!(
        store
            .offered_lists
            .get(&format!("hub/team/app@{}", sha256('1')))
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
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0)).await;
    assert_eq!(jobs.try_recv().unwrap().key, referrer);
}

#[tokio::test]
async fn a_project_whose_facts_are_not_at_hand_is_left_to_the_worker() {
    let (store, mut jobs) = store(10);
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0)).await;
    let job = jobs.try_recv().unwrap();
    assert_eq!(job.project, "hub");
    assert_eq!(job.listed.digest, sha256('a'));
    assert_eq!(job.listed.subject, sha256('1'));
    assert_eq!(
        job.listed.artifact_type.as_str(),
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    assert_eq!(job.subject_key, format!("hub/team/app@{}", sha256('1')));
}

fn dropped(store: &StoreInHarbor) -> u64 {
    counted(store, PullResult::Dropped)
}

fn counted(store: &StoreInHarbor, result: PullResult) -> u64 {
    store
        .memory
        .metrics
        .store_pulls
        .with_label_values(&[result.as_str()])
        .get()
}

/// `list` of a subject in `hub/team/app` of project `hub`, fetched from [`target`].
async fn offer_list(store: &StoreInHarbor, subject: &Digest, list: &PreparedList) {
    let repository: RepositoryName = "hub/team/app".parse().unwrap();
    let target = target();
    let offered = Offered {
        project: "hub",
        repository: &repository,
        subject,
        target: &target,
    };
    store.offer_list(&offered, list).await;
}

#[tokio::test]
async fn listed_types_are_queued_once_and_a_full_queue_drops_without_forgetting_to_retry() {
    let (store, mut jobs) = store(1);
    let referrers = list(&[
        ('a', Some("application/vnd.dev.cosign.artifact.sig.v1+json")),
        ('b', Some("application/spdx+json")),
        ('c', Some("application/vnd.example.other")),
        ('d', None),
    ]);

    offer_list(&store, &sha256('1'), &referrers).await;
    let first = jobs.try_recv().unwrap();
    assert_eq!(first.listed.digest, sha256('a'));
    assert_eq!(first.key, format!("hub/team/app@{}", first.listed.digest));
    assert_eq!(
        (first.project.as_str(), first.target.registry.name.as_str()),
        ("hub", "dockerhub")
    );
    assert!(jobs.try_recv().is_err(), "the SBOM found the queue full");
    assert_eq!(dropped(&store), 1);

    // Offered again: the signature is remembered, the dropped SBOM goes now.
    offer_list(&store, &sha256('1'), &referrers).await;
    let second = jobs.try_recv().unwrap();
    assert_eq!(second.listed.digest, sha256('b'));
    assert_eq!(
        second.listed.artifact_type.as_str(),
        "application/spdx+json"
    );
    assert!(jobs.try_recv().is_err());
    offer_list(&store, &sha256('1'), &referrers).await;
    assert!(jobs.try_recv().is_err(), "each digest once");
    assert_eq!(dropped(&store), 1);
}

#[tokio::test]
async fn no_artifact_types_means_no_pulls() {
    let (mut store, mut jobs) = store(10);
    store.artifact_types.clear();
    let referrers = list(&[('a', Some("application/spdx+json")), ('b', None)]);
    offer_list(&store, &sha256('1'), &referrers).await;
    assert!(jobs.try_recv().is_err());
}

/// An answer whose list the cache does not keep: cut short (`truncated`), or over
/// `cache.max_entry_bytes` (served as `api`).
fn unkept(upstream: UpstreamResult) -> UpstreamAnswer {
    let mut answer = signed(T0);
    let storable = list(&[
        ('a', Some("application/vnd.dev.cosign.artifact.sig.v1+json")),
        ('b', Some("application/spdx+json")),
        ('c', Some("application/vnd.example.other")),
    ]);
    answer.list = Some(Arc::new(CachedList {
        fetched_at_ms: T0,
        source: ReferrersSource::Api,
        tag_digest: None,
        descriptors: storable,
    }));
    answer.upstream = upstream;
    answer.cache = CacheResult::Miss;
    answer.kept = false;
    answer
}

#[tokio::test]
async fn a_list_cut_short_or_too_large_to_cache_stores_nothing_and_each_referrer_is_counted() {
    let (store, mut jobs) = store(10);
    offer(
        &store,
        "hub/team/app",
        &sha256('1'),
        &unkept(UpstreamResult::Truncated),
    )
    .await;
    assert!(jobs.try_recv().is_err(), "nothing queued");
    assert_eq!(
        counted(&store, PullResult::TruncatedList),
        2,
        "of storable types"
    );
    offer(
        &store,
        "hub/team/app",
        &sha256('2'),
        &unkept(UpstreamResult::Api),
    )
    .await;
    assert!(jobs.try_recv().is_err());
    assert_eq!(counted(&store, PullResult::OversizeList), 2);
    // Nothing was remembered: the same referrers in a whole list are offered.
    offer(&store, "hub/team/app", &sha256('1'), &signed(T0 + 1)).await;
    assert_eq!(jobs.try_recv().unwrap().listed.digest, sha256('a'));
}

#[tokio::test]
async fn a_subject_takes_its_budget_of_referrers_and_the_rest_is_counted_once_each() {
    let (store, mut jobs) = store_with(10, 2);
    let cosign = Some("application/vnd.dev.cosign.artifact.sig.v1+json");
    let referrers = list(&[('a', cosign), ('b', cosign), ('c', cosign), ('d', cosign)]);
    offer_list(&store, &sha256('1'), &referrers).await;
    let queued: Vec<Digest> = std::iter::from_fn(|| jobs.try_recv().ok())
        .map(|job| job.listed.digest)
        .collect();
    assert_eq!(queued, [sha256('a'), sha256('b')]);
    assert_eq!(counted(&store, PullResult::SubjectBudget), 2);
    // The same list again: the refused ones are remembered, not counted again.
    offer_list(&store, &sha256('1'), &referrers).await;
    assert!(jobs.try_recv().is_err());
    assert_eq!(counted(&store, PullResult::SubjectBudget), 2);
    // Another subject has a budget of its own.
    offer_list(&store, &sha256('2'), &list(&[('e', cosign)])).await;
    assert_eq!(jobs.try_recv().unwrap().listed.digest, sha256('e'));
}

#[tokio::test]
async fn a_dropped_referrer_gives_its_subjects_place_back() {
    let (store, _jobs) = full_store();
    let cosign = Some("application/vnd.dev.cosign.artifact.sig.v1+json");
    offer_list(&store, &sha256('1'), &list(&[('a', cosign)])).await;
    assert_eq!(dropped(&store), 1);
    let subject_key = format!("hub/team/app@{}", sha256('1'));
    for _ in 0..32 {
        assert!(store.memory.budgets.take(&subject_key).await);
    }
    assert!(!store.memory.budgets.take(&subject_key).await);
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
