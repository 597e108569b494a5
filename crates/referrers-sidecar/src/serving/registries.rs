//! Which upstream a proxy-cache project's registry is: Harbor's registries API, else the
//! configuration; as the upstream client calls it (API origin, kind, and only the credentials
//! bound to that registry's host), worked out once per reading of Harbor's facts about it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use harbor_client::RegistryInfo;
use registry_client::{Credentials, Registry, RegistryType, map_registry};

use crate::config::RegistrySettings;
use crate::upstream::registry_scope;

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

/// Registry `registry_id` from what Harbor said of it (`harbor`, when it did) and the
/// configuration's `registries`.
fn registry_of(
    configured: &BTreeMap<String, RegistrySettings>,
    registry_id: i64,
    harbor: Option<&RegistryInfo>,
) -> Result<UpstreamRegistry, String> {
    let configured = configured_registry(configured, registry_id, harbor.map(|r| r.name.as_str()));
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

/// Harbor registries as the upstream client calls them (API origin, kind, the credentials
/// bound to them), worked out once per reading of Harbor's facts about each, not on every
/// request. One entry per registry a served project proxies.
pub struct Registries {
    /// The configuration's `registries`.
    configured: BTreeMap<String, RegistrySettings>,
    resolved: RwLock<HashMap<i64, Resolved>>,
}

/// One registry as resolved, and the facts it was resolved from.
struct Resolved {
    from: Option<Arc<RegistryInfo>>,
    registry: Result<ClientRegistry, String>,
}

/// A registry as the upstream client calls it, and the part of cache keys that names it.
#[derive(Debug, Clone)]
pub struct ClientRegistry {
    pub registry: Arc<Registry>,
    pub cache_scope: Arc<str>,
}

impl From<Registry> for ClientRegistry {
    fn from(registry: Registry) -> Self {
        Self {
            cache_scope: registry_scope(&registry).into(),
            registry: Arc::new(registry),
        }
    }
}

impl Registries {
    #[must_use]
    pub fn new(configured: BTreeMap<String, RegistrySettings>) -> Self {
        Self {
            configured,
            resolved: RwLock::default(),
        }
    }

    /// Registry `registry_id` as the sidecar sees it, from what Harbor said of it (`harbor`,
    /// when it did) and the configuration.
    pub fn describe(
        &self,
        registry_id: i64,
        harbor: Option<&RegistryInfo>,
    ) -> Result<UpstreamRegistry, String> {
        registry_of(&self.configured, registry_id, harbor)
    }

    /// Registry `registry_id` as the upstream client calls it, from what Harbor said of it
    /// (`harbor`, when it did) and the configuration; resolved again when Harbor's facts were
    /// read anew.
    pub fn resolved(
        &self,
        registry_id: i64,
        harbor: Option<&Arc<RegistryInfo>>,
    ) -> Result<ClientRegistry, String> {
        let from_these = |resolved: &&Resolved| match (&resolved.from, harbor) {
            (Some(from), Some(harbor)) => Arc::ptr_eq(from, harbor),
            (None, None) => true,
            _ => false,
        };
        if let Some(resolved) = self
            .resolved
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&registry_id)
            .filter(from_these)
        {
            return resolved.registry.clone();
        }
        let registry = registry_of(&self.configured, registry_id, harbor.map(AsRef::as_ref))
            .and_then(|registry| client_registry(&self.configured, registry))
            .map(ClientRegistry::from);
        self.resolved
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                registry_id,
                Resolved {
                    from: harbor.cloned(),
                    registry: registry.clone(),
                },
            );
        registry
    }
}

/// `registry` as the upstream client calls it, with the credentials configured for it.
fn client_registry(
    configured: &BTreeMap<String, RegistrySettings>,
    registry: UpstreamRegistry,
) -> Result<Registry, String> {
    let UpstreamRegistry {
        name: label,
        alias,
        registry_type,
        url,
        insecure,
    } = registry;
    let (base_url, kind) = map_registry(registry_type, &url).map_err(|e| e.to_string())?;
    // Credentials only from the entry that belongs to this registry.
    let configured = alias.as_deref().and_then(|alias| configured.get(alias));
    let credentials = configured.and_then(|entry| {
        Some(Credentials {
            username: entry.username.clone()?,
            password: entry.password.as_ref()?.expose().to_owned(),
            bound_host: entry.host.clone(),
        })
    });
    let registry = Registry {
        name: label,
        base_url,
        kind,
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
    Ok(registry)
}

/// The configuration entry for a Harbor registry, by name or id.
fn configured_registry<'a>(
    configured: &'a BTreeMap<String, RegistrySettings>,
    registry_id: i64,
    harbor_name: Option<&str>,
) -> Option<(&'a str, &'a RegistrySettings)> {
    let id = registry_id.to_string();
    configured
        .iter()
        .find(|(_, entry)| {
            entry.harbor_registry == id || harbor_name.is_some_and(|n| entry.harbor_registry == n)
        })
        .map(|(alias, entry)| (alias.as_str(), entry))
}

#[cfg(test)]
mod tests {
    use registry_client::RegistryKind;

    use super::*;
    use crate::upstream::UpstreamTarget;

    fn harbor_registry(url: &str) -> Arc<RegistryInfo> {
        Arc::new(RegistryInfo {
            id: 7,
            name: "hub".into(),
            url: url.into(),
            registry_type: "docker-hub".into(),
            insecure: false,
            status: None,
            ca_certificate: None,
        })
    }

    #[test]
    fn a_registry_is_resolved_once_per_reading_of_harbors_facts() {
        let registries = Registries::new(BTreeMap::new());
        let read = harbor_registry("https://hub.docker.com");
        let first = registries.resolved(7, Some(&read)).unwrap();
        assert_eq!(
            first.registry.base_url.as_str(),
            "https://registry-1.docker.io/"
        );
        assert_eq!(first.registry.kind, RegistryKind::DockerHub);
        assert_eq!(*first.cache_scope, registry_scope(&first.registry));
        let again = registries.resolved(7, Some(&read)).unwrap();
        assert!(
            Arc::ptr_eq(&first.registry, &again.registry),
            "the same facts: not resolved again"
        );

        // Harbor's facts read anew (here: the registry moved to a mirror).
        let reread = harbor_registry("https://mirror.example/v2");
        let moved = registries.resolved(7, Some(&reread)).unwrap();
        assert_eq!(moved.registry.base_url.as_str(), "https://mirror.example/");
        assert_ne!(moved.cache_scope, first.cache_scope);
        let target =
            UpstreamTarget::in_registry(moved.registry, moved.cache_scope, "nginx").unwrap();
        assert_eq!(target.repository, "library/nginx");
        assert!(target.library_mapped);
    }

    #[test]
    fn why_a_registry_cannot_be_resolved_is_kept_with_the_facts() {
        let registries = Registries::new(BTreeMap::new());
        let error = registries.resolved(7, None).unwrap_err();
        assert!(error.contains("no facts for Harbor registry 7"), "{error}");
        let unusable = harbor_registry("ftp://hub.example");
        let error = registries.resolved(7, Some(&unusable)).unwrap_err();
        assert!(error.contains("scheme"), "{error}");
    }
}
