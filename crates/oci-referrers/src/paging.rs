//! Cutting a sorted referrers list into pages with a `last`-digest cursor.

use std::borrow::Borrow;

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::index::{ENVELOPE_HEAD, ENVELOPE_TAIL, INDEX_ENVELOPE_LEN};

/// How big one page may be. Whatever the limit, a page holds at least one descriptor whenever
/// any remain (see [`paginate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLimit {
    /// At most this many descriptors.
    Count(usize),
    /// At most this many bytes of encoded index (what clients accept as one manifest).
    Bytes(usize),
    /// Both: a client asking for many large descriptors still gets a page within what it
    /// accepts as one manifest.
    CountWithin {
        /// At most this many descriptors (the client's `n`).
        count: usize,
        /// At most this many bytes of encoded index.
        bytes: usize,
    },
}

impl PageLimit {
    /// Whether a page holding `held` descriptors may take one more, growing its encoded index
    /// to `grown` bytes.
    #[must_use]
    pub(crate) fn admits(self, held: usize, grown: usize) -> bool {
        let (count, bytes) = match self {
            Self::Count(n) => (n, usize::MAX),
            Self::Bytes(bytes) => (usize::MAX, bytes),
            Self::CountWithin { count, bytes } => (count, bytes),
        };
        held == 0 || (held < count && grown <= bytes)
    }
}

/// One page of a sorted list (of descriptors, or of references to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<'a, D = Descriptor> {
    /// The descriptors on this page, in digest order.
    pub items: &'a [D],
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
pub fn paginate<'a, D: Borrow<Descriptor>>(
    sorted: &'a [D],
    last: Option<&Digest>,
    limit: PageLimit,
) -> Page<'a, D> {
    let remaining = after(sorted, last);
    let len = match limit {
        PageLimit::Count(n) => n.max(1).min(remaining.len()),
        PageLimit::Bytes(_) | PageLimit::CountWithin { .. } => fitting_len(remaining, limit),
    };
    let items = &remaining[..len];
    let next = if len < remaining.len() {
        items.last().map(|d| d.borrow().digest.clone())
    } else {
        None
    };
    Page { items, next }
}

/// A page already encoded as the index body an answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPage {
    /// [`crate::encode_index`] of the page's descriptors.
    pub body: Vec<u8>,
    /// How many descriptors the page holds.
    pub count: usize,
    /// The `last` cursor of the next page, when one follows.
    pub next: Option<Digest>,
}

/// [`paginate`] and [`crate::encode_index`] in one pass that serializes each descriptor
/// once: the answer's hot path. The result is exactly the encoding of `paginate`'s page.
#[must_use]
pub fn encode_page<D: Borrow<Descriptor>>(
    sorted: &[D],
    last: Option<&Digest>,
    limit: PageLimit,
) -> EncodedPage {
    let remaining = after(sorted, last);
    let mut body = Vec::with_capacity(INDEX_ENVELOPE_LEN + remaining.len().min(64) * 320);
    body.extend_from_slice(ENVELOPE_HEAD.as_bytes());
    let mut count = 0;
    for descriptor in remaining {
        // The count first: a page already full serializes nothing more.
        if !limit.admits(count, 0) {
            break;
        }
        let mark = body.len();
        if count > 0 {
            body.push(b',');
        }
        // Strings, integers and `Value`s always serialize, and a Vec never refuses a write.
        let _ = serde_json::to_writer(&mut body, descriptor.borrow());
        if !limit.admits(count, body.len() + ENVELOPE_TAIL.len()) {
            body.truncate(mark);
            break;
        }
        count += 1;
    }
    body.extend_from_slice(ENVELOPE_TAIL.as_bytes());
    let next = (count < remaining.len()).then(|| remaining[count - 1].borrow().digest.clone());
    EncodedPage { body, count, next }
}

/// The descriptors strictly after the `last` cursor (which need not be in the list).
fn after<'a, D: Borrow<Descriptor>>(sorted: &'a [D], last: Option<&Digest>) -> &'a [D] {
    let start = last.map_or(0, |last| {
        sorted.partition_point(|d| d.borrow().digest <= *last)
    });
    &sorted[start..]
}

/// How many leading descriptors fit in `limit` (at least one).
fn fitting_len<D: Borrow<Descriptor>>(descriptors: &[D], limit: PageLimit) -> usize {
    let mut used = INDEX_ENVELOPE_LEN;
    let mut count = 0;
    for descriptor in descriptors {
        let separator = usize::from(count > 0);
        let next = used + separator + descriptor.borrow().encoded_len();
        if !limit.admits(count, next) {
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
    fn a_count_within_bytes_stops_at_whichever_comes_first() {
        let all = list("01234");
        let two = encode_index(&all[..2]).len();
        let by_bytes = PageLimit::CountWithin {
            count: 4,
            bytes: two,
        };
        let page = paginate(&all, None, by_bytes);
        assert_eq!(
            (digests(page.items).as_str(), page.next.is_some()),
            ("01", true)
        );
        let by_count = PageLimit::CountWithin {
            count: 1,
            bytes: two,
        };
        assert_eq!(digests(paginate(&all, None, by_count).items), "0");
        for limit in [by_bytes, by_count] {
            let encoded = encode_page(&all, None, limit);
            let page = paginate(&all, None, limit);
            assert_eq!(encoded.body, encode_index(page.items));
            assert_eq!(encoded.next, page.next);
        }
        // Neither stops a page short of one descriptor.
        let tiny = PageLimit::CountWithin { count: 0, bytes: 0 };
        assert_eq!(paginate(&all, None, tiny).items.len(), 1);
        assert_eq!(encode_page(&all, None, tiny).count, 1);
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
        let page = paginate::<Descriptor>(&[], None, PageLimit::Bytes(0));
        assert!(page.items.is_empty());
        assert_eq!(page.next, None);
    }
}
