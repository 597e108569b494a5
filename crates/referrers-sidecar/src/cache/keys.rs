//! Every Redis key and channel the sidecar uses, built here and nowhere else: a cached list's
//! key, its cross-replica lock, a stored referrer's claim, the purge channel, and which keys a
//! purge takes (as a `SCAN` pattern and as a test on a key). Replicas of different versions
//! share one Redis: these strings change only with the version in their prefix.

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
    /// A Redis `MATCH` pattern for every key of this scope under `namespace` (and, for a
    /// repository, its lock keys too: [`Self::matches`] tells them apart).
    #[must_use]
    pub fn pattern(&self, namespace: &str) -> String {
        let prefix = glob_escape(&registry_prefix(namespace, self.registry_id));
        match (&self.repository, &self.digest) {
            // The URL and identity hashes are hex: the last `:` before the repository is the
            // one that ends them (repository names hold no `:`).
            (Some(repository), Some(digest)) => {
                format!(
                    "{prefix}*:{}@{}",
                    glob_escape(repository),
                    glob_escape(digest.as_ref())
                )
            }
            (Some(repository), None) => format!("{prefix}*:{}@*", glob_escape(repository)),
            (None, _) => format!("{prefix}*"),
        }
    }

    /// Whether `key` is a cached list of this scope under `namespace` (never a lock key).
    #[must_use]
    pub fn matches(&self, namespace: &str, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(&registry_prefix(namespace, self.registry_id)) else {
            return false;
        };
        // `<url hash>:<identity hash>:<repository>@<digest>`
        let Some((hashes_and_repository, digest)) = rest.split_once('@') else {
            return false;
        };
        let mut parts = hashes_and_repository.splitn(3, ':');
        let (Some(_url), Some(_identity), Some(repository)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(digest) = digest.parse::<Digest>() else {
            // A lock key (`…@<digest>:lock`) or a foreign one.
            return false;
        };
        self.repository.as_deref().is_none_or(|r| r == repository)
            && self.digest.as_ref().is_none_or(|d| *d == digest)
    }
}

/// `text` matched literally in a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
