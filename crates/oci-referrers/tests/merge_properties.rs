//! Properties of merging and filtering referrers lists.

mod strategies;

use std::collections::{BTreeMap, BTreeSet};

use oci_referrers::{ArtifactType, Descriptor, Digest, filter_by_artifact_type, merge};
use proptest::prelude::*;
use strategies::{artifact_type, descriptors};

/// The first descriptor of each digest, sorted by digest: what merging a list with itself
/// must give.
fn sorted_first_occurrences(list: &[Descriptor]) -> Vec<Descriptor> {
    let mut first: BTreeMap<&Digest, &Descriptor> = BTreeMap::new();
    for descriptor in list {
        first.entry(&descriptor.digest).or_insert(descriptor);
    }
    first.into_values().cloned().collect()
}

proptest! {
    #[test]
    fn merge_has_each_input_digest_exactly_once(
        upstream in descriptors(24),
        local in descriptors(24),
    ) {
        let merged = merge(upstream.clone(), local.clone());
        let merged_digests: Vec<&Digest> = merged.iter().map(|d| &d.digest).collect();
        let unique: BTreeSet<&Digest> = merged_digests.iter().copied().collect();
        prop_assert_eq!(unique.len(), merged_digests.len());
        let inputs: BTreeSet<&Digest> =
            upstream.iter().chain(&local).map(|d| &d.digest).collect();
        prop_assert_eq!(unique, inputs);
    }

    #[test]
    fn merge_is_sorted_by_digest(upstream in descriptors(24), local in descriptors(24)) {
        let merged = merge(upstream, local);
        prop_assert!(merged.windows(2).all(|pair| pair[0].digest < pair[1].digest));
    }

    #[test]
    fn merge_is_idempotent(a in descriptors(24), b in descriptors(24)) {
        let once = merge(a, b.clone());
        prop_assert_eq!(merge(once.clone(), b), once);
    }

    #[test]
    fn merging_a_list_with_itself_sorts_and_dedups_it(x in descriptors(24)) {
        prop_assert_eq!(merge(x.clone(), x.clone()), sorted_first_occurrences(&x));
        prop_assert_eq!(merge(x.clone(), Vec::new()), sorted_first_occurrences(&x));
        prop_assert_eq!(merge(Vec::new(), x.clone()), sorted_first_occurrences(&x));
    }

    #[test]
    fn upstream_wins_on_a_shared_digest(upstream in descriptors(24), local in descriptors(24)) {
        let merged = merge(upstream.clone(), local.clone());
        for descriptor in &merged {
            let expected = upstream
                .iter()
                .find(|d| d.digest == descriptor.digest)
                .or_else(|| local.iter().find(|d| d.digest == descriptor.digest));
            prop_assert_eq!(Some(descriptor), expected);
        }
    }

    #[test]
    fn filter_keeps_exactly_the_matching_descriptors_in_order(
        list in descriptors(32),
        types in prop::collection::vec(artifact_type(), 0..3),
    ) {
        let kept = filter_by_artifact_type(list.clone(), &types);
        if types.is_empty() {
            prop_assert_eq!(kept, list);
        } else {
            let matches = |d: &Descriptor| {
                d.artifact_type()
                    .is_some_and(|kind| types.iter().any(|t: &ArtifactType| t.as_str() == kind))
            };
            prop_assert!(kept.iter().all(matches));
            let expected: Vec<Descriptor> = list.into_iter().filter(|d| matches(d)).collect();
            prop_assert_eq!(kept, expected);
        }
    }
}
