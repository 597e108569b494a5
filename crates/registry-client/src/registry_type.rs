//! Harbor's registry types (the `type` of its registries API and of `registries.<alias>.type`),
//! one list for the configuration and the endpoint mapping, and which of them this client
//! can reach.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A registry type as Harbor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum RegistryType {
    /// `docker-hub`: Harbor stores Docker Hub's web address; the API lives elsewhere.
    DockerHub,
    /// `harbor`.
    Harbor,
    /// `docker-registry`: any distribution registry.
    DockerRegistry,
    /// `github-ghcr`.
    GithubGhcr,
    /// `gitlab`.
    Gitlab,
    /// `quay`.
    Quay,
    /// `jfrog-artifactory`.
    JfrogArtifactory,
    /// `google-gcr`.
    GoogleGcr,
    /// `google-gar` (Artifact Registry).
    GoogleGar,
    /// `azure-acr`.
    AzureAcr,
    /// `huawei-SWR` (Harbor spells it with capitals).
    HuaweiSwr,
    /// `dtr` (Mirantis/Docker Trusted Registry).
    Dtr,
    /// `aws-ecr`.
    AwsEcr,
    /// `ali-acr`.
    AliAcr,
    /// `tencent-tcr`.
    TencentTcr,
    /// `volcengine-cr`.
    VolcengineCr,
    /// `helm-hub`.
    HelmHub,
    /// `artifact-hub`.
    ArtifactHub,
    /// `huggingface`.
    Huggingface,
}

/// A type name Harbor did not have when this list was written, or a typo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown registry type {name:?}; one of {}", RegistryType::names().join(", "))]
pub struct UnknownRegistryType {
    /// As given.
    pub name: String,
}

impl RegistryType {
    /// Every type, in the order the error message lists them.
    pub const ALL: [Self; 19] = [
        Self::DockerHub,
        Self::Harbor,
        Self::DockerRegistry,
        Self::GithubGhcr,
        Self::Gitlab,
        Self::Quay,
        Self::JfrogArtifactory,
        Self::GoogleGcr,
        Self::GoogleGar,
        Self::AzureAcr,
        Self::HuaweiSwr,
        Self::Dtr,
        Self::AwsEcr,
        Self::AliAcr,
        Self::TencentTcr,
        Self::VolcengineCr,
        Self::HelmHub,
        Self::ArtifactHub,
        Self::Huggingface,
    ];

    /// Harbor's name of the type.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DockerHub => "docker-hub",
            Self::Harbor => "harbor",
            Self::DockerRegistry => "docker-registry",
            Self::GithubGhcr => "github-ghcr",
            Self::Gitlab => "gitlab",
            Self::Quay => "quay",
            Self::JfrogArtifactory => "jfrog-artifactory",
            Self::GoogleGcr => "google-gcr",
            Self::GoogleGar => "google-gar",
            Self::AzureAcr => "azure-acr",
            Self::HuaweiSwr => "huawei-SWR",
            Self::Dtr => "dtr",
            Self::AwsEcr => "aws-ecr",
            Self::AliAcr => "ali-acr",
            Self::TencentTcr => "tencent-tcr",
            Self::VolcengineCr => "volcengine-cr",
            Self::HelmHub => "helm-hub",
            Self::ArtifactHub => "artifact-hub",
            Self::Huggingface => "huggingface",
        }
    }

    /// Every type's name.
    #[must_use]
    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|t| t.as_str()).collect()
    }

    /// Why this client cannot list a registry of this type, or `None` when it can.
    ///
    /// The supported types authenticate with the distribution challenge: anonymous, basic,
    /// or bearer tokens fetched with basic credentials (GCR and GAR take the `_json_key` user
    /// that way, ACR a service principal, SWR its long-term login).
    #[must_use]
    pub const fn unsupported_reason(self) -> Option<&'static str> {
        match self {
            Self::DockerHub
            | Self::Harbor
            | Self::DockerRegistry
            | Self::GithubGhcr
            | Self::Gitlab
            | Self::Quay
            | Self::JfrogArtifactory
            | Self::GoogleGcr
            | Self::GoogleGar
            | Self::AzureAcr
            | Self::HuaweiSwr
            | Self::Dtr => None,
            Self::AwsEcr => {
                Some("ECR credentials are AWS keys that sign a GetAuthorizationToken call (SigV4)")
            }
            Self::AliAcr => Some(
                "ACR EE credentials are Aliyun access keys traded for a temporary login by its OpenAPI",
            ),
            Self::TencentTcr => Some(
                "TCR credentials are Tencent Cloud keys traded for a temporary login by its API",
            ),
            Self::VolcengineCr => {
                Some("CR credentials are Volcengine keys traded for a temporary login by its API")
            }
            Self::HelmHub | Self::ArtifactHub => Some("a Helm chart index, not an OCI registry"),
            Self::Huggingface => Some("a model hub, not an OCI registry"),
        }
    }
}

impl fmt::Display for RegistryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RegistryType {
    type Err = UnknownRegistryType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| UnknownRegistryType {
                name: name.to_owned(),
            })
    }
}

impl TryFrom<String> for RegistryType {
    type Error = UnknownRegistryType;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<RegistryType> for &'static str {
    fn from(registry_type: RegistryType) -> Self {
        registry_type.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for registry_type in RegistryType::ALL {
            assert_eq!(
                registry_type.as_str().parse::<RegistryType>(),
                Ok(registry_type)
            );
            assert_eq!(registry_type.to_string(), registry_type.as_str());
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_valid_ones() {
        let error = "new-cloud".parse::<RegistryType>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"new-cloud\""), "{message}");
        for name in RegistryType::names() {
            assert!(message.contains(name), "{message} should list {name}");
        }
        // Harbor's spelling is exact.
        assert!("huawei-swr".parse::<RegistryType>().is_err());
    }

    #[test]
    fn google_gar_and_dtr_are_reachable_and_ecr_is_not() {
        assert_eq!(RegistryType::GoogleGar.unsupported_reason(), None);
        assert_eq!(RegistryType::Dtr.unsupported_reason(), None);
        assert!(
            RegistryType::AwsEcr
                .unsupported_reason()
                .is_some_and(|r| r.contains("SigV4"))
        );
    }
}
