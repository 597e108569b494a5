//! From Harbor's registry record (type, stored URL) and a repository to what this client
//! calls: the API base URL, the kind, and the upstream repository name.

use url::Url;

use crate::registry::RegistryKind;
use crate::registry_type::RegistryType;

/// Docker Hub's registry API; Harbor stores `https://hub.docker.com` for the `docker-hub` type.
pub const DOCKER_HUB_REGISTRY: &str = "https://registry-1.docker.io";

/// Host names that mean Docker Hub itself.
const DOCKER_HUB_HOSTS: &[&str] = &[
    "hub.docker.com",
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Where to list referrers for one repository of one Harbor registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The registry API origin.
    pub base_url: Url,
    /// How to treat the registry.
    pub kind: RegistryKind,
    /// The repository name on the upstream (`library/alpine` for Docker Hub's `alpine`).
    pub repository: String,
}

/// Why a Harbor registry cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The type's authentication is not the distribution token flow, or it is not an OCI
    /// registry at all; listing it would mean guessing.
    #[error("registry type {registry_type} is not supported: {reason}")]
    Unsupported {
        /// Harbor's registry type.
        registry_type: RegistryType,
        /// What it would take.
        reason: &'static str,
    },
    /// The stored URL is not an http(s) URL with a host, or carries credentials.
    #[error("registry URL {url:?} is not usable: {reason}")]
    InvalidUrl {
        /// As stored.
        url: String,
        /// Why.
        reason: String,
    },
    /// The repository is empty.
    #[error("repository name is empty")]
    EmptyRepository,
}

/// Maps a Harbor registry record and a repository (already stripped of `<project>/`) to
/// what to call: [`map_registry`] then [`map_repository`].
///
/// # Errors
///
/// [`EndpointError`] for types this client cannot authenticate to, unusable URLs and empty
/// repositories.
pub fn map_endpoint(
    registry_type: RegistryType,
    stored_url: &Url,
    repository: &str,
) -> Result<Endpoint, EndpointError> {
    if repository.is_empty() {
        return Err(EndpointError::EmptyRepository);
    }
    let (base_url, kind) = map_registry(registry_type, stored_url)?;
    Ok(Endpoint {
        repository: map_repository(kind, repository)?,
        base_url,
        kind,
    })
}

/// The part of the mapping that depends on the registry alone: its API origin and kind.
///
/// # Errors
///
/// [`EndpointError`] for types this client cannot authenticate to and unusable URLs.
pub fn map_registry(
    registry_type: RegistryType,
    stored_url: &Url,
) -> Result<(Url, RegistryKind), EndpointError> {
    if let Some(reason) = registry_type.unsupported_reason() {
        return Err(EndpointError::Unsupported {
            registry_type,
            reason,
        });
    }
    if registry_type != RegistryType::DockerHub {
        return Ok((base_url(stored_url)?, RegistryKind::Distribution));
    }
    // Harbor stores Docker Hub's web address; its registry API lives elsewhere. A docker-hub
    // entry pointing at another host (a Docker Hub mirror) is called there.
    let is_docker_hub = stored_url
        .host_str()
        .map(str::to_ascii_lowercase)
        .is_none_or(|host| DOCKER_HUB_HOSTS.contains(&host.as_str()));
    let base_url = if is_docker_hub {
        Url::parse(DOCKER_HUB_REGISTRY).map_err(|e| EndpointError::InvalidUrl {
            url: DOCKER_HUB_REGISTRY.into(),
            reason: e.to_string(),
        })?
    } else {
        base_url(stored_url)?
    };
    Ok((base_url, RegistryKind::DockerHub))
}

/// The repository's name on a registry of `kind`.
///
/// # Errors
///
/// [`EndpointError::EmptyRepository`] for an empty name.
pub fn map_repository(kind: RegistryKind, repository: &str) -> Result<String, EndpointError> {
    if repository.is_empty() {
        return Err(EndpointError::EmptyRepository);
    }
    Ok(
        if kind == RegistryKind::DockerHub && !repository.contains('/') {
            // Docker Hub's official images live under `library/`.
            format!("library/{repository}")
        } else {
            repository.to_owned()
        },
    )
}

/// The stored URL reduced to its origin.
fn base_url(stored_url: &Url) -> Result<Url, EndpointError> {
    let invalid = |reason: String| {
        // The error is logged: never with a password from the stored URL.
        let mut shown = stored_url.clone();
        let _ = shown.set_password(None);
        EndpointError::InvalidUrl {
            url: shown.to_string(),
            reason,
        }
    };
    let mut url = stored_url.clone();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("scheme is not http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL".into()));
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect(text)
    }
    use RegistryType::{
        AliAcr, AwsEcr, DockerHub, DockerRegistry, GithubGhcr, Harbor, HelmHub, Quay, TencentTcr,
    };

    #[test]
    fn docker_hub_maps_to_the_registry_host_and_library() {
        let mirror = map_endpoint(DockerHub, &url("http://127.0.0.1:5000"), "alpine").unwrap();
        assert_eq!(mirror.base_url.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(mirror.repository, "library/alpine");
        assert_eq!(mirror.kind, RegistryKind::DockerHub);
        let endpoint = map_endpoint(DockerHub, &url("https://hub.docker.com"), "alpine").unwrap();
        assert_eq!(endpoint.base_url.as_str(), "https://registry-1.docker.io/");
        assert_eq!(endpoint.kind, RegistryKind::DockerHub);
        assert_eq!(endpoint.repository, "library/alpine");
        let endpoint =
            map_endpoint(DockerHub, &url("https://hub.docker.com"), "bitnami/redis").unwrap();
        assert_eq!(endpoint.repository, "bitnami/redis");
    }

    #[test]
    fn distribution_types_use_the_stored_url_origin() {
        let endpoint =
            map_endpoint(Harbor, &url("https://harbor.example.com:8443/"), "team/app").unwrap();
        assert_eq!(
            endpoint.base_url.as_str(),
            "https://harbor.example.com:8443/"
        );
        assert_eq!(endpoint.kind, RegistryKind::Distribution);
        assert_eq!(endpoint.repository, "team/app");
        let endpoint = map_endpoint(DockerRegistry, &url("http://10.0.0.5:5000"), "app").unwrap();
        assert_eq!(endpoint.base_url.as_str(), "http://10.0.0.5:5000/");
        assert_eq!(endpoint.repository, "app");
        assert!(map_endpoint(GithubGhcr, &url("https://ghcr.io"), "o/r").is_ok());
        assert!(map_endpoint(Quay, &url("https://quay.io"), "o/r").is_ok());
    }

    #[test]
    fn types_that_need_other_auth_are_unsupported_with_a_reason() {
        for kind in [AwsEcr, AliAcr, TencentTcr, HelmHub] {
            let err = map_endpoint(kind, &url("https://x.example"), "r").unwrap_err();
            assert!(
                matches!(err, EndpointError::Unsupported { .. }),
                "{kind}: {err}"
            );
            assert!(err.to_string().contains(kind.as_str()));
        }
        let err = map_endpoint(AwsEcr, &url("https://x"), "r").unwrap_err();
        assert!(err.to_string().contains("SigV4"));
    }

    #[test]
    fn google_gar_and_dtr_use_the_stored_url_origin() {
        for kind in [RegistryType::GoogleGar, RegistryType::Dtr] {
            let endpoint =
                map_endpoint(kind, &url("https://europe-docker.pkg.dev"), "p/r/app").unwrap();
            assert_eq!(endpoint.base_url.as_str(), "https://europe-docker.pkg.dev/");
            assert_eq!(endpoint.kind, RegistryKind::Distribution);
        }
    }

    #[test]
    fn bad_urls_and_names() {
        for text in ["ftp://x", "https://user:pw@x.example", "file:///x"] {
            assert!(
                matches!(
                    map_endpoint(Harbor, &url(text), "r"),
                    Err(EndpointError::InvalidUrl { .. })
                ),
                "{text}"
            );
        }
        assert_eq!(
            map_endpoint(Harbor, &url("https://x"), ""),
            Err(EndpointError::EmptyRepository)
        );
    }
}
