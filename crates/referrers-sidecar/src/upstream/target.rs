//! Which upstream a proxy-cache project's repository lives on: which registry (Harbor's
//! registries API, else the configuration), which repository there, and which credentials
//! (only those bound to that registry's host).

use harbor_client::{CoreClient, RegistryInfo};
use oci_referrers::RepositoryName;
use registry_client::{Credentials, Registry, RegistryKind, RegistryType, map_endpoint};

use crate::config::{RegistrySettings, Settings};
use crate::harbor::HarborFacts;
use crate::metrics::Metrics;

/// Where to fetch the upstream referrers of one repository.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub registry: Registry,
    /// The repository on the upstream (`library/nginx` for Docker Hub's `nginx`).
    pub repository: String,
    /// Docker Hub keeps single-segment names under `library/`, and so does Harbor locally.
    pub library_mapped: bool,
}

/// A Harbor registry as the sidecar sees it: its label (the configuration's alias, else
/// Harbor's name), type, URL as stored and whether it is insecure.
#[derive(Debug, Clone)]
pub struct UpstreamRegistry {
    pub name: String,
    /// The `registries` entry that belongs to this registry (by Harbor name or id), if any.
    pub alias: Option<String>,
    pub registry_type: RegistryType,
    pub url: url::Url,
    pub insecure: bool,
}

/// The facts of Harbor registry `registry_id`, from Harbor's registries API, else the
/// configuration. `Err` says why they cannot be had.
pub async fn registry_facts(
    settings: &Settings,
    facts: &HarborFacts,
    core: &CoreClient,
    metrics: &Metrics,
    registry_id: i64,
) -> Result<UpstreamRegistry, String> {
    let harbor = facts
        .registry(core, registry_id, metrics)
        .await
        .map_err(|e| format!("registry {registry_id}: {e}"))?;
    registry_of(settings, registry_id, harbor.as_deref())
}

/// Registry `registry_id` from what Harbor said of it (`harbor`, when it did) and the
/// configuration.
fn registry_of(
    settings: &Settings,
    registry_id: i64,
    harbor: Option<&RegistryInfo>,
) -> Result<UpstreamRegistry, String> {
    let configured = configured_registry(settings, registry_id, harbor.map(|r| r.name.as_str()));
    match (harbor, &configured) {
        (Some(info), alias) => Ok(UpstreamRegistry {
            name: alias.map_or_else(|| info.name.clone(), |(alias, _)| (*alias).to_owned()),
            alias: alias.map(|(alias, _)| alias.to_owned()),
            registry_type: info
                .registry_type
                .parse()
                .map_err(|e| format!("Harbor registry {registry_id} ({}): {e}", info.name))?,
            url: url::Url::parse(info.url.trim()).map_err(|e| {
                format!(
                    "Harbor registry {registry_id} ({}): URL {:?}: {e}",
                    info.name,
                    crate::config::mask_password(&info.url)
                )
            })?,
            insecure: info.insecure,
        }),
        (None, Some((alias, entry))) => match (&entry.registry_type, &entry.url) {
            (Some(t), Some(u)) => Ok(UpstreamRegistry {
                name: (*alias).to_owned(),
                alias: Some((*alias).to_owned()),
                registry_type: *t,
                url: u.clone(),
                insecure: entry.insecure,
            }),
            _ => Err(format!(
                "Harbor's registries API is not readable: set registries.{alias}.type and .url"
            )),
        },
        (None, None) => Err(format!(
            "no facts for Harbor registry {registry_id}: give the robot registry read (Harbor >= 2.10) or add a registries entry with harbor_registry: \"{registry_id}\", type and url"
        )),
    }
}

impl UpstreamTarget {
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

/// Works out the upstream of `repository` (the name without `<project>/`) in a proxy-cache
/// project whose Harbor registry is `registry_id`. `Err` says why no upstream call is made.
pub async fn resolve(
    settings: &Settings,
    facts: &HarborFacts,
    core: &CoreClient,
    metrics: &Metrics,
    registry_id: i64,
    repository: &str,
) -> Result<UpstreamTarget, String> {
    let registry = registry_facts(settings, facts, core, metrics, registry_id).await?;
    target_in(settings, registry, repository)
}

/// [`resolve`] from the registry facts at hand, without asking Harbor: `None` when they are
/// not (or when they give no target).
pub async fn resolve_cached(
    settings: &Settings,
    facts: &HarborFacts,
    registry_id: i64,
    repository: &str,
) -> Option<UpstreamTarget> {
    let harbor = facts.cached_registry(registry_id).await?;
    let registry = registry_of(settings, registry_id, harbor.as_deref()).ok()?;
    target_in(settings, registry, repository).ok()
}

/// `repository` on `registry`, with the credentials configured for it.
fn target_in(
    settings: &Settings,
    registry: UpstreamRegistry,
    repository: &str,
) -> Result<UpstreamTarget, String> {
    let UpstreamRegistry {
        name: label,
        alias,
        registry_type,
        url,
        insecure,
    } = registry;
    let endpoint = map_endpoint(registry_type, &url, repository).map_err(|e| e.to_string())?;
    // Credentials only from the entry that belongs to this registry.
    let configured = alias
        .as_deref()
        .and_then(|alias| settings.registries.get(alias));
    let credentials = configured.and_then(|entry| {
        Some(Credentials {
            username: entry.username.clone()?,
            password: entry.password.as_ref()?.expose().to_owned(),
            bound_host: entry.host.clone(),
        })
    });
    let registry = Registry {
        name: label,
        base_url: endpoint.base_url,
        kind: endpoint.kind,
        insecure,
        credentials,
    };
    if registry.credentials.is_some() && registry.bound_credentials().is_none() {
        tracing::warn!(
            registry = %registry.name,
            url = %registry.base_url,
            "credentials are bound to another host than this registry's; calling anonymously"
        );
    }
    Ok(UpstreamTarget {
        library_mapped: registry.kind == RegistryKind::DockerHub && !repository.contains('/'),
        registry,
        repository: endpoint.repository,
    })
}

/// The configuration entry for a Harbor registry, by name or id.
fn configured_registry<'a>(
    settings: &'a Settings,
    registry_id: i64,
    harbor_name: Option<&str>,
) -> Option<(&'a str, &'a RegistrySettings)> {
    let id = registry_id.to_string();
    settings
        .registries
        .iter()
        .find(|(_, entry)| {
            entry.harbor_registry == id || harbor_name.is_some_and(|n| entry.harbor_registry == n)
        })
        .map(|(alias, entry)| (alias.as_str(), entry))
}
