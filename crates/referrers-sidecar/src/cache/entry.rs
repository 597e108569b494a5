//! What is cached — an upstream referrers list with when and how it was fetched — its key, and
//! its compact, versioned, compressed encoding (shared by every tier and every replica).

use std::io::Read;

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use oci_referrers::{Descriptor, Digest};
use registry_client::{ReferrersSource, UpstreamReferrers};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

/// First bytes of every stored value: a foreign or older value is recognised, not misread.
const MAGIC: &[u8; 3] = b"RS\x01";

/// Largest decompressed value accepted (a stored entry is at most `cache.max_entry_bytes`
/// compressed; this bounds a hostile value in a shared Redis).
const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;

/// An upstream referrers list as cached: never the merged answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedList {
    /// When the upstream answered, in milliseconds since the Unix epoch (shared by replicas).
    pub fetched_at_ms: u64,
    /// Stored as `api`, `tag` or `none`, as before it was typed: older entries stay readable.
    #[serde(with = "source_label")]
    pub source: ReferrersSource,
    /// The fallback tag manifest's digest, when the list came from it.
    pub tag_digest: Option<Digest>,
    pub descriptors: Vec<Descriptor>,
}

impl CachedList {
    /// A complete upstream list, fetched at `fetched_at_ms`.
    #[must_use]
    pub fn new(list: UpstreamReferrers, fetched_at_ms: u64) -> Self {
        Self {
            fetched_at_ms,
            source: list.source,
            tag_digest: list.tag_digest,
            descriptors: list.descriptors,
        }
    }

    /// The upstream answer this entry stands for (for the Docker Hub tag check).
    #[must_use]
    pub fn as_upstream(&self) -> UpstreamReferrers {
        let mut list = UpstreamReferrers::none();
        list.source = self.source;
        list.tag_digest = self.tag_digest.clone();
        list.descriptors = self.descriptors.clone();
        list
    }

    /// The stored form: magic and version, then the deflated JSON.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(MAGIC.to_vec(), Compression::fast());
        // Writing to a Vec cannot fail, nor can serializing these types.
        let _ = serde_json::to_writer(&mut encoder, self);
        encoder.finish().unwrap_or_default()
    }

    /// `None` for anything not written by [`CachedList::encode`] of this version: such a value
    /// is a miss, later overwritten, never an error.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let body = bytes.strip_prefix(MAGIC.as_slice())?;
        let mut json = Vec::new();
        DeflateDecoder::new(body)
            .take(MAX_DECODED_BYTES)
            .read_to_end(&mut json)
            .ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// `referrers-sidecar:v1:<registry_id>:<hash of upstream URL>:<upstream_repo>@<digest>`: the
/// URL hash keeps two registries that Harbor once gave the same id apart.
#[must_use]
pub fn cache_key(registry_id: i64, upstream: &Url, repository: &str, digest: &Digest) -> String {
    let url_hash = hex::encode(&Sha256::digest(upstream.as_str().as_bytes())[..8]);
    format!("referrers-sidecar:v1:{registry_id}:{url_hash}:{repository}@{digest}")
}

/// The cross-replica lock of a key.
#[must_use]
pub fn lock_key(key: &str) -> String {
    format!("{key}:lock")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedList {
        let descriptor: Descriptor = serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "a".repeat(64)),
            "size": 10,
            "artifactType": "application/spdx+json",
            "annotations": {"k": "v"},
            "data": "e30=",
            "future": {"x": 1},
        }))
        .unwrap();
        CachedList {
            fetched_at_ms: 1_700_000_000_000,
            source: ReferrersSource::FallbackTag,
            tag_digest: Some(format!("sha256:{}", "b".repeat(64)).parse().unwrap()),
            descriptors: vec![descriptor; 3],
        }
    }

    #[test]
    fn round_trips_with_unknown_descriptor_fields() {
        let entry = sample();
        let bytes = entry.encode();
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(CachedList::decode(&bytes), Some(entry));
    }

    #[test]
    fn compresses_repetitive_lists() {
        let entry = sample();
        let json = serde_json::to_vec(&entry).unwrap();
        assert!(entry.encode().len() < json.len());
    }

    #[test]
    fn foreign_corrupt_and_other_versions_are_misses() {
        let bytes = sample().encode();
        assert_eq!(CachedList::decode(b""), None);
        assert_eq!(CachedList::decode(b"{\"fetched_at_ms\":1}"), None);
        assert_eq!(CachedList::decode(&bytes[..bytes.len() / 2]), None);
        let mut other_version = bytes.clone();
        other_version[2] = 2;
        assert_eq!(CachedList::decode(&other_version), None);
        let mut flipped = bytes;
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert_eq!(CachedList::decode(&flipped), None);
    }

    #[test]
    fn the_source_is_stored_by_its_label() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["source"], "tag");
        for (label, source) in [
            ("api", ReferrersSource::Api),
            ("tag", ReferrersSource::FallbackTag),
            ("none", ReferrersSource::None),
        ] {
            let mut stored = json.clone();
            stored["source"] = label.into();
            let entry: CachedList = serde_json::from_value(stored).unwrap();
            assert_eq!(entry.source, source);
        }
        let mut unknown = json;
        unknown["source"] = "ftp".into();
        assert!(serde_json::from_value::<CachedList>(unknown).is_err());
    }

    #[test]
    fn keys_name_registry_url_repository_and_digest() {
        let digest: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        let a = cache_key(
            3,
            &"https://a.example/".parse().unwrap(),
            "library/nginx",
            &digest,
        );
        let b = cache_key(
            3,
            &"https://b.example/".parse().unwrap(),
            "library/nginx",
            &digest,
        );
        assert!(a.starts_with("referrers-sidecar:v1:3:"));
        assert!(a.ends_with(&format!(":library/nginx@{digest}")));
        assert_ne!(a, b);
    }
}
