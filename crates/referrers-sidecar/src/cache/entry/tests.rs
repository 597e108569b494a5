//! The stored form: round trips, bounds, old versions and damaged or hostile values.

use super::*;

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
        descriptors: PreparedList::new([serde_json::from_value::<Descriptor>(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", "e".repeat(64)),
            "size": 10,
            "annotations": {"a": "x".repeat(inflated)},
        }))
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
