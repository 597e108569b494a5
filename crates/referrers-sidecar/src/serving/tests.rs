//! The serving decision under Harbor's facts as if read: the switches, the reasons, storing.

use std::collections::BTreeMap;

use super::*;
use crate::metrics::Metrics;

fn proxy(name: &str) -> Project {
    Project::new(4, name.into(), Some(2), BTreeMap::new())
}

fn toggle(enabled: &[&str], label: Option<&str>) -> ProjectsSettings {
    ProjectsSettings {
        enabled: enabled.iter().map(|p| (*p).to_owned()).collect(),
        label: label.map(str::to_owned),
        ..ProjectsSettings::default()
    }
}

fn serving(projects: ProjectsSettings) -> Serving {
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    Serving::new(projects, BTreeMap::new(), Duration::from_secs(30), metrics)
}

/// The decision from the facts at hand only, as a reason code (`served` when served).
async fn peeked(serving: &Serving, name: &str) -> Option<&'static str> {
    match serving.project(Read::Peek, name).await {
        Ok(Ok(_)) => Some("served"),
        Ok(Err(reason)) => Some(PassThrough::Project(reason).code()),
        Err(FactsError::NotAtHand) => None,
        Err(FactsError::Harbor(error)) => panic!("a peek asked Harbor: {error}"),
    }
}

#[tokio::test]
async fn the_label_serves_a_proxy_cache_project_the_list_does_not_name() {
    let serving = serving(toggle(&["other"], Some("referrers-proxy")));
    let facts = serving.facts();
    facts
        .remember("hub", Some(proxy("hub")), Some(&["referrers-proxy"]))
        .await;
    assert_eq!(peeked(&serving, "hub").await, Some("served"));
    assert_eq!(serving.switch("hub"), Switch::Label);
    match serving.project(Read::Peek, "hub").await {
        Ok(Ok(served)) => assert_eq!(served.registry_id, 2),
        other => panic!("{other:?}"),
    }

    facts.remember("hub", Some(proxy("hub")), Some(&[])).await;
    assert_eq!(peeked(&serving, "hub").await, Some("not_enabled"));

    let local = Project::new(4, "lib".into(), None, BTreeMap::new());
    facts
        .remember("lib", Some(local), Some(&["referrers-proxy"]))
        .await;
    assert_eq!(peeked(&serving, "lib").await, Some("not_proxy_cache"));

    let mut merging = proxy("merging");
    merging
        .metadata
        .insert("proxy_referrer_api".into(), "true".into());
    facts
        .remember("merging", Some(merging), Some(&["referrers-proxy"]))
        .await;
    assert_eq!(peeked(&serving, "merging").await, Some("harbor_merges"));

    facts.remember("gone", None, None).await;
    assert_eq!(peeked(&serving, "gone").await, Some("unknown_project"));

    let [config, label] = serving.served_projects().await;
    assert_eq!((config, label), ((Switch::Config, 0), (Switch::Label, 1)));
}

#[tokio::test]
async fn a_peek_needs_every_fact_the_decision_reads() {
    // The label mechanism on: the project, then its labels, are needed.
    let by_label = serving(toggle(&[], Some("referrers-proxy")));
    assert_eq!(peeked(&by_label, "hub").await, None);
    by_label
        .facts()
        .remember("hub", Some(proxy("hub")), None)
        .await;
    assert_eq!(peeked(&by_label, "hub").await, None);

    // Named by the configuration: the project alone, and no label is read.
    let listed = serving(toggle(&["hub"], Some("referrers-proxy")));
    listed
        .facts()
        .remember("hub", Some(proxy("hub")), None)
        .await;
    assert_eq!(peeked(&listed, "hub").await, Some("served"));
    assert_eq!(listed.switch("hub"), Switch::Config);

    // Neither the list nor a label can switch it on: nothing needed.
    let off = serving(toggle(&["other"], None));
    assert_eq!(peeked(&off, "hub").await, Some("not_enabled"));
}

#[tokio::test]
async fn storing_is_told_from_cached_facts_only_when_all_are_at_hand() {
    let by_label = ProjectsSettings::default();
    assert_eq!(
        by_label.store_label.as_deref(),
        Some("referrers-proxy-store")
    );
    async fn stores(serving: &Serving, name: &str) -> Option<bool> {
        match serving.stores(Read::Peek, name).await {
            Ok(stores) => Some(stores),
            Err(FactsError::NotAtHand) => None,
            Err(FactsError::Harbor(error)) => panic!("{error}"),
        }
    }
    // The configuration decides alone: no fact needed.
    let listed = serving(ProjectsSettings {
        store_in_harbor: vec!["hub".into()],
        ..ProjectsSettings::default()
    });
    assert_eq!(stores(&listed, "hub").await, Some(true));
    let off = serving(ProjectsSettings {
        store_label: None,
        ..ProjectsSettings::default()
    });
    assert_eq!(stores(&off, "hub").await, Some(false));

    // Nothing read from Harbor yet, then the project but not its labels: not known.
    let serving = serving(by_label);
    let facts = serving.facts();
    assert_eq!(stores(&serving, "hub").await, None);
    facts.remember("hub", Some(proxy("hub")), None).await;
    assert_eq!(stores(&serving, "hub").await, None);
    // Its labels listed: the store label decides.
    facts
        .remember("hub", Some(proxy("hub")), Some(&["referrers-proxy"]))
        .await;
    assert_eq!(stores(&serving, "hub").await, Some(false));
    facts
        .remember(
            "hub",
            Some(proxy("hub")),
            Some(&["referrers-proxy", "referrers-proxy-store"]),
        )
        .await;
    assert_eq!(stores(&serving, "hub").await, Some(true));

    // A project Harbor does not know, or not a proxy-cache project, never stores.
    facts.remember("gone", None, None).await;
    assert_eq!(stores(&serving, "gone").await, Some(false));
    let local = Project::new(5, "lib".into(), None, BTreeMap::new());
    facts.remember("lib", Some(local), None).await;
    assert_eq!(stores(&serving, "lib").await, Some(false));
}

#[test]
fn a_label_is_read_only_when_the_mechanism_is_on_and_the_list_does_not_name_the_project() {
    let label = |enabled: &[&str], label: Option<&str>| {
        serving(toggle(enabled, label))
            .label_to_read("hub")
            .map(str::to_owned)
    };
    assert_eq!(
        label(&["other"], Some("referrers-proxy")).as_deref(),
        Some("referrers-proxy")
    );
    assert_eq!(label(&["hub"], Some("referrers-proxy")), None);
    assert_eq!(label(&["*"], Some("referrers-proxy")), None);
    assert_eq!(label(&["other"], None), None);
}

/// The codes are what operators match on: each reason keeps its own, unchanged.
#[test]
fn every_pass_through_reason_has_its_own_stable_code() {
    let codes: Vec<&str> = [
        PassThrough::Project(NotServed::NotEnabled),
        PassThrough::Project(NotServed::UnknownProject),
        PassThrough::Project(NotServed::NotProxyCache),
        PassThrough::Project(NotServed::HarborMerges),
        PassThrough::FactsUnavailable,
        PassThrough::NoRepository,
        PassThrough::NotInAllowlist,
    ]
    .into_iter()
    .map(PassThrough::code)
    .collect();
    assert_eq!(
        codes,
        [
            "not_enabled",
            "unknown_project",
            "not_proxy_cache",
            "harbor_merges",
            "facts_unavailable",
            "no_repository",
            "not_in_allowlist",
        ]
    );
}
