//! The referrers response body: an OCI image index, decoded leniently and encoded exactly.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::descriptor::{Descriptor, Element};

/// Media type of an OCI image index, the only body the referrers API returns.
///
/// REF: <https://github.com/opencontainers/image-spec/blob/main/image-index.md>
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Everything before the first descriptor. `mediaType` is always written because clients
/// (oras-go, go-containerregistry) check it.
pub(crate) const ENVELOPE_HEAD: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#;
/// Everything after the last descriptor.
pub(crate) const ENVELOPE_TAIL: &str = "]}";

/// Bytes of an encoded index that are not descriptors or the commas between them.
pub const INDEX_ENVELOPE_LEN: usize = ENVELOPE_HEAD.len() + ENVELOPE_TAIL.len();

/// The descriptors an index held, and those that had to be dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedIndex {
    /// The usable descriptors, in the order the index listed them.
    pub descriptors: Vec<Descriptor>,
    /// The elements that were dropped, so the caller can count and log them.
    pub rejected: Vec<RejectedDescriptor>,
}

/// One `manifests` element that was not a usable descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedDescriptor {
    /// Zero-based position in the `manifests` array.
    pub position: usize,
    /// Why it was dropped.
    pub reason: String,
}

/// Why a body is not an image index at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The body is not JSON.
    #[error("index is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but not an object.
    #[error("index is not a JSON object")]
    NotAnObject,
    /// `schemaVersion` is present and not `2`.
    #[error("index schemaVersion is not 2")]
    UnsupportedSchemaVersion,
    /// `mediaType` is present and not [`INDEX_MEDIA_TYPE`] (an image manifest, an HTML page
    /// turned into JSON by a proxy, …).
    #[error("index mediaType is {0:?}, not {INDEX_MEDIA_TYPE}")]
    WrongMediaType(String),
    /// `manifests` is present and not an array.
    #[error("index manifests is not an array")]
    ManifestsNotArray,
}

/// Decodes a referrers response or a referrers-tag-schema index.
///
/// The envelope is checked strictly (it decides whether this is an index at all); each
/// `manifests` element is decoded on its own, so one bad descriptor from an upstream costs
/// that descriptor, not every signature of the image.
///
/// # Errors
///
/// [`IndexError`] when the body is not JSON, not an object, or its `schemaVersion`,
/// `mediaType` or `manifests` say it is not an image index.
///
/// REF: <https://github.com/opencontainers/image-spec/blob/main/image-index.md#image-index-property-descriptions>
pub fn decode_index(bytes: &[u8]) -> Result<DecodedIndex, IndexError> {
    // Read as a stream of envelope fields: each `manifests` element becomes a descriptor
    // before the next is read, so a page is never held as a whole `Value` tree.
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let envelope = deserializer
        .deserialize_any(EnvelopeVisitor)
        .and_then(|envelope| deserializer.end().map(|()| envelope))
        .map_err(|err| IndexError::InvalidJson(err.to_string()))?;
    let Some(envelope) = envelope else {
        return Err(IndexError::NotAnObject);
    };
    match envelope.schema_version {
        None | Some(Value::Null) => {}
        Some(version) if version.as_u64() == Some(2) => {}
        Some(_) => return Err(IndexError::UnsupportedSchemaVersion),
    }
    match envelope.media_type {
        None | Some(Value::Null) => {}
        Some(Value::String(media_type)) if media_type == INDEX_MEDIA_TYPE => {}
        Some(Value::String(media_type)) => return Err(IndexError::WrongMediaType(media_type)),
        Some(other) => return Err(IndexError::WrongMediaType(other.to_string())),
    }
    envelope
        .manifests
        .unwrap_or(Some(DecodedIndex::default()))
        .ok_or(IndexError::ManifestsNotArray)
}

/// The envelope's fields as read; `manifests` is `Some(None)` when present and not an array.
struct Envelope {
    schema_version: Option<Value>,
    media_type: Option<Value>,
    manifests: Option<Option<DecodedIndex>>,
}

/// Reads the top-level object; anything else is `None` (not an object).
struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Option<Envelope>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an OCI image index")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope {
            schema_version: None,
            media_type: None,
            manifests: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "schemaVersion" => envelope.schema_version = Some(map.next_value()?),
                "mediaType" => envelope.media_type = Some(map.next_value()?),
                "manifests" => envelope.manifests = Some(map.next_value::<Manifests>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(envelope))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `manifests`, decoded element by element: a bad descriptor costs itself only. `None` when
/// the value is not an array; `null` is an empty list.
struct Manifests(Option<DecodedIndex>);

impl<'de> Deserialize<'de> for Manifests {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ManifestsVisitor)
    }
}

struct ManifestsVisitor;

impl<'de> Visitor<'de> for ManifestsVisitor {
    type Value = Manifests;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of descriptors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut decoded = DecodedIndex::default();
        let mut position = 0;
        while let Some(Element(element)) = seq.next_element()? {
            match element {
                Ok(descriptor) => decoded.descriptors.push(descriptor),
                Err(err) => decoded.rejected.push(RejectedDescriptor {
                    position,
                    reason: err.to_string(),
                }),
            }
            position += 1;
        }
        Ok(Manifests(Some(decoded)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Manifests(Some(DecodedIndex::default())))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Manifests(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Manifests(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Manifests(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Manifests(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Manifests(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Manifests(None))
    }
}

/// Encodes descriptors as an image index: `schemaVersion` 2, `mediaType` set, and
/// `manifests` always an array (`[]` when empty, never `null`).
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
#[must_use]
pub fn encode_index<D: std::borrow::Borrow<Descriptor>>(descriptors: &[D]) -> Vec<u8> {
    let mut body = Vec::with_capacity(INDEX_ENVELOPE_LEN + descriptors.len().min(64) * 320);
    body.extend_from_slice(ENVELOPE_HEAD.as_bytes());
    for (i, descriptor) in descriptors.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let written = serde_json::to_writer(&mut body, descriptor.borrow());
        // Strings, integers and `Value`s always serialize, and a Vec never refuses a write.
        debug_assert!(written.is_ok());
    }
    body.extend_from_slice(ENVELOPE_TAIL.as_bytes());
    body
}

/// `encode_index(descriptors).len()`, without encoding into a buffer.
#[must_use]
pub fn encoded_index_len(descriptors: &[Descriptor]) -> usize {
    let commas = descriptors.len().saturating_sub(1);
    INDEX_ENVELOPE_LEN
        + commas
        + descriptors
            .iter()
            .map(Descriptor::encoded_len)
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST_A: &str =
        "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    const DIGEST_B: &str =
        "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

    fn decode_json(value: &Value) -> Result<DecodedIndex, IndexError> {
        decode_index(&serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn empty_list_encodes_as_an_empty_array() {
        let body = encode_index::<Descriptor>(&[]);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
        );
        assert_eq!(body.len(), INDEX_ENVELOPE_LEN);
        assert_eq!(encoded_index_len(&[]), INDEX_ENVELOPE_LEN);
    }

    #[test]
    fn encoded_length_is_exact() {
        let a = Descriptor::new("m/t", DIGEST_A.parse().unwrap(), 1);
        let mut b = Descriptor::new("m/t", DIGEST_B.parse().unwrap(), 2);
        b.extra.insert("data".into(), json!("e30="));
        for list in [vec![a.clone()], vec![a, b]] {
            assert_eq!(encode_index(&list).len(), encoded_index_len(&list));
        }
    }

    #[test]
    fn bad_descriptor_in_the_middle_is_dropped_and_reported() {
        let decoded = decode_json(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                {"mediaType": "m/t", "digest": DIGEST_A, "size": 1},
                {"mediaType": "m/t", "digest": "sha256:nothex", "size": 1},
                "not an object",
                {"mediaType": "m/t", "digest": DIGEST_B, "size": 2}
            ]
        }))
        .unwrap();
        let digests: Vec<_> = decoded
            .descriptors
            .iter()
            .map(|d| d.digest.as_str())
            .collect();
        assert_eq!(digests, [DIGEST_A, DIGEST_B]);
        let positions: Vec<_> = decoded.rejected.iter().map(|r| r.position).collect();
        assert_eq!(positions, [1, 2]);
        assert!(decoded.rejected[0].reason.contains("digest"));
    }

    #[test]
    fn envelope_fields_are_read_in_any_order_and_unknown_ones_skipped() {
        let body = format!(
            r#"{{"manifests":[{{"mediaType":"m/a","digest":"{DIGEST_A}","size":1,"x":{{"y":[1]}}}}],"annotations":{{"k":"v"}},"mediaType":"{INDEX_MEDIA_TYPE}","schemaVersion":2}}"#
        );
        let decoded = decode_index(body.as_bytes()).unwrap();
        assert_eq!(decoded.descriptors.len(), 1);
        assert_eq!(decoded.descriptors[0].extra["x"], json!({"y": [1]}));
        let late_error =
            format!(r#"{{"manifests":[],"mediaType":"{INDEX_MEDIA_TYPE}","schemaVersion":1}}"#);
        assert_eq!(
            decode_index(late_error.as_bytes()),
            Err(IndexError::UnsupportedSchemaVersion)
        );
        assert!(matches!(
            decode_index(br#"{"manifests":[]} trailing"#),
            Err(IndexError::InvalidJson(_))
        ));
    }

    #[test]
    fn missing_or_null_manifests_is_an_empty_list() {
        for body in [
            json!({"schemaVersion": 2}),
            json!({"manifests": null}),
            json!({}),
        ] {
            assert_eq!(decode_json(&body).unwrap(), DecodedIndex::default());
        }
    }

    #[test]
    fn envelope_errors_fail_the_whole_body() {
        assert_eq!(
            decode_json(&json!({"manifests": {}})),
            Err(IndexError::ManifestsNotArray)
        );
        assert_eq!(
            decode_json(&json!({"schemaVersion": 1, "manifests": []})),
            Err(IndexError::UnsupportedSchemaVersion)
        );
        assert_eq!(
            decode_json(&json!({"schemaVersion": "2", "manifests": []})),
            Err(IndexError::UnsupportedSchemaVersion)
        );
        assert_eq!(
            decode_json(&json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "manifests": []
            })),
            Err(IndexError::WrongMediaType(
                "application/vnd.oci.image.manifest.v1+json".into()
            ))
        );
        assert_eq!(decode_json(&json!([])), Err(IndexError::NotAnObject));
        assert!(matches!(
            decode_index(b"<html>login</html>"),
            Err(IndexError::InvalidJson(_))
        ));
        assert!(matches!(decode_index(b""), Err(IndexError::InvalidJson(_))));
    }

    /// The referrers response example of the distribution-spec ("Listing Referrers"), with
    /// its elided digests filled in.
    #[test]
    fn spec_referrers_example_round_trips() {
        let example = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "size": 1234,
                    "digest": format!("sha256:{}", "a1".repeat(32)),
                    "artifactType": "application/vnd.example.sbom.v1",
                    "annotations": {
                        "org.opencontainers.image.created": "2022-01-01T14:42:55Z",
                        "org.example.sbom.format": "json"
                    }
                },
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "size": 1234,
                    "digest": format!("sha256:{}", "a2".repeat(32)),
                    "artifactType": "application/vnd.example.signature.v1",
                    "annotations": {
                        "org.opencontainers.image.created": "2022-01-01T07:21:33Z",
                        "org.example.signature.fingerprint": "abcd"
                    }
                }
            ]
        });
        let decoded = decode_json(&example).unwrap();
        assert!(decoded.rejected.is_empty());
        assert_eq!(decoded.descriptors.len(), 2);
        let first = &decoded.descriptors[0];
        assert_eq!(
            first.artifact_type(),
            Some("application/vnd.example.sbom.v1")
        );
        assert_eq!(
            first.annotations.as_ref().unwrap()["org.example.sbom.format"],
            "json"
        );
        assert_eq!(
            decoded.descriptors[1].artifact_type(),
            Some("application/vnd.example.signature.v1")
        );
        let encoded: Value = serde_json::from_slice(&encode_index(&decoded.descriptors)).unwrap();
        assert_eq!(encoded, example);
    }
}
