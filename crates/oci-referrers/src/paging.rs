//! Cutting a sorted referrers list into pages with a `last`-digest cursor.

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::index::INDEX_ENVELOPE_LEN;

/// How big one page may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLimit {
    /// At most this many descriptors (the client's `n`).
    Count(usize),
    /// At most this many bytes of encoded index (what clients accept as one manifest).
    Bytes(usize),
}

/// One page of a sorted list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a> {
    /// The descriptors on this page, in digest order.
    pub items: &'a [Descriptor],
    /// The cursor for the next page (the digest of the last item), when more follow.
    pub next: Option<Digest>,
}

/// The page of `sorted` that starts after `last` and fits `limit`.
///
/// The cursor is a digest, not an offset: since the list is sorted by digest, a referrer
/// added or removed between two requests never makes a later page repeat or skip one that
/// was there all along. `last` need not be in the list.
///
/// A page holds at least one descriptor whenever any remain, even if that one alone is over
/// the limit: serving it is better than handing out a cursor that never advances.
///
/// `sorted` must be sorted by digest with no duplicates, as [`crate::merge::merge`] returns.
#[must_use]
pub fn paginate<'a>(sorted: &'a [Descriptor], last: Option<&Digest>, limit: PageLimit) -> Page<'a> {
    let start = last.map_or(0, |last| sorted.partition_point(|d| d.digest <= *last));
    let remaining = &sorted[start..];
    let len = match limit {
        PageLimit::Count(n) => n.max(1).min(remaining.len()),
        PageLimit::Bytes(budget) => fitting_len(remaining, budget),
    };
    let items = &remaining[..len];
    let next = if len < remaining.len() {
        items.last().map(|d| d.digest.clone())
    } else {
        None
    };
    Page { items, next }
}

/// How many leading descriptors fit in `budget` bytes of encoded index (at least one).
fn fitting_len(descriptors: &[Descriptor], budget: usize) -> usize {
    let mut used = INDEX_ENVELOPE_LEN;
    let mut count = 0;
    for descriptor in descriptors {
        let separator = usize::from(count > 0);
        let next = used + separator + descriptor.encoded_len();
        if next > budget && count > 0 {
            break;
        }
        used = next;
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::encode_index;

    fn list(chars: &str) -> Vec<Descriptor> {
        chars
            .chars()
            .map(|c| {
                let digest = format!("sha256:{}", c.to_string().repeat(64))
                    .parse()
                    .unwrap();
                Descriptor::new("application/vnd.oci.image.manifest.v1+json", digest, 1)
            })
            .collect()
    }

    fn digests(items: &[Descriptor]) -> String {
        items
            .iter()
            .map(|d| d.digest.encoded().chars().next().unwrap())
            .collect()
    }

    #[test]
    fn count_pages_follow_the_cursor() {
        let all = list("0123456");
        let first = paginate(&all, None, PageLimit::Count(3));
        assert_eq!(digests(first.items), "012");
        let second = paginate(&all, first.next.as_ref(), PageLimit::Count(3));
        assert_eq!(digests(second.items), "345");
        let third = paginate(&all, second.next.as_ref(), PageLimit::Count(3));
        assert_eq!(digests(third.items), "6");
        assert_eq!(third.next, None);
    }

    #[test]
    fn exact_fit_has_no_next() {
        let all = list("012");
        let page = paginate(&all, None, PageLimit::Count(3));
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.next, None);
    }

    #[test]
    fn last_need_not_be_in_the_list() {
        let all = list("0246");
        let absent: Digest = format!("sha256:{}", "3".repeat(64)).parse().unwrap();
        let page = paginate(&all, Some(&absent), PageLimit::Count(10));
        assert_eq!(digests(page.items), "46");
        let beyond: Digest = format!("sha256:{}", "f".repeat(64)).parse().unwrap();
        assert!(
            paginate(&all, Some(&beyond), PageLimit::Count(10))
                .items
                .is_empty()
        );
    }

    #[test]
    fn zero_count_still_advances() {
        let all = list("01");
        let page = paginate(&all, None, PageLimit::Count(0));
        assert_eq!(page.items.len(), 1);
        assert!(page.next.is_some());
    }

    #[test]
    fn byte_pages_fit_the_budget_exactly() {
        let all = list("01234");
        let two = encode_index(&all[..2]).len();
        let page = paginate(&all, None, PageLimit::Bytes(two));
        assert_eq!(page.items.len(), 2);
        assert_eq!(encode_index(page.items).len(), two);
        let page = paginate(&all, None, PageLimit::Bytes(two - 1));
        assert_eq!(page.items.len(), 1);
    }

    #[test]
    fn oversize_descriptor_is_served_alone() {
        let all = list("01");
        let page = paginate(&all, None, PageLimit::Bytes(10));
        assert_eq!(page.items.len(), 1);
        let next = paginate(&all, page.next.as_ref(), PageLimit::Bytes(10));
        assert_eq!(digests(next.items), "1");
        assert_eq!(next.next, None);
    }

    #[test]
    fn empty_list_is_one_empty_page() {
        let page = paginate(&[], None, PageLimit::Bytes(0));
        assert!(page.items.is_empty());
        assert_eq!(page.next, None);
    }
}
