//! A manifest pulled through core with the sidecar's robot account: in a proxy-cache project,
//! core fetches it from the upstream and stores it, as it does for any client.

use awc::http::{Method, header};
use oci_referrers::{Digest, INDEX_MEDIA_TYPE, RepositoryName};

use crate::api::CoreClient;
use crate::error::HarborError;

/// Largest manifest read (what registries accept as a manifest).
const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;

/// The manifest types a pull accepts: OCI and Docker, single and index.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl CoreClient {
    /// `GET /v2/<name>/manifests/<digest>` with the robot account; the manifest is read and
    /// dropped (the pull is what matters), and its size returned. `401` is
    /// [`HarborError::Unauthorized`]: core answers it both for bad credentials and for an
    /// account that may not pull from the project.
    pub async fn pull_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<usize, HarborError> {
        self.bounded(self.pull_manifest_unbounded(name, digest))
            .await
    }

    async fn pull_manifest_unbounded(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<usize, HarborError> {
        let what = format!("manifest {name}@{digest}");
        let mut request = self
            .connections
            .request(
                Method::GET,
                &self.url(&format!("/v2/{name}/manifests/{digest}")),
            )
            .insert_header((
                header::ACCEPT,
                format!("{MANIFEST_ACCEPT}, {INDEX_MEDIA_TYPE}"),
            ));
        if let Some(credentials) = &self.credentials {
            request = request.insert_header((header::AUTHORIZATION, credentials.header_value()));
        }
        let (mut response, _slot) = self
            .connections
            .send(request.send(), std::future::ready(()))
            .await
            .map_err(|e| HarborError::from_send(&e))?;
        match response.status().as_u16() {
            200 => {}
            401 => return Err(HarborError::Unauthorized(what)),
            403 => return Err(HarborError::Forbidden(what)),
            status => return Err(HarborError::Status { what, status }),
        }
        let body = response
            .body()
            .limit(MANIFEST_LIMIT)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Overflow => HarborError::TooLarge {
                    what,
                    limit: MANIFEST_LIMIT,
                },
                other => HarborError::Unreachable(other.to_string()),
            })?;
        Ok(body.len())
    }
}
