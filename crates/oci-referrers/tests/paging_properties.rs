//! Properties of paging: whole lists exactly once, even while the list changes.

mod strategies;

use std::collections::{BTreeMap, BTreeSet};

use oci_referrers::{
    Descriptor, Digest, Page, PageLimit, encode_index, encode_page, merge, paginate,
};
use proptest::prelude::*;
use strategies::{descriptor_with, descriptors, fresh_digest, rich_descriptors};

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

/// All pages of a fixed list, in order.
fn all_pages(sorted: &[Descriptor], limit: PageLimit) -> Vec<Page<'_>> {
    let mut pages = Vec::new();
    let mut last: Option<Digest> = None;
    loop {
        assert!(pages.len() < MAX_PAGES, "paging does not terminate");
        let page = paginate(sorted, last.as_ref(), limit);
        last.clone_from(&page.next);
        pages.push(page);
        if last.is_none() {
            return pages;
        }
    }
}

/// What happens to the list between two page requests.
#[derive(Debug, Clone)]
struct Change {
    inserted: Vec<Descriptor>,
    removed: Vec<prop::sample::Index>,
}

fn change() -> impl Strategy<Value = Change> {
    (
        prop::collection::vec(descriptor_with(fresh_digest()), 0..3),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    )
        .prop_map(|(inserted, removed)| Change { inserted, removed })
}

proptest! {
    #[test]
    fn pages_concatenate_to_the_whole_list(list in descriptors(40), limit in limit()) {
        let sorted = merge(list, Vec::new());
        let pages = all_pages(&sorted, limit);
        let served: Vec<Descriptor> =
            pages.iter().flat_map(|page| page.items.iter().cloned()).collect();
        prop_assert_eq!(&served, &sorted);
        // Only the last page may be empty, and only when the list is.
        for page in &pages[..pages.len() - 1] {
            prop_assert!(!page.items.is_empty());
            prop_assert_eq!(page.next.as_ref(), page.items.last().map(|d| &d.digest));
        }
    }

    #[test]
    fn pages_respect_their_limit(list in descriptors(40), limit in limit()) {
        let sorted = merge(list, Vec::new());
        for page in all_pages(&sorted, limit) {
            let (count, bytes) = match limit {
                PageLimit::Count(n) => (n, usize::MAX),
                PageLimit::Bytes(budget) => (usize::MAX, budget),
                PageLimit::CountWithin { count, bytes } => (count, bytes),
            };
            prop_assert!(page.items.len() <= count.max(1));
            prop_assert!(page.items.len() <= 1 || encode_index(page.items).len() <= bytes);
        }
    }

    #[test]
    fn byte_pages_are_as_full_as_the_budget_allows(list in descriptors(40), budget in 0usize..4_000) {
        let sorted = merge(list, Vec::new());
        let mut last: Option<Digest> = None;
        for _ in 0..MAX_PAGES {
            let page = paginate(&sorted, last.as_ref(), PageLimit::Bytes(budget));
            let start = last
                .as_ref()
                .map_or(0, |last| sorted.partition_point(|d| d.digest <= *last));
            let end = start + page.items.len();
            if end < sorted.len() && !page.items.is_empty() {
                prop_assert!(encode_index(&sorted[start..=end]).len() > budget);
            }
            last = page.next;
            if last.is_none() {
                break;
            }
        }
    }

    #[test]
    fn changes_between_pages_never_repeat_or_skip_unchanged_referrers(
        initial in descriptors(30),
        changes in prop::collection::vec(change(), 0..40),
        limit in limit(),
    ) {
        let mut current: BTreeMap<Digest, Descriptor> =
            initial.into_iter().map(|d| (d.digest.clone(), d)).collect();
        // Digests present from the first request to the last.
        let mut unchanged: BTreeSet<Digest> = current.keys().cloned().collect();
        let mut served: Vec<Digest> = Vec::new();
        let mut last: Option<Digest> = None;
        let mut changes = changes.into_iter();
        for _ in 0..MAX_PAGES {
            let sorted: Vec<Descriptor> = current.values().cloned().collect();
            let page = paginate(&sorted, last.as_ref(), limit);
            served.extend(page.items.iter().map(|d| d.digest.clone()));
            last = page.next;
            if last.is_none() {
                break;
            }
            if let Some(change) = changes.next() {
                for index in change.removed {
                    if current.is_empty() {
                        break;
                    }
                    let victim = current.keys().nth(index.index(current.len())).cloned();
                    if let Some(victim) = victim {
                        current.remove(&victim);
                        unchanged.remove(&victim);
                    }
                }
                for descriptor in change.inserted {
                    unchanged.remove(&descriptor.digest);
                    current.insert(descriptor.digest.clone(), descriptor);
                }
            }
        }
        prop_assert!(last.is_none(), "paging did not finish");
        let unique: BTreeSet<&Digest> = served.iter().collect();
        prop_assert_eq!(unique.len(), served.len(), "a referrer was served twice");
        for digest in &unchanged {
            prop_assert!(served.contains(digest), "unchanged {} was skipped", digest);
        }
    }
}

proptest! {
    /// The one-pass encoder gives exactly the bytes, size and cursor of `paginate` + encode.
    #[test]
    fn encode_page_equals_paginate_then_encode(
        list in rich_descriptors(20).prop_map(|list| merge(list, Vec::new())),
        count in 1usize..8,
        budget in 0usize..3000,
        cursor in 0usize..10,
    ) {
        let last = list.get(cursor).map(|d| d.digest.clone());
        for limit in [
            PageLimit::Count(count),
            PageLimit::Bytes(budget),
            PageLimit::CountWithin { count, bytes: budget },
        ] {
            let page = paginate(&list, last.as_ref(), limit);
            let encoded = encode_page(&list, last.as_ref(), limit);
            prop_assert_eq!(&encoded.body, &encode_index(page.items));
            prop_assert_eq!(encoded.count, page.items.len());
            prop_assert_eq!(&encoded.next, &page.next);
            let refs: Vec<&Descriptor> = list.iter().collect();
            prop_assert_eq!(encode_page(&refs, last.as_ref(), limit), encoded);
        }
    }
}
