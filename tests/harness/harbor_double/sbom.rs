//! Harbor's SBOM generation (2.11+): an SBOM accessory of an artifact, in the layout Harbor
//! documents for it (artifactType `application/vnd.goharbor.harbor.sbom.v1`, the empty config,
//! one uncompressed SPDX layer, the artifact as `subject`), stored in the artifact's
//! repository as Harbor stores it — through core's own `/v2` API, so the accessory is recorded
//! and core's referrers endpoint lists it. No upstream has it: a referrer only Harbor has,
//! fetchable by digest like any manifest.

use bytes::Bytes;
use serde_json::json;

use super::HarborDouble;
use crate::proxy_cache::CachedManifest;
use crate::upstreams::{MANIFEST_MEDIA_TYPE, Pushed, sha256_digest};

/// The artifact type Harbor gives the SBOMs it generates.
pub const HARBOR_SBOM: &str = "application/vnd.goharbor.harbor.sbom.v1";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const SPDX: &str = "application/spdx+json";

impl HarborDouble {
    /// Generates an SBOM of `subject` in `repository` (`<project>/<repo>`), as a project admin
    /// does with "GENERATE SBOM"; returns the accessory as a referrers list describes it.
    pub fn generate_sbom(&self, repository: &str, subject: &Pushed) -> Pushed {
        let config = Bytes::from_static(b"{}");
        let sbom = Bytes::from(
            json!({
                "spdxVersion": "SPDX-2.3",
                "SPDXID": "SPDXRef-DOCUMENT",
                "name": format!("{repository}@{}", subject.digest),
                "packages": [],
            })
            .to_string(),
        );
        let annotations = json!({
            "created-by": "Harbor",
            "org.opencontainers.artifact.created": "2026-01-01T00:00:00Z",
            "org.opencontainers.artifact.description": "SPDX JSON SBOM",
        });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": HARBOR_SBOM,
            "config": {
                "mediaType": EMPTY_MEDIA_TYPE,
                "digest": sha256_digest(&config),
                "size": config.len(),
                "data": "e30=",
            },
            "layers": [{"mediaType": SPDX, "digest": sha256_digest(&sbom), "size": sbom.len()}],
            "annotations": annotations,
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifest JSON"));
        let stored = CachedManifest {
            media_type: MANIFEST_MEDIA_TYPE.into(),
            bytes,
        };
        let pushed = Pushed {
            digest: stored.digest(),
            size: stored.bytes.len(),
            media_type: MANIFEST_MEDIA_TYPE.into(),
            artifact_type: Some(HARBOR_SBOM.into()),
            annotations,
        };
        for blob in [config, sbom] {
            self.store_blob(repository, blob);
        }
        self.store_manifest(repository, stored);
        pushed
    }
}
