//! Whether a referrer's manifest, read from the upstream, is what the list that named it said
//! and worth storing: pure, from the manifest's bytes, what the list said and what the store
//! allows.

use oci_referrers::{ArtifactType, Digest, decode_image_manifest};
use sha2::{Digest as _, Sha256, Sha384, Sha512};

use crate::outcome::PullResult;

/// The largest manifest read: what registries must accept for a manifest (the distribution
/// spec's 4 MiB), far more than a signature's or an SBOM's, which are a few KiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What the list that named a referrer said of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub digest: Digest,
    /// The subject whose list it was.
    pub subject: Digest,
    pub artifact_type: ArtifactType,
}

/// What the store takes.
#[derive(Debug, Clone)]
pub struct Allowed {
    /// `store.artifact_types`.
    pub artifact_types: Vec<ArtifactType>,
    /// `store.max_artifact_bytes`: the config's and the layers' declared sizes, added up.
    pub max_artifact_bytes: u64,
}

/// Why a referrer whose manifest was read is not pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    DigestMismatch,
    Invalid,
    WrongSubject,
    WrongType,
    TooLarge,
}

impl From<Refusal> for PullResult {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::DigestMismatch => Self::DigestMismatch,
            Refusal::Invalid => Self::Invalid,
            Refusal::WrongSubject => Self::WrongSubject,
            Refusal::WrongType => Self::WrongType,
            Refusal::TooLarge => Self::TooLarge,
        }
    }
}

/// Checks the manifest `bytes` of the referrer `listed` names: they must hash to its digest,
/// be an image manifest whose `subject` is the listed subject, whose artifact type (its
/// `artifactType`, or its config's media type) is the listed one and one the store takes, and
/// whose config and layers declare at most `max_artifact_bytes` in all.
pub fn check(bytes: &[u8], listed: &Listed, allowed: &Allowed) -> Result<(), Refusal> {
    if !hashes_to(bytes, &listed.digest) {
        return Err(Refusal::DigestMismatch);
    }
    let manifest = decode_image_manifest(bytes).map_err(|_| Refusal::Invalid)?;
    if manifest.subject.as_ref() != Some(&listed.subject) {
        return Err(Refusal::WrongSubject);
    }
    match &manifest.artifact_type {
        Some(artifact_type)
            if *artifact_type == listed.artifact_type
                && allowed.artifact_types.contains(artifact_type) => {}
        _ => return Err(Refusal::WrongType),
    }
    if manifest.declared_bytes > allowed.max_artifact_bytes {
        return Err(Refusal::TooLarge);
    }
    Ok(())
}

/// Whether `bytes` hash to `digest`, with its algorithm.
fn hashes_to(bytes: &[u8], digest: &Digest) -> bool {
    let hashed = match digest.algorithm() {
        "sha256" => hex::encode(Sha256::digest(bytes)),
        "sha384" => hex::encode(Sha384::digest(bytes)),
        "sha512" => hex::encode(Sha512::digest(bytes)),
        _ => return false,
    };
    hashed == digest.encoded()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const COSIGN: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
    const SPDX: &str = "application/spdx+json";

    fn subject() -> Digest {
        format!("sha256:{}", "1".repeat(64)).parse().unwrap()
    }

    fn manifest(artifact_type: &str, subject: &Digest, layer_size: u64) -> Value {
        let blob = format!("sha256:{}", "2".repeat(64));
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": blob, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": blob, "size": layer_size}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 10},
        })
    }

    /// The manifest's bytes, and what a list naming it under `artifact_type` says.
    fn listed(manifest: &Value, artifact_type: &str) -> (Vec<u8>, Listed) {
        let bytes = serde_json::to_vec(manifest).unwrap();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
            .parse()
            .unwrap();
        let listed = Listed {
            digest,
            subject: subject(),
            artifact_type: artifact_type.parse().unwrap(),
        };
        (bytes, listed)
    }

    fn allowed() -> Allowed {
        Allowed {
            artifact_types: vec![COSIGN.parse().unwrap(), SPDX.parse().unwrap()],
            max_artifact_bytes: 1024,
        }
    }

    #[test]
    fn a_signature_of_the_subject_within_the_bound_is_taken() {
        let (bytes, listed) = listed(&manifest(COSIGN, &subject(), 1022), COSIGN);
        assert_eq!(check(&bytes, &listed, &allowed()), Ok(()));
    }

    #[test]
    fn the_config_and_layers_count_against_the_bound() {
        // 2 bytes of config and 1023 of layer: one over.
        for layer_size in [1023, 1 << 30] {
            let (bytes, named) = listed(&manifest(COSIGN, &subject(), layer_size), COSIGN);
            assert_eq!(check(&bytes, &named, &allowed()), Err(Refusal::TooLarge));
        }
    }

    #[test]
    fn another_subject_or_none_is_refused() {
        let other: Digest = format!("sha256:{}", "3".repeat(64)).parse().unwrap();
        let (bytes, listed_other) = listed(&manifest(COSIGN, &other, 10), COSIGN);
        assert_eq!(
            check(&bytes, &listed_other, &allowed()),
            Err(Refusal::WrongSubject)
        );
        let mut orphan = manifest(COSIGN, &subject(), 10);
        orphan.as_object_mut().unwrap().remove("subject");
        let (bytes, listed) = listed(&orphan, COSIGN);
        assert_eq!(
            check(&bytes, &listed, &allowed()),
            Err(Refusal::WrongSubject)
        );
    }

    #[test]
    fn a_type_other_than_listed_or_not_taken_is_refused() {
        // Listed as a signature, an SBOM in fact: both types are taken, still refused.
        let (bytes, listed_as_signature) = listed(&manifest(SPDX, &subject(), 10), COSIGN);
        assert_eq!(
            check(&bytes, &listed_as_signature, &allowed()),
            Err(Refusal::WrongType)
        );
        let other = "application/vnd.example.other";
        let (bytes, listed_as_other) = listed(&manifest(other, &subject(), 10), other);
        assert_eq!(
            check(&bytes, &listed_as_other, &allowed()),
            Err(Refusal::WrongType)
        );
        // Without an artifactType, the config's media type is the type.
        let mut notation = manifest(COSIGN, &subject(), 10);
        notation.as_object_mut().unwrap().remove("artifactType");
        notation["config"]["mediaType"] = json!(COSIGN);
        let (bytes, listed) = listed(&notation, COSIGN);
        assert_eq!(check(&bytes, &listed, &allowed()), Ok(()));
    }

    #[test]
    fn bytes_that_are_not_what_the_digest_names_are_refused_before_they_are_read() {
        let (bytes, listed) = listed(&manifest(COSIGN, &subject(), 10), COSIGN);
        let mut changed = bytes.clone();
        changed.push(b' ');
        assert_eq!(
            check(&changed, &listed, &allowed()),
            Err(Refusal::DigestMismatch)
        );
        let sha512 = Listed {
            digest: format!("sha512:{}", hex::encode(Sha512::digest(&bytes)))
                .parse()
                .unwrap(),
            ..listed
        };
        assert_eq!(check(&bytes, &sha512, &allowed()), Ok(()));
    }

    #[test]
    fn what_is_no_image_manifest_is_refused() {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []});
        let (bytes, listed) = listed(&index, COSIGN);
        assert_eq!(check(&bytes, &listed, &allowed()), Err(Refusal::Invalid));
    }
}
