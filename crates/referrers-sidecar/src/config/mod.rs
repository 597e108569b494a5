//! The configuration: every key with its default (this file, and `cache` and `upstream` for
//! those sections), loading from YAML and the environment (`load`), secrets (`secret`) and
//! validation at start (`validate`).
//!
//! Every key and its default lives in these three files and nowhere else. The YAML file is read first,
//! then `REFERRERS_SIDECAR__SECTION__KEY` environment variables override any key; secrets may be
//! given inline or as `*_file`, and are resolved (read) once, at load time.

mod cache;
mod human_duration;
mod load;
mod notes;
mod redis_url;
mod secret;
#[cfg(test)]
mod tests;
mod trace;
mod upstream;
mod validate;

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use registry_client::RegistryType;
use serde::{Deserialize, Serialize};
use url::Url;

pub use cache::{CacheBackend, CacheSettings};
pub use load::{ENV_PREFIX, ENV_SEPARATOR};
pub use redis_url::{InvalidRedisUrl, RedisServers, RedisUrl};
pub use secret::{Secret, mask_password};
pub use trace::TraceSettings;
pub use upstream::UpstreamSettings;
pub use validate::HARBOR_TAKEN_REDIS_DBS;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Referrers, pass-through, `/healthz` and `/readyz`; `[::]` means every address, IPv6
    /// and IPv4.
    pub listen: SocketAddr,
    /// `/metrics` (Harbor's metrics port).
    pub metrics_listen: SocketAddr,
    pub harbor: HarborSettings,
    pub projects: ProjectsSettings,
    /// Upstream credentials and registry facts, keyed by a lowercase alias.
    pub registries: BTreeMap<String, RegistrySettings>,
    pub cache: CacheSettings,
    pub upstream: UpstreamSettings,
    pub response: ResponseSettings,
    pub webhook: WebhookSettings,
    /// The operator API: how often each project's purges and statuses may be asked.
    pub operator: OperatorSettings,
    /// Upstream signatures and SBOMs pulled into Harbor (`projects.store_in_harbor`).
    pub store: StoreSettings,
    pub log: LogSettings,
    /// OpenTelemetry traces (off by default).
    pub trace: TraceSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 8080)),
            metrics_listen: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 8001)),
            harbor: HarborSettings::default(),
            projects: ProjectsSettings::default(),
            registries: BTreeMap::new(),
            cache: CacheSettings::default(),
            upstream: UpstreamSettings::default(),
            response: ResponseSettings::default(),
            webhook: WebhookSettings::default(),
            operator: OperatorSettings::default(),
            store: StoreSettings::default(),
            log: LogSettings::default(),
            trace: TraceSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarborSettings {
    /// Core's internal URL (https with Harbor's internal TLS).
    #[serde(with = "secret::url_key")]
    pub url: Url,
    /// CA bundle for core's internal TLS.
    pub ca_file: Option<PathBuf>,
    /// Robot account (≥ 2.10: project read + registry read) or user for Harbor's REST API.
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    #[serde(with = "human_duration")]
    pub connect_timeout: Duration,
    /// Connections to core kept by the whole process (split evenly across workers), in use and
    /// idle together.
    pub max_connections: usize,
    #[serde(with = "human_duration")]
    pub project_info_ttl: Duration,
}

/// Where the chart mounts the robot's password; a missing file here means "no password".
pub const DEFAULT_HARBOR_PASSWORD_FILE: &str = "/etc/referrers-sidecar/harbor-password";

impl Default for HarborSettings {
    fn default() -> Self {
        Self {
            url: Url::parse("http://harbor-core:8080").expect("the default core URL parses"),
            ca_file: None,
            username: Some("robot$referrers-sidecar".into()),
            password: None,
            password_file: Some(PathBuf::from(DEFAULT_HARBOR_PASSWORD_FILE)),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_connections: 256,
            project_info_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectsSettings {
    /// Proxy-cache projects served, or `["*"]` for every proxy-cache project.
    #[serde(deserialize_with = "load::list_or_comma_separated")]
    pub enabled: Vec<String>,
    /// A proxy-cache project carrying a project label of exactly this name is served too, so
    /// a Harbor project admin can switch it on; `null` turns the mechanism off.
    pub label: Option<String>,
    /// Served projects whose upstream signatures and SBOMs are pulled through core, so that
    /// Harbor stores them as accessories; `["*"]` for every served project. Empty by default
    /// (only `store_label` opts a project in): each pull is an upstream manifest pull and
    /// counts against the project's quota.
    #[serde(deserialize_with = "load::list_or_comma_separated")]
    pub store_in_harbor: Vec<String>,
    /// A served project carrying a project label of exactly this name is stored in Harbor
    /// too, so a Harbor project admin can opt in; read from the same listing of the project's
    /// labels as `label`. `null` turns the mechanism off.
    pub store_label: Option<String>,
}

impl Default for ProjectsSettings {
    fn default() -> Self {
        Self {
            enabled: vec!["dockerhub-proxy".into()],
            label: Some("referrers-proxy".into()),
            store_in_harbor: Vec::new(),
            store_label: Some("referrers-proxy-store".into()),
        }
    }
}

impl ProjectsSettings {
    /// Whether the toggle is on for `project` (it must still be a proxy-cache project).
    #[must_use]
    pub fn is_enabled(&self, project: &str) -> bool {
        self.enabled.iter().any(|p| p == "*" || p == project)
    }

    /// Whether `projects.store_in_harbor` names `project` (or is `["*"]`).
    #[must_use]
    pub fn stores_in_harbor(&self, project: &str) -> bool {
        self.store_in_harbor
            .iter()
            .any(|p| p == "*" || p == project)
    }

    /// Whether any project may be stored in Harbor: by the list or by the label.
    #[must_use]
    pub fn may_store_in_harbor(&self) -> bool {
        !self.store_in_harbor.is_empty() || self.store_label.is_some()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Harbor registry name or id this entry belongs to.
    pub harbor_registry: String,
    /// Credentials are sent only to this host (and the token realm it names).
    pub host: String,
    /// Registry type; required when Harbor's registries API is not readable (Harbor < 2.10).
    #[serde(default, rename = "type")]
    pub registry_type: Option<RegistryType>,
    /// Registry URL; likewise.
    #[serde(default, with = "secret::url_key::option")]
    pub url: Option<Url>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseSettings {
    /// The whole time one referrers request may take: core's answer, Harbor's facts, the cache
    /// and the upstream all spend from it (admission webhooks give up at about 10 s).
    #[serde(with = "human_duration")]
    pub deadline: Duration,
    /// Page size in bytes for requests without `n` (what clients accept as a manifest).
    pub max_bytes: usize,
    /// Largest `n` a client may ask for.
    pub max_page_size: usize,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(8),
            max_bytes: 4 * 1024 * 1024,
            max_page_size: 1000,
        }
    }
}

/// Harbor's webhooks (`POST /referrers-sidecar/v1/webhooks/harbor`): a pulled artifact's
/// upstream referrers are fetched in the background, so the first verification is a hit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// The `Authorization` header Harbor sends, exactly as the webhook policy's auth header
    /// says; none (here or in the file) turns the endpoint off (404).
    pub auth_header: Option<Secret>,
    pub auth_header_file: Option<PathBuf>,
    /// Pulled digests waiting for their warm fetch; when it is full, more are counted and
    /// dropped (Harbor is never kept waiting).
    pub queue_size: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            auth_header: None,
            auth_header_file: None,
            queue_size: 1024,
        }
    }
}

/// How often the operator API takes one project's calls, in each replica: past a budget, a
/// call gets `429` with `Retry-After` and nothing is done; and how a project's warm-up is
/// paced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorSettings {
    /// Purges of one project in any minute, at most.
    pub purges_per_minute: u32,
    /// Status calls for one project in any minute, at most (a budget of its own: readers
    /// asking a public project's status never hold back its admins' purges).
    pub status_per_minute: u32,
    /// Upstream listings that warming a project (`referrers-sidecar warm`) starts per registry
    /// and minute, at most, spread evenly: a whole project's warm-up never spends the
    /// upstream's rate limit at once. Fresh lists take no turn.
    pub warm_per_minute: u32,
    /// Artifacts of one project waiting for their turn or being warmed at once, at most; more
    /// get `429` (the warm command sends 4 at a time).
    pub warm_queue_per_project: u32,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            purges_per_minute: 6,
            status_per_minute: 60,
            warm_per_minute: 60,
            warm_queue_per_project: 8,
        }
    }
}

/// How upstream referrers are pulled into Harbor for the projects `projects.store_in_harbor`
/// (or `projects.store_label`) names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Only referrers of these artifact types are pulled: signatures, attestations and SBOMs,
    /// what Harbor's UI and policies (or a verifier reading Harbor) look for. Empty: none.
    #[serde(deserialize_with = "load::list_or_comma_separated")]
    pub artifact_types: Vec<String>,
    /// Upstream manifest `GET`s per registry and hour, at most, in each replica: the check of a
    /// referrer and core's pull of it are one each, and Docker Hub counts each as a pull. The
    /// default is half of what Docker Hub allows an anonymous address (10 an hour).
    pub pulls_per_hour: u32,
    /// Referrers waiting per registry at most; when full, new ones are dropped (and offered
    /// again later).
    pub queue_size: usize,
    /// The bytes a referrer's config and layers may declare in all: one declaring more is not
    /// pulled (Harbor would download and store that much).
    pub max_artifact_bytes: u64,
    /// Referrers of one subject queued, checked or stored within `cache.keep_stale_for`, at
    /// most: the rest of its list is not pulled.
    pub max_per_subject: u32,
    /// The key `pulls_per_hour` replaced, still accepted so that an older configuration (or a
    /// chart's reused values) starts; never read, and named in a warning.
    #[serde(skip_serializing)]
    pub pulls_per_minute: Option<u32>,
}

/// `store.pulls_per_hour`'s default: Docker Hub allows an anonymous address 10 manifest
/// `GET`s an hour; the store takes half, the other half is left to Harbor's own pulls.
pub const DEFAULT_STORE_PULLS_PER_HOUR: u32 = 5;

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            artifact_types: [
                // cosign signatures, and cosign's sigstore bundles (Harbor >= 2.15 types them)
                "application/vnd.dev.cosign.artifact.sig.v1+json",
                "application/vnd.dev.sigstore.bundle.v0.3+json",
                // notation signatures
                "application/vnd.cncf.notary.signature",
                // in-toto attestations
                "application/vnd.in-toto+json",
                // SBOMs
                "application/spdx+json",
                "application/vnd.cyclonedx+json",
            ]
            .map(str::to_owned)
            .to_vec(),
            pulls_per_hour: DEFAULT_STORE_PULLS_PER_HOUR,
            queue_size: 1000,
            max_artifact_bytes: 8 * 1024 * 1024,
            max_per_subject: 32,
            pulls_per_minute: None,
        }
    }
}

impl StoreSettings {
    /// The artifact types, parsed (validated at start).
    #[must_use]
    pub fn parsed_artifact_types(&self) -> Vec<oci_referrers::ArtifactType> {
        self.artifact_types
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `debug`, or `info,referrers_sidecar=debug`.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(String),
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}
