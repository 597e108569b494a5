//! The referrers response body: an OCI image index, decoded leniently and encoded exactly.

use serde_json::Value;

use crate::descriptor::Descriptor;

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
    let value: Value =
        serde_json::from_slice(bytes).map_err(|err| IndexError::InvalidJson(err.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(IndexError::NotAnObject);
    };
    match object.get("schemaVersion") {
        None | Some(Value::Null) => {}
        Some(version) if version.as_u64() == Some(2) => {}
        Some(_) => return Err(IndexError::UnsupportedSchemaVersion),
    }
    match object.get("mediaType") {
        None | Some(Value::Null) => {}
        Some(Value::String(media_type)) if media_type == INDEX_MEDIA_TYPE => {}
        Some(Value::String(media_type)) => {
            return Err(IndexError::WrongMediaType(media_type.clone()));
        }
        Some(other) => return Err(IndexError::WrongMediaType(other.to_string())),
    }
    let manifests = match object.remove("manifests") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(manifests)) => manifests,
        Some(_) => return Err(IndexError::ManifestsNotArray),
    };
    let mut decoded = DecodedIndex::default();
    for (position, element) in manifests.into_iter().enumerate() {
        match Descriptor::try_from(element) {
            Ok(descriptor) => decoded.descriptors.push(descriptor),
            Err(err) => decoded.rejected.push(RejectedDescriptor {
                position,
                reason: err.to_string(),
            }),
        }
    }
    Ok(decoded)
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
