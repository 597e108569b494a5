//! What is cached — an upstream referrers list with when and how it was fetched — its key, and
//! its compact, versioned, compressed encoding (shared by every tier and every replica).

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// `api`, `tag` or `none`.
    pub source: String,
    /// The fallback tag manifest's digest, when the list came from it.
    pub tag_digest: Option<Digest>,
    pub descriptors: Vec<Descriptor>,
}

impl CachedList {
    /// A complete upstream list fetched now.
    #[must_use]
    pub fn fetched_now(list: &UpstreamReferrers) -> Self {
        Self {
            fetched_at_ms: now_ms(),
            source: list.source.as_str().to_owned(),
            tag_digest: list.tag_digest.clone(),
            descriptors: list.descriptors.clone(),
        }
    }

    /// Time since the upstream answered (zero if the clock went back).
    #[must_use]
    pub fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.fetched_at_ms))
    }

    /// How long the entry may be served at all, counted from `fetched_at`.
    #[must_use]
    pub fn lifetime(&self, keep_stale_for: Duration, keep_empty_for: Duration) -> Duration {
        if self.descriptors.is_empty() {
            keep_empty_for.min(keep_stale_for)
        } else {
            keep_stale_for
        }
    }

    /// The upstream answer this entry stands for (for the Docker Hub tag check).
    #[must_use]
    pub fn as_upstream(&self) -> UpstreamReferrers {
        let mut list = UpstreamReferrers::none();
        list.source = match self.source.as_str() {
            "api" => ReferrersSource::Api,
            "tag" => ReferrersSource::FallbackTag,
            _ => ReferrersSource::None,
        };
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
            source: "tag".into(),
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
    fn empty_lists_keep_shorter() {
        let mut entry = sample();
        let week = Duration::from_secs(7 * 86400);
        let hour = Duration::from_secs(3600);
        assert_eq!(entry.lifetime(week, hour), week);
        entry.descriptors.clear();
        assert_eq!(entry.lifetime(week, hour), hour);
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
