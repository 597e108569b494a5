//! Properties of the prepared path: the same answers, byte for byte, as merging, filtering and
//! encoding typed descriptors.

mod strategies;

use oci_referrers::{
    ArtifactType, Descriptor, Digest, PageLimit, PreparedList, encode_page, encode_prepared_page,
    filter_by_artifact_type, merge,
};
use proptest::prelude::*;
use strategies::{artifact_type, descriptors, rich_descriptor, rich_descriptors};

/// Enough pages for any list generated here; more means the cursor stopped advancing.
const MAX_PAGES: usize = 1_000;

fn limit() -> impl Strategy<Value = PageLimit> {
    prop_oneof![
        (0usize..8).prop_map(PageLimit::Count),
        (0usize..4_000).prop_map(PageLimit::Bytes),
        (0usize..8, 0usize..4_000)
            .prop_map(|(count, bytes)| PageLimit::CountWithin { count, bytes }),
    ]
}

/// Rich upstream descriptors and cheap local ones, sharing digests from one small pool.
fn lists() -> impl Strategy<Value = (Vec<Descriptor>, Vec<Descriptor>)> {
    (
        prop_oneof![rich_descriptors(20), descriptors(20)],
        prop_oneof![
            descriptors(10),
            prop::collection::vec(rich_descriptor(), 0..5)
        ],
    )
}

proptest! {
    /// Every page, cursor and total of the prepared path equals today's typed path.
    #[test]
    fn prepared_pages_equal_merge_filter_encode(
        (upstream, local) in lists(),
        types in prop::collection::vec(artifact_type(), 0..3),
        limit in limit(),
        cursor in 0usize..25,
    ) {
        let merged = merge(upstream.iter(), local.iter());
        let filtered = filter_by_artifact_type(merged, &types);
        let prepared_upstream = PreparedList::new(&upstream);
        let prepared_local = PreparedList::new(&local);
        // A cursor from the list, or one that is not in it.
        let lasts: [Option<Digest>; 2] = [
            filtered.get(cursor).map(|d| d.digest.clone()),
            Some(format!("sha256:{cursor:064x}").parse().unwrap()),
        ];
        for last in [None].iter().chain(&lasts) {
            let expected = encode_page(&filtered, last.as_ref(), limit);
            let page = encode_prepared_page(
                &prepared_upstream, &prepared_local, &types, last.as_ref(), limit,
            );
            prop_assert_eq!(&page.body[..], &expected.body[..]);
            prop_assert_eq!(page.count, expected.count);
            prop_assert_eq!(&page.next, &expected.next);
            prop_assert_eq!(page.total, filtered.len());
        }
    }

    /// Following the cursor serves the whole filtered merged list exactly once.
    #[test]
    fn prepared_pages_concatenate_to_the_whole_list(
        (upstream, local) in lists(),
        types in prop::collection::vec(artifact_type(), 0..2),
        limit in limit(),
    ) {
        let expected = filter_by_artifact_type(merge(upstream.iter(), local.iter()), &types);
        let (upstream, local) = (PreparedList::new(&upstream), PreparedList::new(&local));
        let mut served: Vec<Descriptor> = Vec::new();
        let mut last: Option<Digest> = None;
        for _ in 0..MAX_PAGES {
            let page = encode_prepared_page(&upstream, &local, &types, last.as_ref(), limit);
            let body: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
            let items: Vec<Descriptor> =
                serde_json::from_value(body["manifests"].clone()).unwrap();
            prop_assert_eq!(items.len(), page.count);
            if let PageLimit::Bytes(bytes) | PageLimit::CountWithin { bytes, .. } = limit {
                prop_assert!(page.count <= 1 || page.body.len() <= bytes);
            }
            if let PageLimit::Count(count) | PageLimit::CountWithin { count, .. } = limit {
                prop_assert!(page.count <= count.max(1));
            }
            served.extend(items);
            last = page.next;
            if last.is_none() {
                break;
            }
        }
        prop_assert!(last.is_none(), "paging did not finish");
        let expected: Vec<Descriptor> = expected.into_iter().cloned().collect();
        prop_assert_eq!(served, expected);
    }

    /// The prepared list is the sorted, deduplicated list, and its stored form reads back.
    #[test]
    fn prepared_list_is_the_merged_list_and_round_trips(list in rich_descriptors(20)) {
        let prepared = PreparedList::new(&list);
        let sorted: Vec<Descriptor> = merge(list.iter(), []).into_iter().cloned().collect();
        prop_assert_eq!(prepared.descriptors(), sorted.clone());
        for (view, descriptor) in prepared.iter().zip(&sorted) {
            prop_assert_eq!(view.digest, descriptor.digest.as_str().as_bytes());
            prop_assert_eq!(view.json, serde_json::to_vec(descriptor).unwrap());
            let wanted: Vec<ArtifactType> =
                descriptor.artifact_type().and_then(|t| t.parse().ok()).into_iter().collect();
            prop_assert!(wanted.is_empty() || view.matches(&wanted));
        }
        prop_assert_eq!(PreparedList::from_stored(&prepared.to_stored()), Ok(prepared));
    }
}
