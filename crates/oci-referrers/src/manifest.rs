//! Image manifests read as referrers: the subject one names, the artifact type the referrers
//! API lists it under, and the bytes of blobs it declares. Read to judge a referrer, never
//! written back.
//!
//! REF: <https://github.com/opencontainers/image-spec/blob/main/manifest.md>

use serde::Deserialize;

use crate::digest::Digest;
use crate::media_type::ArtifactType;

/// `mediaType` of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What an image manifest says of itself, as far as a referrer is judged by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// `subject.digest`: the manifest this one refers to; `None` without a `subject`.
    pub subject: Option<Digest>,
    /// The artifact type the referrers API lists the manifest under: its `artifactType`, or
    /// its config's `mediaType` when it has none (or an empty one); `None` when that is no
    /// valid artifact type (a media type with parameters, say).
    ///
    /// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
    pub artifact_type: Option<ArtifactType>,
    /// The `size`s its config and layers declare, added up (saturating at `u64::MAX`): what a
    /// registry that pulls the whole artifact downloads and stores besides the manifest.
    pub declared_bytes: u64,
}

/// Why bytes are not an image manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, a field of the wrong type (a negative or fractional size, a digest that is
    /// none), a required field missing, or a field given twice.
    #[error("not an image manifest: {0}")]
    Decode(String),
    /// `schemaVersion` is not 2.
    #[error("schemaVersion is {0}, not 2")]
    SchemaVersion(u64),
    /// `mediaType` names something else: an index, a Docker manifest.
    #[error("mediaType is {0:?}, not {MANIFEST_MEDIA_TYPE}")]
    MediaType(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: u64,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: RawDescriptor,
    layers: Vec<RawDescriptor>,
    subject: Option<RawSubject>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    size: u64,
}

#[derive(Deserialize)]
struct RawSubject {
    digest: Digest,
}

/// Reads `bytes` as an OCI image manifest (a missing `mediaType` is taken for one, as the
/// image-spec only recommends it). A field given twice is refused: registries written in Go
/// keep the last one, and a reader keeping the first would judge another manifest than the one
/// they store.
///
/// # Errors
///
/// [`ManifestError`] when the bytes are not an image manifest.
pub fn decode_image_manifest(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Decode(e.to_string()))?;
    if raw.schema_version != 2 {
        return Err(ManifestError::SchemaVersion(raw.schema_version));
    }
    if let Some(media_type) = raw.media_type
        && media_type != MANIFEST_MEDIA_TYPE
    {
        return Err(ManifestError::MediaType(media_type));
    }
    let artifact_type = raw
        .artifact_type
        .filter(|t| !t.is_empty())
        .unwrap_or(raw.config.media_type);
    let declared_bytes = raw
        .layers
        .iter()
        .fold(raw.config.size, |sum, layer| sum.saturating_add(layer.size));
    Ok(ImageManifest {
        subject: raw.subject.map(|s| s.digest),
        artifact_type: artifact_type.parse().ok(),
        declared_bytes,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SUBJECT: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const BLOB: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const COSIGN: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

    fn signature() -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": COSIGN,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": BLOB, "size": 2},
            "layers": [
                {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": BLOB, "size": 250},
                {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": BLOB, "size": 1000},
            ],
            "subject": {"mediaType": MANIFEST_MEDIA_TYPE, "digest": SUBJECT, "size": 500},
            "annotations": {"dev.sigstore.cosign/signer": "someone"},
        })
    }

    fn decode(manifest: &Value) -> Result<ImageManifest, ManifestError> {
        decode_image_manifest(manifest.to_string().as_bytes())
    }

    #[test]
    fn a_signature_names_its_subject_type_and_declared_bytes() {
        let manifest = decode(&signature()).unwrap();
        assert_eq!(manifest.subject, Some(SUBJECT.parse().unwrap()));
        assert_eq!(manifest.artifact_type, Some(COSIGN.parse().unwrap()));
        assert_eq!(manifest.declared_bytes, 2 + 250 + 1000);
    }

    #[test]
    fn without_an_artifact_type_the_config_media_type_is_the_type() {
        let mut manifest = signature();
        manifest.as_object_mut().unwrap().remove("artifactType");
        manifest["config"]["mediaType"] = json!("application/vnd.cncf.notary.signature");
        let decoded = decode(&manifest).unwrap();
        assert_eq!(
            decoded.artifact_type,
            Some("application/vnd.cncf.notary.signature".parse().unwrap())
        );
        manifest["artifactType"] = json!("");
        assert_eq!(decode(&manifest).unwrap(), decoded, "empty is none");
        manifest["config"]["mediaType"] = json!("application/json; charset=utf-8");
        assert_eq!(decode(&manifest).unwrap().artifact_type, None);
    }

    #[test]
    fn no_subject_and_no_media_type_are_read() {
        let mut manifest = signature();
        let object = manifest.as_object_mut().unwrap();
        object.remove("subject");
        object.remove("mediaType");
        assert_eq!(decode(&manifest).unwrap().subject, None);
    }

    #[test]
    fn declared_sizes_saturate() {
        let mut manifest = signature();
        manifest["layers"][0]["size"] = json!(u64::MAX);
        assert_eq!(decode(&manifest).unwrap().declared_bytes, u64::MAX);
    }

    #[test]
    fn what_is_no_image_manifest_is_refused() {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []});
        assert!(matches!(decode(&index), Err(ManifestError::Decode(_))));
        let mut typed_index = signature();
        typed_index["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
        assert_eq!(
            decode(&typed_index),
            Err(ManifestError::MediaType(
                "application/vnd.oci.image.index.v1+json".into()
            ))
        );
        let mut old = signature();
        old["schemaVersion"] = json!(1);
        assert_eq!(decode(&old), Err(ManifestError::SchemaVersion(1)));
        for (pointer, value) in [
            ("/layers/0/size", json!(-1)),
            ("/layers/0/size", json!(1.5)),
            ("/config/size", json!("2")),
            ("/subject/digest", json!("sha256:short")),
            ("/layers", json!(null)),
        ] {
            let mut bad = signature();
            *bad.pointer_mut(pointer).unwrap() = value.clone();
            assert!(
                matches!(decode(&bad), Err(ManifestError::Decode(_))),
                "{pointer} = {value}"
            );
        }
        assert!(decode_image_manifest(b"<html>").is_err());
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let twice = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"a/b","digest":"{BLOB}","size":2}},"layers":[],"subject":{{"digest":"{SUBJECT}"}},"subject":{{"digest":"{BLOB}"}}}}"#
        );
        assert!(matches!(
            decode_image_manifest(twice.as_bytes()),
            Err(ManifestError::Decode(_))
        ));
    }
}
