//! Proptest strategies for referrers lists, shared by the property suites.

#![allow(dead_code)] // each suite uses a different subset

use oci_referrers::{ArtifactType, Descriptor, Digest};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Artifact types drawn from a small pool so filters and collisions actually happen.
pub const ARTIFACT_TYPES: [&str; 4] = [
    "application/vnd.cncf.notary.signature",
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.example.sbom.v1",
    "application/spdx+json",
];

/// Digests from a small pool (so lists share digests), over all three algorithms.
pub fn digest() -> impl Strategy<Value = Digest> {
    (0u16..48, 0usize..3).prop_map(|(seed, algorithm)| {
        let text = match algorithm {
            0 => format!("sha256:{seed:064x}"),
            1 => format!("sha384:{seed:096x}"),
            _ => format!("sha512:{seed:0128x}"),
        };
        text.parse().expect("generated digests are valid")
    })
}

/// Digests from a pool large enough that fresh ones are unlikely to collide.
pub fn fresh_digest() -> impl Strategy<Value = Digest> {
    any::<u64>().prop_map(|seed| {
        format!("sha256:{seed:064x}")
            .parse()
            .expect("generated digests are valid")
    })
}

pub fn artifact_type() -> impl Strategy<Value = ArtifactType> {
    proptest::sample::select(&ARTIFACT_TYPES[..])
        .prop_map(|kind| kind.parse().expect("pool artifact types are valid"))
}

/// JSON without floats (`serde_json` does not promise float round trips by default).
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

const RESERVED: [&str; 8] = [
    "mediaType",
    "digest",
    "size",
    "artifactType",
    "annotations",
    "urls",
    "data",
    "platform",
];

/// The fields a descriptor may carry beyond the typed ones: the image-spec's optional
/// fields with their proper types, and arbitrary future fields.
pub fn extra_fields() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::option::of(prop::collection::vec("https://[a-z]{1,8}/[a-z]{0,8}", 0..3)),
        prop::option::of("[A-Za-z0-9+/]{0,16}={0,2}"),
        prop::option::of(("[a-z]{1,8}", "[a-z0-9]{1,8}")),
        prop::collection::btree_map("[a-zA-Z][a-zA-Z0-9._-]{0,10}", json_value(), 0..4),
    )
        .prop_map(|(urls, data, platform, others)| {
            let mut extra: Map<String, Value> = others
                .into_iter()
                .filter(|(key, _)| !RESERVED.contains(&key.as_str()))
                .collect();
            if let Some(urls) = urls {
                extra.insert("urls".into(), Value::from(urls));
            }
            if let Some(data) = data {
                extra.insert("data".into(), Value::from(data));
            }
            if let Some((os, architecture)) = platform {
                extra.insert(
                    "platform".into(),
                    serde_json::json!({"os": os, "architecture": architecture}),
                );
            }
            extra
        })
}

/// Descriptors with every kind of field, for the codec properties.
pub fn rich_descriptor() -> impl Strategy<Value = Descriptor> {
    (
        digest(),
        "[a-z]{1,8}/[a-z.+]{1,16}",
        0u64..=i64::MAX as u64,
        prop::option::of(prop_oneof![
            proptest::sample::select(&ARTIFACT_TYPES[..]).prop_map(str::to_owned),
            ".{0,10}",
        ]),
        prop::option::of(prop::collection::btree_map(".{0,8}", ".{0,8}", 0..3)),
        extra_fields(),
    )
        .prop_map(
            |(digest, media_type, size, artifact_type, annotations, extra)| Descriptor {
                media_type,
                digest,
                size,
                artifact_type,
                annotations,
                extra,
            },
        )
}

/// Cheap descriptors for the list properties; `size` tells copies of one digest apart.
pub fn descriptor_with(digest: impl Strategy<Value = Digest>) -> impl Strategy<Value = Descriptor> {
    (
        digest,
        any::<u32>(),
        prop::option::of(proptest::sample::select(&ARTIFACT_TYPES[..])),
    )
        .prop_map(|(digest, size, artifact_type)| {
            let mut descriptor = Descriptor::new(
                "application/vnd.oci.image.manifest.v1+json",
                digest,
                u64::from(size),
            );
            descriptor.artifact_type = artifact_type.map(str::to_owned);
            descriptor
        })
}

pub fn descriptor() -> impl Strategy<Value = Descriptor> {
    descriptor_with(digest())
}

pub fn descriptors(max: usize) -> impl Strategy<Value = Vec<Descriptor>> {
    prop::collection::vec(descriptor(), 0..max)
}

pub fn rich_descriptors(max: usize) -> impl Strategy<Value = Vec<Descriptor>> {
    prop::collection::vec(rich_descriptor(), 0..max)
}
