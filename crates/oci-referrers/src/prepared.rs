//! Referrers lists kept ready to serve: each descriptor's JSON encoded once, sorted by digest,
//! and answers written by concatenating those bytes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::io;
use std::iter::Peekable;

use bytes::{BufMut, Bytes, BytesMut};

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::index::{ENVELOPE_HEAD, ENVELOPE_TAIL, INDEX_ENVELOPE_LEN};
use crate::media_type::ArtifactType;
use crate::paging::PageLimit;

/// What [`Descriptor`]'s encoding writes before the media type's JSON string.
const BEFORE_MEDIA_TYPE: &str = r#"{"mediaType":"#;
/// What it writes between the media type's JSON string and the digest.
const BEFORE_DIGEST: &str = r#","digest":""#;
/// What it writes between the digest and the size.
const BEFORE_SIZE: &str = r#"","size":"#;
/// What it writes between the size and the artifact type's characters.
const BEFORE_ARTIFACT_TYPE: &str = r#","artifactType":""#;

/// Bytes one entry of [`PreparedList::to_stored`] takes before the JSON: five `u32`s.
const STORED_ENTRY_LEN: usize = 20;

/// A list of descriptors sorted by digest, one per digest, each held as the exact JSON that
/// [`crate::encode_index`] writes for it.
///
/// Serving a page from it copies bytes and re-encodes nothing. The digest (for merge and the
/// cursor) and the artifact type (for the filter) are ranges into those bytes, not copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedList {
    /// Every descriptor's JSON, one after the other, in digest order.
    json: Bytes,
    entries: Vec<Entry>,
}

/// Where one descriptor lies in [`PreparedList::json`]; the inner offsets are relative to its
/// start. `u32`s keep the index small (24 bytes a descriptor): a list over 4 GiB is never held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    start: u32,
    len: u32,
    digest_at: u32,
    digest_len: u32,
    /// The artifact type's characters as JSON writes them (no quotes); empty when there is
    /// none. An empty `artifactType` is the same as none: no filter can ask for it.
    artifact_type_at: u32,
    artifact_type_len: u32,
}

/// One descriptor of a [`PreparedList`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedDescriptor<'a> {
    /// The descriptor's JSON, exactly as an index carries it.
    pub json: &'a [u8],
    /// The digest's characters.
    pub digest: &'a [u8],
    /// The artifact type's characters as JSON writes them; empty when there is none.
    pub artifact_type: &'a [u8],
}

impl PreparedDescriptor<'_> {
    /// Whether the filter keeps it: the artifact type is exactly one of `types`, or `types`
    /// is empty.
    ///
    /// Comparing the JSON-escaped characters is exact: an [`ArtifactType`] holds no character
    /// JSON escapes, so it can only equal an artifact type that has none either.
    #[must_use]
    pub fn matches(&self, types: &[ArtifactType]) -> bool {
        types.is_empty()
            || types
                .iter()
                .any(|wanted| wanted.as_str().as_bytes() == self.artifact_type)
    }
}

/// Why bytes are not a stored [`PreparedList`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredListError {
    /// The bytes end before the entries or the JSON they announce.
    #[error("stored list is cut short")]
    Truncated,
    /// An entry's ranges fall outside its descriptor or the JSON.
    #[error("stored list entry {0} is out of range")]
    OutOfRange(usize),
    /// An entry's digest is not a digest.
    #[error("stored list entry {0} has no valid digest")]
    InvalidDigest(usize),
    /// The digests are not strictly increasing.
    #[error("stored list entry {0} is out of digest order")]
    Unsorted(usize),
    /// An entry's bytes are not one JSON value.
    #[error("stored list entry {0} is not JSON")]
    InvalidJson(usize),
    /// Bytes follow the last descriptor.
    #[error("stored list has trailing bytes")]
    TrailingBytes,
}

impl PreparedList {
    /// Sorts `descriptors` by digest, keeps the first of each digest, and encodes each one.
    ///
    /// The same list as [`crate::merge`] of `descriptors` with nothing, ready to serve.
    #[must_use]
    pub fn new<D: Borrow<Descriptor>>(descriptors: impl IntoIterator<Item = D>) -> Self {
        let mut sorted: Vec<D> = descriptors.into_iter().collect();
        // Stable: among equal digests the first listed stays first, and is the one kept.
        sorted.sort_by(|a, b| digest_of(a).cmp(digest_of(b)));
        sorted.dedup_by(|later, earlier| digest_of(later) == digest_of(earlier));
        let mut json = Vec::with_capacity(sorted.len() * 320);
        let mut entries = Vec::with_capacity(sorted.len());
        for descriptor in &sorted {
            let start = json.len();
            // Strings, integers and `Value`s always serialize, and a Vec never refuses a write.
            let _ = serde_json::to_writer(&mut json, descriptor.borrow());
            let Some(entry) = entry(descriptor.borrow(), start, json.len()) else {
                // Past 4 GiB of JSON: far beyond what the upstream caps let through.
                json.truncate(start);
                break;
            };
            entries.push(entry);
        }
        Self {
            // Kept in one allocation of its exact size: the buffer, grown while writing and then
            // shrunk to fit, left its freed parts as holes between cached lists (about 110
            // bytes of RSS per cached descriptor, `scripts/bench.sh memory`).
            json: Bytes::copy_from_slice(&json),
            entries,
        }
    }

    /// How many descriptors it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes it keeps on the heap: its JSON and its index into it.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.json.len() + self.entries.capacity() * size_of::<Entry>()
    }

    /// Its descriptors, in digest order.
    pub fn iter(&self) -> impl Iterator<Item = PreparedDescriptor<'_>> + '_ {
        self.entries.iter().map(|entry| self.view(entry))
    }

    /// The descriptors decoded again (for the rare caller that needs typed values).
    #[must_use]
    pub fn descriptors(&self) -> Vec<Descriptor> {
        self.iter()
            .filter_map(|d| serde_json::from_slice(d.json).ok())
            .collect()
    }

    /// Every range was checked when the entry was made (or read back), so slicing is total.
    fn view(&self, entry: &Entry) -> PreparedDescriptor<'_> {
        let start = entry.start as usize;
        let json = &self.json[start..start + entry.len as usize];
        let digest_at = entry.digest_at as usize;
        let type_at = entry.artifact_type_at as usize;
        PreparedDescriptor {
            json,
            digest: &json[digest_at..digest_at + entry.digest_len as usize],
            artifact_type: &json[type_at..type_at + entry.artifact_type_len as usize],
        }
    }

    /// The compact form a shared cache keeps: the number of descriptors, for each its length
    /// and the offsets of its digest and artifact type (little-endian `u32`s), then the JSON.
    #[must_use]
    pub fn to_stored(&self) -> Vec<u8> {
        let mut stored =
            Vec::with_capacity(4 + self.entries.len() * STORED_ENTRY_LEN + self.json.len());
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        stored.extend_from_slice(&count.to_le_bytes());
        for entry in &self.entries {
            for field in [
                entry.len,
                entry.digest_at,
                entry.digest_len,
                entry.artifact_type_at,
                entry.artifact_type_len,
            ] {
                stored.extend_from_slice(&field.to_le_bytes());
            }
        }
        stored.extend_from_slice(&self.json);
        stored
    }

    /// Reads [`PreparedList::to_stored`]'s form back, checking what a foreign or damaged value
    /// could get wrong: every range in bounds, every digest valid and in strictly increasing
    /// order, every descriptor one JSON value. Cheaper than decoding descriptors: nothing is
    /// built but the index.
    ///
    /// # Errors
    ///
    /// [`StoredListError`] for anything `to_stored` would not have written.
    pub fn from_stored(stored: &[u8]) -> Result<Self, StoredListError> {
        let (count, rest) = split_u32(stored).ok_or(StoredListError::Truncated)?;
        let index_len = (count as usize)
            .checked_mul(STORED_ENTRY_LEN)
            .ok_or(StoredListError::Truncated)?;
        if rest.len() < index_len {
            return Err(StoredListError::Truncated);
        }
        let (mut index, json) = rest.split_at(index_len);
        if u32::try_from(json.len()).is_err() {
            return Err(StoredListError::OutOfRange(0));
        }
        let mut entries = Vec::with_capacity(count as usize);
        let mut start = 0usize;
        for position in 0..count as usize {
            let mut fields = [0u32; 5];
            for field in &mut fields {
                let (value, rest) = split_u32(index).ok_or(StoredListError::Truncated)?;
                *field = value;
                index = rest;
            }
            let [
                len,
                digest_at,
                digest_len,
                artifact_type_at,
                artifact_type_len,
            ] = fields;
            let end = start
                .checked_add(len as usize)
                .filter(|&end| end <= json.len())
                .ok_or(StoredListError::Truncated)?;
            let descriptor = &json[start..end];
            let within = |at: u32, len: u32| {
                (at as usize)
                    .checked_add(len as usize)
                    .is_some_and(|end| end <= descriptor.len())
            };
            if !within(digest_at, digest_len) || !within(artifact_type_at, artifact_type_len) {
                return Err(StoredListError::OutOfRange(position));
            }
            serde_json::from_slice::<serde::de::IgnoredAny>(descriptor)
                .map_err(|_| StoredListError::InvalidJson(position))?;
            // Below u32::MAX: the whole JSON is, as checked above.
            entries.push(Entry {
                start: start as u32,
                len,
                digest_at,
                digest_len,
                artifact_type_at,
                artifact_type_len,
            });
            start = end;
        }
        if start != json.len() {
            return Err(StoredListError::TrailingBytes);
        }
        let list = Self {
            json: Bytes::copy_from_slice(json),
            entries,
        };
        let mut previous: Option<&[u8]> = None;
        for (position, descriptor) in list.iter().enumerate() {
            let valid = std::str::from_utf8(descriptor.digest)
                .is_ok_and(|digest| digest.parse::<Digest>().is_ok());
            if !valid {
                return Err(StoredListError::InvalidDigest(position));
            }
            if previous.is_some_and(|previous| previous >= descriptor.digest) {
                return Err(StoredListError::Unsorted(position));
            }
            previous = Some(descriptor.digest);
        }
        Ok(list)
    }
}

fn digest_of<D: Borrow<Descriptor>>(descriptor: &D) -> &Digest {
    &descriptor.borrow().digest
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

/// Where `descriptor`'s digest and artifact type lie in its encoding (from `start` to `end`),
/// computed from the field order [`Descriptor`]'s encoding follows; `None` past 4 GiB.
fn entry(descriptor: &Descriptor, start: usize, end: usize) -> Option<Entry> {
    let digest_at =
        BEFORE_MEDIA_TYPE.len() + json_string_len(&descriptor.media_type) + BEFORE_DIGEST.len();
    let size_end = digest_at
        + descriptor.digest.as_str().len()
        + BEFORE_SIZE.len()
        + descriptor.size.to_string().len();
    let (artifact_type_at, artifact_type_len) = match descriptor.artifact_type() {
        Some(kind) => (
            size_end + BEFORE_ARTIFACT_TYPE.len(),
            json_string_len(kind) - 2,
        ),
        None => (0, 0),
    };
    u32::try_from(end).ok()?;
    Some(Entry {
        start: u32::try_from(start).ok()?,
        len: u32::try_from(end - start).ok()?,
        digest_at: u32::try_from(digest_at).ok()?,
        digest_len: u32::try_from(descriptor.digest.as_str().len()).ok()?,
        artifact_type_at: u32::try_from(artifact_type_at).ok()?,
        artifact_type_len: u32::try_from(artifact_type_len).ok()?,
    })
}

/// Length of `text` as a JSON string, quotes included.
fn json_string_len(text: &str) -> usize {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // A string always serializes, and the counter never fails.
    let _ = serde_json::to_writer(&mut counter, text);
    counter.0
}

/// The union of two prepared lists in digest order, in one pass: the upstream descriptor wins
/// over a local one with the same digest (see [`crate::merge`] for why).
pub fn merge_prepared<'a>(
    upstream: &'a PreparedList,
    local: &'a PreparedList,
) -> impl Iterator<Item = PreparedDescriptor<'a>> + 'a {
    MergePrepared {
        upstream: upstream.iter().peekable(),
        local: local.iter().peekable(),
    }
}

struct MergePrepared<U: Iterator, L: Iterator> {
    upstream: Peekable<U>,
    local: Peekable<L>,
}

impl<'a, U, L> Iterator for MergePrepared<U, L>
where
    U: Iterator<Item = PreparedDescriptor<'a>>,
    L: Iterator<Item = PreparedDescriptor<'a>>,
{
    type Item = PreparedDescriptor<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.upstream.peek(), self.local.peek()) {
            (Some(upstream), Some(local)) => upstream.digest.cmp(local.digest),
            (Some(_), None) => Ordering::Less,
            (None, _) => return self.local.next(),
        };
        if order == Ordering::Equal {
            self.local.next();
        }
        match order {
            Ordering::Greater => self.local.next(),
            Ordering::Less | Ordering::Equal => self.upstream.next(),
        }
    }
}

/// One page of a merged, filtered list, written as the index body an answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPage {
    /// The index body: exactly what [`crate::encode_page`] writes for the same page.
    pub body: Bytes,
    /// How many descriptors the page holds.
    pub count: usize,
    /// The `last` cursor of the next page, when one follows.
    pub next: Option<Digest>,
    /// How many descriptors the whole filtered list holds (`X-Total-Count`).
    pub total: usize,
}

/// The answer's hot path: merges `upstream` and `local` in one pass, keeps what `types` asks
/// for, and writes the page after `last` that fits `limit` by concatenating stored bytes.
///
/// The same page, cursor and total as [`crate::merge`], [`crate::filter_by_artifact_type`]
/// and [`crate::encode_page`] give for the same descriptors.
#[must_use]
pub fn encode_prepared_page(
    upstream: &PreparedList,
    local: &PreparedList,
    types: &[ArtifactType],
    last: Option<&Digest>,
    limit: PageLimit,
) -> PreparedPage {
    let last = last.map(|last| last.as_str().as_bytes());
    let mut total = 0;
    let mut page: Vec<PreparedDescriptor<'_>> = Vec::new();
    let mut body_len = INDEX_ENVELOPE_LEN;
    let mut full = false;
    let mut more = false;
    for descriptor in merge_prepared(upstream, local).filter(|d| d.matches(types)) {
        total += 1;
        if last.is_some_and(|last| descriptor.digest <= last) {
            continue;
        }
        if full {
            more = true;
            continue;
        }
        let grown = body_len + usize::from(!page.is_empty()) + descriptor.json.len();
        if limit.admits(page.len(), grown) {
            body_len = grown;
            page.push(descriptor);
        } else {
            full = true;
            more = true;
        }
    }
    let mut body = BytesMut::with_capacity(body_len);
    body.put_slice(ENVELOPE_HEAD.as_bytes());
    for (i, descriptor) in page.iter().enumerate() {
        if i > 0 {
            body.put_u8(b',');
        }
        body.put_slice(descriptor.json);
    }
    body.put_slice(ENVELOPE_TAIL.as_bytes());
    let next = page
        .last()
        .filter(|_| more)
        .and_then(|last| std::str::from_utf8(last.digest).ok()?.parse().ok());
    PreparedPage {
        body: body.freeze(),
        count: page.len(),
        next,
        total,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn descriptor(c: char, size: u64, artifact_type: Option<&str>) -> Descriptor {
        let digest = format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap();
        let mut descriptor =
            Descriptor::new("application/vnd.oci.image.manifest.v1+json", digest, size);
        descriptor.artifact_type = artifact_type.map(str::to_owned);
        descriptor
    }

    #[test]
    fn ranges_point_at_digest_and_artifact_type() {
        let mut odd = descriptor('b', 1234, Some("we\"ird\\type"));
        odd.media_type = "m/\"quoted\"\u{1}".into();
        odd.annotations = Some([("artifactType".to_owned(), "x".to_owned())].into());
        let list = PreparedList::new([descriptor('a', 0, None), odd]);
        let views: Vec<_> = list.iter().collect();
        assert_eq!(
            views[0].digest,
            format!("sha256:{}", "a".repeat(64)).as_bytes()
        );
        assert_eq!(views[0].artifact_type, b"");
        assert_eq!(views[1].artifact_type, br#"we\"ird\\type"#);
        assert_eq!(
            views[1].digest,
            format!("sha256:{}", "b".repeat(64)).as_bytes()
        );
    }

    #[test]
    fn a_damaged_stored_list_is_refused() {
        let list = PreparedList::new([descriptor('a', 1, None), descriptor('b', 2, None)]);
        let stored = list.to_stored();
        assert_eq!(PreparedList::from_stored(&stored), Ok(list.clone()));
        assert_eq!(
            PreparedList::from_stored(&stored[..stored.len() - 1]),
            Err(StoredListError::Truncated)
        );
        let mut longer = stored.clone();
        longer.push(b' ');
        assert_eq!(
            PreparedList::from_stored(&longer),
            Err(StoredListError::TrailingBytes)
        );
        let mut bad_digest = stored.clone();
        bad_digest[4 + 4] = 3; // the first entry's digest offset
        assert_eq!(
            PreparedList::from_stored(&bad_digest),
            Err(StoredListError::InvalidDigest(0))
        );
        let swapped = PreparedList {
            json: list.json.clone(),
            entries: vec![list.entries[0], list.entries[0]],
        };
        let mut doubled = swapped.to_stored();
        doubled.truncate(4 + 2 * STORED_ENTRY_LEN + list.entries[0].len as usize);
        doubled.extend_from_slice(&list.json[..list.entries[0].len as usize]);
        assert_eq!(
            PreparedList::from_stored(&doubled),
            Err(StoredListError::Unsorted(1))
        );
        let mut not_json = stored;
        let last = not_json.len() - 1;
        not_json[last] = b'x';
        assert_eq!(
            PreparedList::from_stored(&not_json),
            Err(StoredListError::InvalidJson(1))
        );
        assert_eq!(
            PreparedList::from_stored(&PreparedList::default().to_stored()),
            Ok(PreparedList::default())
        );
    }

    #[test]
    fn upstream_wins_on_equal_digests() {
        let upstream = PreparedList::new([descriptor('b', 2, None)]);
        let local = PreparedList::new([descriptor('b', 99, None), descriptor('a', 1, None)]);
        let merged: Vec<_> = merge_prepared(&upstream, &local).collect();
        assert_eq!(merged.len(), 2);
        let second: Descriptor = serde_json::from_slice(merged[1].json).unwrap();
        assert_eq!(second.size, 2);
        let kept: Value = serde_json::from_slice(merged[0].json).unwrap();
        assert_eq!(kept["size"], json!(1));
    }
}
