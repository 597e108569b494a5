//! Answers already written, kept by what they were made of: for a hot subject the upstream
//! entry and core's list are the same request after request, so the page (and its gzip form,
//! made once) is reused without merging, filtering or encoding again.
//!
//! A page is kept under its request (name, subject, raw query), the identity of the upstream
//! entry it merged (registry, fetch time, size; none when the upstream gave nothing) and core's
//! body byte for byte: a new fetch, a purge's refetch or any change in core's list makes
//! another key, and the old page ages out. What is kept is bounded in bytes
//! (`cache.answer_memo_bytes`; 0 turns the memo off).

use std::io::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use moka::sync::Cache;
use oci_referrers::PreparedPage;

use super::key_bytes::KeyBytes;
use super::request::ReferrersRequest;
use crate::cache::CachedList;

/// Pages smaller than this are sent as they are: gzip would save little and cost a header.
pub const GZIP_MIN_BYTES: usize = 1024;

/// A page unused this long is dropped, whatever room is left.
const IDLE: Duration = Duration::from_secs(10 * 60);

/// A written page, and its gzip form once a caller asked for it.
#[derive(Debug)]
pub struct WrittenPage {
    pub page: PreparedPage,
    gzip: OnceLock<Option<Bytes>>,
}

impl WrittenPage {
    #[must_use]
    pub fn new(page: PreparedPage) -> Self {
        Self {
            page,
            gzip: OnceLock::new(),
        }
    }

    /// The body gzip-compressed, made on the first call and kept: `None` for a page under
    /// [`GZIP_MIN_BYTES`].
    pub fn gzip(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| (self.page.body.len() >= GZIP_MIN_BYTES).then(|| gzip(&self.page.body)))
            .as_ref()
    }
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    encoder
        .write_all(body)
        .and_then(|()| encoder.finish())
        .map(Bytes::from)
        .expect("writing to memory cannot fail")
}

/// What a page was made of, byte for byte (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoKey(Box<[u8]>);

/// The upstream entry a page merged: its registry, fetch time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EntryIdentity {
    registry_id: i64,
    fetched_at_ms: u64,
    descriptors: usize,
}

impl MemoKey {
    /// The key of the page for `request` (`raw_query` as it came) merged from `list`, the
    /// upstream entry of registry `registry_id` (if any), and core's `core_body`.
    #[must_use]
    pub fn of_page(
        request: &ReferrersRequest,
        raw_query: Option<&str>,
        registry_id: i64,
        list: Option<&CachedList>,
        core_body: &[u8],
    ) -> Self {
        let upstream = list.map(|list| EntryIdentity {
            registry_id,
            fetched_at_ms: list.fetched_at_ms,
            descriptors: list.descriptors.len(),
        });
        let (name, subject) = (request.name.as_str(), request.digest.as_str());
        Self::new(name, subject, raw_query, upstream, core_body)
    }

    fn new(
        name: &str,
        subject: &str,
        raw_query: Option<&str>,
        upstream: Option<EntryIdentity>,
        core_body: &[u8],
    ) -> Self {
        let mut key = KeyBytes::with_capacity(96 + core_body.len());
        key.part(name.as_bytes())
            .part(subject.as_bytes())
            .query(raw_query);
        match upstream {
            Some(entry) => key
                .part(&entry.registry_id.to_le_bytes())
                .part(&entry.fetched_at_ms.to_le_bytes())
                .part(&entry.descriptors.to_le_bytes()),
            None => key.part(b""),
        };
        key.part(core_body);
        Self(key.finish())
    }
}

/// The memo, shared by every worker.
pub struct AnswerMemo {
    pages: Option<Cache<MemoKey, Arc<WrittenPage>>>,
}

impl AnswerMemo {
    /// A memo holding at most `max_bytes` of keys and pages; 0: none is kept.
    #[must_use]
    pub fn new(max_bytes: u64) -> Self {
        let pages = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &MemoKey, page: &Arc<WrittenPage>| {
                    // A page's gzip form, made after it was stored, is counted in advance as
                    // its body's size again (it is never larger by much).
                    let weight = key.0.len() + 2 * page.page.body.len();
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .time_to_idle(IDLE)
                .build()
        });
        Self { pages }
    }

    /// Whether pages are kept at all (`cache.answer_memo_bytes` above 0).
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.pages.is_some()
    }

    /// The page written for `key` before, if it is still kept.
    #[must_use]
    pub fn get(&self, key: &MemoKey) -> Option<Arc<WrittenPage>> {
        self.pages.as_ref()?.get(key)
    }

    /// Keeps `page` under `key` (nothing when the memo is off).
    pub fn insert(&self, key: MemoKey, page: Arc<WrittenPage>) {
        if let Some(pages) = &self.pages {
            pages.insert(key, page);
        }
    }

    /// Pages kept (after pending evictions are applied).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.pages.as_ref().map_or(0, |pages| {
            pages.run_pending_tasks();
            pages.entry_count()
        })
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn page(body: &str) -> Arc<WrittenPage> {
        Arc::new(WrittenPage::new(PreparedPage {
            body: Bytes::from(body.to_owned()),
            count: 1,
            next: None,
            total: 1,
        }))
    }

    fn entry(fetched_at_ms: u64) -> Option<EntryIdentity> {
        Some(EntryIdentity {
            registry_id: 2,
            fetched_at_ms,
            descriptors: 3,
        })
    }

    #[test]
    fn a_page_is_found_by_what_it_was_made_of_and_by_nothing_else() {
        let memo = AnswerMemo::new(1024 * 1024);
        let key = |query, upstream, core: &str| {
            MemoKey::new("p/r", "sha256:aa", query, upstream, core.as_bytes())
        };
        memo.insert(key(None, entry(1), "{core}"), page("written"));
        assert_eq!(
            memo.get(&key(None, entry(1), "{core}")).unwrap().page.body,
            "written"
        );
        for (what, other) in [
            ("another query", key(Some("n=1"), entry(1), "{core}")),
            ("an empty query", key(Some(""), entry(1), "{core}")),
            ("a refetched entry", key(None, entry(2), "{core}")),
            ("no upstream entry", key(None, None, "{core}")),
            ("core's list changed", key(None, entry(1), "{core }")),
            (
                "another subject",
                MemoKey::new("p/r", "sha256:ab", None, entry(1), b"{core}"),
            ),
            (
                "another repository",
                MemoKey::new("p/q", "sha256:aa", None, entry(1), b"{core}"),
            ),
        ] {
            assert!(memo.get(&other).is_none(), "{what}");
        }
    }

    #[test]
    fn the_memo_is_bounded_in_bytes_and_off_at_zero() {
        let memo = AnswerMemo::new(64 * 1024);
        let body = "x".repeat(4 * 1024);
        for i in 0..100 {
            memo.insert(
                MemoKey::new("p/r", &format!("sha256:{i}"), None, None, b""),
                page(&body),
            );
        }
        // Each page weighs twice its body (room for its gzip form): 64 KiB hold at most 8.
        assert!(memo.len() <= 8, "{} pages kept", memo.len());

        let off = AnswerMemo::new(0);
        off.insert(MemoKey::new("p/r", "s", None, None, b""), page(&body));
        assert!(off.is_empty());
    }

    #[test]
    fn the_gzip_form_is_made_once_for_a_page_of_a_kibibyte_or_more_and_inflates_to_the_body() {
        let small = page(&"x".repeat(GZIP_MIN_BYTES - 1));
        assert!(small.gzip().is_none());
        let body =
            r#"{"digest":"sha256:0000","mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
                .repeat(100);
        let large = page(&body);
        let first = large.gzip().expect("gzip").clone();
        assert!(
            first.len() * 4 <= body.len(),
            "{} of {}",
            first.len(),
            body.len()
        );
        assert_eq!(large.gzip().unwrap().as_ptr(), first.as_ptr(), "made once");
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&first[..])
            .read_to_string(&mut inflated)
            .unwrap();
        assert_eq!(inflated, body);
    }
}
