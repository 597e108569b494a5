//! Where the upstream referrers of one repository are fetched: a registry as the upstream
//! client calls it, the repository there, and what the registry's cache keys are told apart by.

use std::sync::Arc;

use oci_referrers::RepositoryName;
use registry_client::{Registry, RegistryKind, map_repository};
use sha2::{Digest as _, Sha256};

/// Where to fetch the upstream referrers of one repository.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub registry: Arc<Registry>,
    /// What the registry's cache keys are told apart by (its URL and the identity lists are
    /// fetched as): [`registry_scope`], worked out once with the registry.
    pub cache_scope: Arc<str>,
    /// The repository on the upstream (`library/nginx` for Docker Hub's `nginx`).
    pub repository: String,
    /// Docker Hub keeps single-segment names under `library/`, and so does Harbor locally.
    pub library_mapped: bool,
}

impl UpstreamTarget {
    /// `repository` (as named on the upstream) on `registry`.
    #[must_use]
    pub fn new(registry: Registry, repository: String, library_mapped: bool) -> Self {
        Self {
            cache_scope: registry_scope(&registry).into(),
            registry: Arc::new(registry),
            repository,
            library_mapped,
        }
    }

    /// `repository` (as named in Harbor, without the project) on `registry`, whose
    /// [`registry_scope`] is `cache_scope`: Docker Hub's single-segment names are under
    /// `library/` there. `Err` says why the name has no upstream form.
    pub fn in_registry(
        registry: Arc<Registry>,
        cache_scope: Arc<str>,
        repository: &str,
    ) -> Result<Self, String> {
        let kind = registry.kind;
        Ok(Self {
            repository: map_repository(kind, repository).map_err(|e| e.to_string())?,
            library_mapped: kind == RegistryKind::DockerHub && !repository.contains('/'),
            registry,
            cache_scope,
        })
    }

    /// Where Harbor keeps the content of `name` (`<project>/<repository>`): under
    /// `<project>/library/` for Docker Hub's single-segment names.
    #[must_use]
    pub fn harbor_name(&self, name: &RepositoryName) -> Option<RepositoryName> {
        if !self.library_mapped {
            return Some(name.clone());
        }
        format!("{}/library/{}", name.project(), name.repository()?)
            .parse()
            .ok()
    }
}

/// `<hash of upstream URL>:<hash of the credential identity>`: the URL hash keeps apart two
/// registries that Harbor once gave the same id; the identity (the registry label and a hash
/// of the username, never the secret; `anonymous` without bound credentials), lists fetched as
/// different users, who may see different ones. Worked out once per registry, with its
/// resolution, not on every request.
#[must_use]
pub fn registry_scope(registry: &Registry) -> String {
    format!(
        "{}:{}",
        short_hash(registry.base_url.as_str()),
        short_hash(&registry.credential_identity())
    )
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}
