//! What is cached — an upstream referrers list ready to serve, with when and how it was
//! fetched — its key, and its compact, versioned, compressed encoding (shared by every tier
//! and every replica).

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use oci_referrers::{Digest, PreparedList};
use registry_client::{ReferrersSource, UpstreamReferrers};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

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

/// `referrers-sidecar:v2:<namespace>:<registry_id>:<scope>:<upstream_repo>@<digest>`, where
/// `scope` is the registry's [`crate::upstream::registry_scope`]. The namespace keeps two Harbors sharing one
/// Redis DB apart.
#[must_use]
pub fn cache_key(
    namespace: &str,
    registry_id: i64,
    scope: &str,
    repository: &str,
    digest: &Digest,
) -> String {
    format!(
        "{}{scope}:{repository}@{digest}",
        registry_prefix(namespace, registry_id)
    )
}

/// What every key of one Harbor registry starts with: `referrers-sidecar:v2:<namespace>:<registry_id>:`.
#[must_use]
pub fn registry_prefix(namespace: &str, registry_id: i64) -> String {
    format!("referrers-sidecar:v2:{namespace}:{registry_id}:")
}

/// The namespace of this sidecar's keys: `cache.namespace`, else a hash of `harbor.url`, so
/// that two Harbors share entries only when told to.
#[must_use]
pub fn namespace(configured: Option<&str>, harbor_url: &Url) -> String {
    configured.map_or_else(|| short_hash(harbor_url.as_str()), str::to_owned)
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
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
    use registry_client::Registry;

    use super::*;
    use crate::upstream::registry_scope;

    use flate2::write::DeflateEncoder;
    use oci_referrers::Descriptor;

    fn descriptor(c: char) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", c.to_string().repeat(64)),
            "size": 10,
            "artifactType": "application/spdx+json",
            "annotations": {"k": "v"},
            "data": "e30=",
            "future": {"x": 1},
        }))
        .unwrap()
    }

    fn sample() -> CachedList {
        CachedList {
            fetched_at_ms: 1_700_000_000_000,
            source: ReferrersSource::FallbackTag,
            tag_digest: Some(format!("sha256:{}", "b".repeat(64)).parse().unwrap()),
            descriptors: PreparedList::new(['c', 'a', 'e'].map(descriptor)),
        }
    }

    #[test]
    fn round_trips_with_unknown_descriptor_fields() {
        let entry = sample();
        let bytes = entry.encode();
        assert!(bytes.starts_with(MAGIC));
        let decoded = CachedList::decode(&bytes, BOUNDS).unwrap();
        assert_eq!(
            decoded.descriptors.descriptors(),
            ['a', 'c', 'e'].map(descriptor)
        );
        assert_eq!(decoded, entry);
        assert_eq!(
            entry.as_upstream().descriptors,
            ['a', 'c', 'e'].map(descriptor)
        );
    }

    const BOUNDS: EntryBounds = EntryBounds {
        stored: 1024 * 1024,
        decoded: 16 * 1024 * 1024,
    };

    #[test]
    fn values_over_either_bound_are_neither_stored_nor_read() {
        let entry = sample();
        let bytes = entry.encode();
        let decoded = {
            let mut inflated = Vec::new();
            ZlibDecoder::new(&bytes[MAGIC.len()..])
                .read_to_end(&mut inflated)
                .unwrap();
            inflated.len()
        };
        let exact = EntryBounds {
            stored: bytes.len(),
            decoded,
        };
        assert_eq!(entry.encode_within(exact), Some(bytes.clone()));
        assert_eq!(CachedList::decode(&bytes, exact), Some(entry.clone()));
        for tight in [
            EntryBounds {
                stored: bytes.len() - 1,
                ..exact
            },
            EntryBounds {
                decoded: decoded - 1,
                ..exact
            },
        ] {
            assert_eq!(entry.encode_within(tight), None, "{tight:?}");
            assert_eq!(CachedList::decode(&bytes, tight), None, "{tight:?}");
        }
    }

    #[test]
    fn the_bounds_follow_max_entry_bytes() {
        assert_eq!(
            EntryBounds::new(1024),
            EntryBounds {
                stored: 1024,
                decoded: 1024 * MAX_INFLATION
            }
        );
        assert_eq!(EntryBounds::new(usize::MAX).decoded, usize::MAX);
    }

    #[test]
    fn a_value_inflating_past_the_bound_is_a_miss() {
        // One annotation of 16 MiB of the same letter compresses to a few KiB: a well-formed
        // entry within the stored bound, far over the decoded one (MAX_INFLATION times it).
        let inflated = 16 * 1024 * 1024;
        let bomb = CachedList {
            descriptors: PreparedList::new([serde_json::from_value::<Descriptor>(
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", "e".repeat(64)),
                    "size": 10,
                    "annotations": {"a": "x".repeat(inflated)},
                }),
            )
            .unwrap()]),
            ..sample()
        };
        let bytes = bomb.encode();
        let bounds = EntryBounds::new(bytes.len());
        assert!(bounds.decoded < inflated, "{bounds:?}");
        assert_eq!(CachedList::decode(&bytes, bounds), None);
        assert_eq!(bomb.encode_within(bounds), None, "nor stored");
        // The decoded bound alone made it a miss.
        let unbounded_inflation = EntryBounds {
            decoded: usize::MAX,
            ..bounds
        };
        assert_eq!(CachedList::decode(&bytes, unbounded_inflation), Some(bomb));
    }

    #[test]
    fn compresses_repetitive_lists() {
        let entry = sample();
        assert!(entry.encode().len() < entry.descriptors.to_stored().len());
    }

    /// Version 1 kept the descriptors as deflated JSON; such an entry, still in a shared Redis
    /// after an upgrade, is a miss and is overwritten.
    #[test]
    fn a_version_one_entry_is_a_miss() {
        let version_one = serde_json::json!({
            "fetched_at_ms": 1_700_000_000_000u64,
            "source": "api",
            "tag_digest": null,
            "descriptors": [descriptor('a')],
        });
        let mut encoder = DeflateEncoder::new(b"RS\x01".to_vec(), Compression::fast());
        serde_json::to_writer(&mut encoder, &version_one).unwrap();
        let stored = encoder.finish().unwrap();
        assert_eq!(CachedList::decode(&stored, BOUNDS), None);
    }

    #[test]
    fn foreign_corrupt_and_other_versions_are_misses() {
        let bytes = sample().encode();
        assert_eq!(CachedList::decode(b"", BOUNDS), None);
        assert_eq!(CachedList::decode(b"{\"fetched_at_ms\":1}", BOUNDS), None);
        assert_eq!(CachedList::decode(&bytes[..bytes.len() / 2], BOUNDS), None);
        let mut other_version = bytes.clone();
        other_version[2] = 3;
        assert_eq!(CachedList::decode(&other_version, BOUNDS), None);
        let mut flipped = bytes;
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert_eq!(CachedList::decode(&flipped, BOUNDS), None);
    }

    #[test]
    fn the_source_is_stored_by_its_label() {
        let entry = sample();
        let head = StoredHead {
            fetched_at_ms: entry.fetched_at_ms,
            source: entry.source,
            tag_digest: entry.tag_digest,
        };
        let json = serde_json::to_value(head).unwrap();
        assert_eq!(json["source"], "tag");
        for (label, source) in [
            ("api", ReferrersSource::Api),
            ("tag", ReferrersSource::FallbackTag),
            ("none", ReferrersSource::None),
        ] {
            let mut stored = json.clone();
            stored["source"] = label.into();
            let head: StoredHead = serde_json::from_value(stored).unwrap();
            assert_eq!(head.source, source);
        }
        let mut unknown = json;
        unknown["source"] = "ftp".into();
        assert!(serde_json::from_value::<StoredHead>(unknown).is_err());
    }

    fn registry(url: &str, user: Option<(&str, &str)>) -> Registry {
        Registry {
            name: "hub".into(),
            base_url: url.parse().unwrap(),
            kind: registry_client::RegistryKind::Distribution,
            insecure: false,
            credentials: user.map(|(username, password)| registry_client::Credentials {
                username: username.into(),
                password: password.into(),
                bound_host: "a.example".into(),
            }),
        }
    }

    #[test]
    fn keys_name_namespace_registry_url_identity_repository_and_digest() {
        let digest: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        let key = |namespace: &str, registry: &Registry| {
            cache_key(
                namespace,
                3,
                &registry_scope(registry),
                "library/nginx",
                &digest,
            )
        };
        let anonymous = registry("https://a.example/", None);
        let alice = registry("https://a.example/", Some(("alice", "one")));
        let a = key("harbor-a", &anonymous);
        assert!(a.starts_with("referrers-sidecar:v2:harbor-a:3:"), "{a}");
        assert!(a.ends_with(&format!(":library/nginx@{digest}")), "{a}");

        assert_eq!(a, key("harbor-a", &anonymous.clone()));
        assert_ne!(a, key("harbor-b", &anonymous), "another namespace");
        assert_ne!(
            a,
            key("harbor-a", &registry("https://b.example/", None)),
            "another upstream URL"
        );
        assert_ne!(a, key("harbor-a", &alice), "credentials");
        assert_ne!(
            key("harbor-a", &alice),
            key(
                "harbor-a",
                &registry("https://a.example/", Some(("bob", "one")))
            ),
            "another user"
        );
        let rotated = key(
            "harbor-a",
            &registry("https://a.example/", Some(("alice", "two"))),
        );
        assert_eq!(
            key("harbor-a", &alice),
            rotated,
            "the secret is no part of it"
        );
        assert!(
            !rotated.contains("alice") && !rotated.contains("two"),
            "{rotated}"
        );
        // Credentials bound to another host are not used: the fetch is anonymous.
        let unbound = registry("https://b.example/", Some(("alice", "one")));
        assert_eq!(
            key("harbor-a", &unbound),
            key("harbor-a", &registry("https://b.example/", None))
        );
    }

    #[test]
    fn the_namespace_is_the_configured_one_else_a_hash_of_harbors_url() {
        let core: Url = "https://core-a.example/".parse().unwrap();
        let other: Url = "https://core-b.example/".parse().unwrap();
        assert_eq!(namespace(Some("shared"), &core), "shared");
        assert_eq!(namespace(None, &core), namespace(None, &core));
        assert_ne!(namespace(None, &core), namespace(None, &other));
        assert_eq!(namespace(None, &core).len(), 16);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn descriptor() -> impl Strategy<Value = Descriptor> {
            (
                "[0-9a-f]{64}",
                prop::sample::select(vec![
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.artifact.manifest.v1+json",
                ]),
                any::<u64>(),
                prop::option::of("[a-z]{1,10}/[a-z.+-]{1,20}"),
                prop::collection::btree_map("[a-z.]{1,12}", "\\PC{0,20}", 0..3),
            )
                .prop_map(|(hex, media_type, size, artifact_type, annotations)| {
                    let mut descriptor =
                        Descriptor::new(media_type, format!("sha256:{hex}").parse().unwrap(), size);
                    descriptor.artifact_type = artifact_type;
                    descriptor.annotations = (!annotations.is_empty()).then_some(annotations);
                    descriptor
                })
        }

        fn cached_list() -> impl Strategy<Value = CachedList> {
            (
                any::<u64>(),
                prop::sample::select(vec![
                    ReferrersSource::Api,
                    ReferrersSource::FallbackTag,
                    ReferrersSource::None,
                ]),
                prop::option::of("[0-9a-f]{64}"),
                prop::collection::vec(descriptor(), 0..20),
            )
                .prop_map(|(fetched_at_ms, source, tag, descriptors)| CachedList {
                    fetched_at_ms,
                    source,
                    tag_digest: tag.map(|hex| format!("sha256:{hex}").parse().unwrap()),
                    descriptors: PreparedList::new(descriptors),
                })
        }

        proptest! {
            /// Whatever is stored reads back the same, within bounds that fit it.
            #[test]
            fn an_entry_round_trips(entry in cached_list()) {
                let bytes = entry.encode_within(BOUNDS).expect("within the bounds");
                prop_assert_eq!(CachedList::decode(&bytes, BOUNDS), Some(entry));
            }

            /// Arbitrary bytes, with or without our magic, are a miss or an entry that encodes
            /// back to what decodes the same: never a panic, never half an entry.
            #[test]
            fn arbitrary_bytes_are_a_miss_or_a_whole_entry(
                tail in prop::collection::vec(any::<u8>(), 0..512),
                with_magic in any::<bool>(),
            ) {
                let bytes = if with_magic { [MAGIC.as_slice(), &tail].concat() } else { tail };
                if let Some(entry) = CachedList::decode(&bytes, BOUNDS) {
                    let again = entry.encode_within(BOUNDS).expect("within the bounds");
                    prop_assert_eq!(CachedList::decode(&again, BOUNDS), Some(entry));
                }
            }

            /// A valid zlib stream over arbitrary content is a miss unless that content is a
            /// head and a stored list.
            #[test]
            fn arbitrary_inflated_content_is_a_miss_or_a_whole_entry(
                content in prop::collection::vec(any::<u8>(), 0..512),
            ) {
                let mut encoder = ZlibEncoder::new(MAGIC.to_vec(), Compression::fast());
                encoder.write_all(&content).unwrap();
                let bytes = encoder.finish().unwrap();
                if let Some(entry) = CachedList::decode(&bytes, BOUNDS) {
                    let again = entry.encode_within(BOUNDS).expect("within the bounds");
                    prop_assert_eq!(CachedList::decode(&again, BOUNDS), Some(entry));
                }
            }

            /// Cut short or with a byte changed, a stored entry is a miss or decodes whole.
            #[test]
            fn a_damaged_entry_is_a_miss_or_decodes_whole(
                entry in cached_list(),
                cut in any::<prop::sample::Index>(),
                flip in any::<prop::sample::Index>(),
                mask in 1u8..,
            ) {
                let bytes = entry.encode();
                let short = &bytes[..cut.index(bytes.len())];
                prop_assert_eq!(CachedList::decode(short, BOUNDS), None);
                let mut flipped = bytes.clone();
                let at = flip.index(flipped.len());
                flipped[at] ^= mask;
                // zlib's checksum catches a changed byte of the stream, and one in the magic
                // makes it another version or foreign; only a byte zlib ignores (its header's
                // compression level) leaves the same entry.
                let decoded = CachedList::decode(&flipped, BOUNDS);
                prop_assert!(decoded.is_none() || decoded == Some(entry), "{at}");
            }
        }
    }
}
