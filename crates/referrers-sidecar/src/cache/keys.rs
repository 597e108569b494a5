//! Every Redis key and channel the sidecar uses, built here and nowhere else: a cached list's
//! key, its cross-replica lock, the indexes a purge finds lists by, a stored referrer's claim,
//! the purge channel, and which lists a purge takes. Replicas of different versions share one
//! Redis: these strings change only with the version in their prefix.

#[cfg(test)]
mod tests;

use oci_referrers::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

/// What every key and channel starts with: the sidecar and the version of its key scheme.
const PREFIX: &str = "referrers-sidecar:v2";

/// The namespace of this sidecar's keys: `cache.namespace`, else a hash of `harbor.url`, so
/// that two Harbors share entries only when told to.
#[must_use]
pub fn namespace(configured: Option<&str>, harbor_url: &Url) -> String {
    configured.map_or_else(|| short_hash(harbor_url.as_str()), str::to_owned)
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// `referrers-sidecar:v2:<namespace>:<registry_id>:<scope>:<upstream_repo>@<digest>`, where
/// `scope` is the registry's [`crate::upstream::registry_scope`]. The namespace keeps two
/// Harbors sharing one Redis DB apart.
#[must_use]
pub fn cache_key(
    namespace: &str,
    registry_id: i64,
    scope: &str,
    repository: &str,
    digest: &Digest,
) -> String {
    format!(
        "{}{scope}:{repository}@{digest}",
        registry_prefix(namespace, registry_id)
    )
}

/// What every key of one Harbor registry starts with:
/// `referrers-sidecar:v2:<namespace>:<registry_id>:`.
#[must_use]
fn registry_prefix(namespace: &str, registry_id: i64) -> String {
    format!("{PREFIX}:{namespace}:{registry_id}:")
}

/// A cached list's key taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKey<'a> {
    pub registry_id: i64,
    /// The repository on the upstream.
    pub repository: &'a str,
    pub digest: Digest,
}

impl<'a> ListKey<'a> {
    /// `key` taken apart, when it is a cached list's key under `namespace` (never a lock key).
    #[must_use]
    pub fn parse(namespace: &str, key: &'a str) -> Option<Self> {
        let rest = key
            .strip_prefix(PREFIX)?
            .strip_prefix(':')?
            .strip_prefix(namespace)?
            .strip_prefix(':')?;
        let (registry_id, rest) = rest.split_once(':')?;
        // `<url hash>:<identity hash>:<repository>@<digest>`
        let (hashes_and_repository, digest) = rest.split_once('@')?;
        let mut parts = hashes_and_repository.splitn(3, ':');
        let (Some(_url), Some(_identity), Some(repository)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Self {
            // Harbor's ids are positive: a sign or a leading zero is no key of ours.
            registry_id: registry_id
                .parse()
                .ok()
                .filter(|id: &i64| id.to_string() == registry_id)?,
            repository,
            // A lock key (`…@<digest>:lock`) or a foreign one does not parse.
            digest: digest.parse().ok()?,
        })
    }
}

/// Where a cached list is listed for purges, in Redis: the index of its repository (sorted set
/// `referrers-sidecar:v2:<namespace>:lists:<registry_id>:<repository>`, the lists' keys scored
/// by when they expire), and the index of its registry (sorted set
/// `referrers-sidecar:v2:<namespace>:lists:<registry_id>`, the repositories, scored likewise).
/// A purge reads these, never the keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListIndex {
    pub repository_index: String,
    pub registry_index: String,
    /// The repository, as the registry's index lists it.
    pub repository: String,
}

impl ListIndex {
    #[must_use]
    pub fn new(namespace: &str, registry_id: i64, repository: &str) -> Self {
        let registry_index = registry_index(namespace, registry_id);
        Self {
            repository_index: format!("{registry_index}:{repository}"),
            registry_index,
            repository: repository.to_owned(),
        }
    }

    /// Where the list under `key` is listed; `None` for a key that is not a cached list's.
    #[must_use]
    pub fn of(namespace: &str, key: &str) -> Option<Self> {
        let list = ListKey::parse(namespace, key)?;
        Some(Self::new(namespace, list.registry_id, list.repository))
    }
}

/// The index of the repositories of Harbor registry `registry_id` that have lists:
/// `referrers-sidecar:v2:<namespace>:lists:<registry_id>`.
#[must_use]
pub fn registry_index(namespace: &str, registry_id: i64) -> String {
    format!("{PREFIX}:{namespace}:lists:{registry_id}")
}

/// The cross-replica lock of a key.
#[must_use]
pub fn lock_key(key: &str) -> String {
    format!("{key}:lock")
}

/// The claim of one replica on storing `stored` (`<repository>@<digest>`) in Harbor:
/// `referrers-sidecar:v2:<namespace>:stored:<repository>@<digest>`.
#[must_use]
pub fn claim_key(namespace: &str, stored: &str) -> String {
    format!("{PREFIX}:{namespace}:stored:{stored}")
}

/// The pub/sub channel purges travel on, one per namespace: two Harbors sharing one Redis
/// never purge each other's lists (channels are not per database).
#[must_use]
pub fn purge_channel(namespace: &str) -> String {
    format!("{PREFIX}:{namespace}:purge")
}

/// The lists one purge drops — a Harbor registry's, one upstream repository's there, or one
/// subject's. Keys hold the Harbor registry, not the project: a project's purge drops the
/// lists of its registry, whichever project proxies it. (Serialized as it travels to other
/// replicas.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeScope {
    pub registry_id: i64,
    /// The repository on the upstream (`library/nginx` for Docker Hub's `nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// One subject of that repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

impl PurgeScope {
    /// Whether `key` is a cached list of this scope under `namespace` (never a lock key).
    #[must_use]
    pub fn matches(&self, namespace: &str, key: &str) -> bool {
        ListKey::parse(namespace, key).is_some_and(|list| {
            list.registry_id == self.registry_id
                && self
                    .repository
                    .as_deref()
                    .is_none_or(|r| r == list.repository)
                && self.digest.as_ref().is_none_or(|d| *d == list.digest)
        })
    }
}
