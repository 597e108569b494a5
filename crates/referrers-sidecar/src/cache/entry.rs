//! What is cached — an upstream referrers list ready to serve, with when and how it was
//! fetched — and its compact, versioned, compressed encoding (shared by every tier and every
//! replica).

#[cfg(test)]
mod tests;

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use oci_referrers::{Digest, PreparedList};
use registry_client::{ReferrersSource, UpstreamReferrers};
use serde::{Deserialize, Serialize};

/// First bytes of every stored value: a foreign or older value is recognised, not misread.
/// Version 2: the list in its prepared form; version 1 (deflated JSON descriptors) is a miss.
const MAGIC: &[u8; 3] = b"RS\x02";

/// The head's length comes first in a decoded entry, as a little-endian `u32`.
const HEAD_LEN_BYTES: usize = 4;

/// How many times its stored size an entry may inflate to. A prepared referrers list (random
/// digests) shrinks about threefold under zlib; a value that inflates much more is not one of
/// ours and must not cost memory (a zlib bomb planted in a shared Redis).
const MAX_INFLATION: usize = 16;

/// The largest stored (compressed) and decoded sizes of an entry, from `cache.max_entry_bytes`:
/// a value beyond either is neither stored nor read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryBounds {
    pub stored: usize,
    pub decoded: usize,
}

impl EntryBounds {
    #[must_use]
    pub fn new(max_entry_bytes: usize) -> Self {
        Self {
            stored: max_entry_bytes,
            decoded: max_entry_bytes.saturating_mul(MAX_INFLATION),
        }
    }
}

/// An upstream referrers list as cached: never the merged answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedList {
    /// When the upstream answered, in milliseconds since the Unix epoch (shared by replicas).
    pub fetched_at_ms: u64,
    pub source: ReferrersSource,
    /// The fallback tag manifest's digest, when the list came from it.
    pub tag_digest: Option<Digest>,
    /// Sorted by digest once, when stored; each descriptor's JSON is written into answers as
    /// it is.
    pub descriptors: PreparedList,
}

/// The head of a stored entry: everything but the list.
#[derive(Serialize, Deserialize)]
struct StoredHead {
    fetched_at_ms: u64,
    /// Stored as `api`, `tag` or `none`.
    #[serde(with = "source_label")]
    source: ReferrersSource,
    tag_digest: Option<Digest>,
}

impl CachedList {
    /// A complete upstream list, fetched at `fetched_at_ms`.
    #[must_use]
    pub fn new(list: UpstreamReferrers, fetched_at_ms: u64) -> Self {
        Self {
            fetched_at_ms,
            source: list.source,
            tag_digest: list.tag_digest,
            descriptors: PreparedList::new(list.descriptors),
        }
    }

    /// The upstream answer this entry stands for (for the Docker Hub tag check).
    #[must_use]
    pub fn as_upstream(&self) -> UpstreamReferrers {
        let mut list = UpstreamReferrers::none();
        list.source = self.source;
        list.tag_digest = self.tag_digest.clone();
        // Decoded again only for a refresh, at most once per entry and `fresh_for`.
        list.descriptors = self.descriptors.descriptors();
        list
    }

    /// The stored form — magic and version, then zlib (checksummed) over the head's length
    /// (`u32`, little-endian), the head as JSON, and the list's prepared stored form — unless
    /// it, or what it inflates to, is over `bounds` (it could never be read back).
    #[must_use]
    pub fn encode_within(&self, bounds: EntryBounds) -> Option<Vec<u8>> {
        let head = StoredHead {
            fetched_at_ms: self.fetched_at_ms,
            source: self.source,
            tag_digest: self.tag_digest.clone(),
        };
        // Serializing these types cannot fail, and a few dozen bytes fit a u32.
        let head = serde_json::to_vec(&head).unwrap_or_default();
        let head_len = u32::try_from(head.len()).unwrap_or(u32::MAX);
        let list = self.descriptors.to_stored();
        if HEAD_LEN_BYTES + head.len() + list.len() > bounds.decoded {
            return None;
        }
        let mut encoder = ZlibEncoder::new(MAGIC.to_vec(), Compression::fast());
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(&head_len.to_le_bytes());
        let _ = encoder.write_all(&head);
        let _ = encoder.write_all(&list);
        let bytes = encoder.finish().unwrap_or_default();
        (bytes.len() <= bounds.stored).then_some(bytes)
    }

    /// The stored form without bounds, to plant values in tests.
    #[cfg(test)]
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let unbounded = EntryBounds {
            stored: usize::MAX,
            decoded: usize::MAX,
        };
        self.encode_within(unbounded).unwrap_or_default()
    }

    /// `None` for anything not written by [`CachedList::encode_within`] of this version with
    /// these `bounds`: such a value is a miss, later overwritten, never an error. Inflating
    /// stops just past the decoded bound; turning the rest into the prepared form checks it,
    /// without decoding a descriptor.
    #[must_use]
    pub fn decode(bytes: &[u8], bounds: EntryBounds) -> Option<Self> {
        if bytes.len() > bounds.stored {
            return None;
        }
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let limit = u64::try_from(bounds.decoded).unwrap_or(u64::MAX);
        let mut decoded = Vec::new();
        ZlibDecoder::new(body)
            .take(limit.saturating_add(1))
            .read_to_end(&mut decoded)
            .ok()?;
        if decoded.len() > bounds.decoded {
            return None;
        }
        let (head_len, rest) = decoded.split_first_chunk::<HEAD_LEN_BYTES>()?;
        let head_len = usize::try_from(u32::from_le_bytes(*head_len)).ok()?;
        let (head, list) = rest.split_at_checked(head_len)?;
        let head: StoredHead = serde_json::from_slice(head).ok()?;
        Some(Self {
            fetched_at_ms: head.fetched_at_ms,
            source: head.source,
            tag_digest: head.tag_digest,
            descriptors: PreparedList::from_stored(list).ok()?,
        })
    }
}

/// [`ReferrersSource`] by its label.
mod source_label {
    use registry_client::ReferrersSource;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(source: &ReferrersSource, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(source.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ReferrersSource, D::Error> {
        let label = std::borrow::Cow::<'de, str>::deserialize(d)?;
        match label.as_ref() {
            "api" => Ok(ReferrersSource::Api),
            "tag" => Ok(ReferrersSource::FallbackTag),
            "none" => Ok(ReferrersSource::None),
            other => Err(D::Error::unknown_variant(other, &["api", "tag", "none"])),
        }
    }
}
