//! Which cached lists a purge drops — a Harbor registry's, one upstream repository's there, or
//! one subject's — told apart on the keys of [`super::entry::cache_key`], both as a Redis `SCAN`
//! pattern and as a test on a key, and the message that carries a purge to every replica.

use oci_referrers::Digest;
use serde::{Deserialize, Serialize};

use super::entry::registry_prefix;

/// The lists one purge drops. Keys hold the Harbor registry, not the project: a project's
/// purge drops the lists of its registry, whichever project proxies it.
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

    /// The message that carries this purge from the replica `origin` to the others.
    #[must_use]
    pub fn to_message(&self, origin: &str) -> Vec<u8> {
        let message = PurgeMessage {
            origin: origin.to_owned(),
            scope: self.clone(),
        };
        // Strings and a number always serialize.
        serde_json::to_vec(&message).unwrap_or_default()
    }

    /// The replica that sent a purge message, and the purge; `None` for anything else.
    #[must_use]
    pub fn from_message(bytes: &[u8]) -> Option<(String, Self)> {
        let message: PurgeMessage = serde_json::from_slice(bytes).ok()?;
        Some((message.origin, message.scope))
    }
}

/// A purge as it travels: the sender hears its own message too, and skips it by `origin`.
#[derive(Serialize, Deserialize)]
struct PurgeMessage {
    origin: String,
    #[serde(flatten)]
    scope: PurgeScope,
}

/// The pub/sub channel purges travel on, one per namespace: two Harbors sharing one Redis
/// never purge each other's lists (channels are not per database).
#[must_use]
pub fn purge_channel(namespace: &str) -> String {
    format!("referrers-sidecar:v2:{namespace}:purge")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::{cache_key, lock_key};
    use crate::upstream::registry_scope;
    use registry_client::{Registry, RegistryKind};

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn key(namespace: &str, registry_id: i64, repository: &str, subject: char) -> String {
        let registry = Registry {
            name: "hub".into(),
            base_url: "https://registry.example/".parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: false,
            credentials: None,
        };
        cache_key(
            namespace,
            registry_id,
            &registry_scope(&registry),
            repository,
            &digest(subject),
        )
    }

    /// A Redis glob, as `SCAN … MATCH` applies it (no character classes needed here).
    fn glob(pattern: &str, text: &str) -> bool {
        fn go(p: &[char], t: &[char]) -> bool {
            match p.split_first() {
                None => t.is_empty(),
                Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
                Some(('\\', rest)) => match (rest.split_first(), t.split_first()) {
                    (Some((pc, prest)), Some((tc, trest))) => pc == tc && go(prest, trest),
                    _ => false,
                },
                Some(('?', rest)) => t.split_first().is_some_and(|(_, trest)| go(rest, trest)),
                Some((pc, rest)) => t
                    .split_first()
                    .is_some_and(|(tc, trest)| pc == tc && go(rest, trest)),
            }
        }
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        go(&p, &t)
    }

    #[test]
    fn each_scope_takes_its_lists_and_no_others_in_both_forms() {
        let ns = "ns";
        let keys = [
            key(ns, 3, "library/nginx", 'a'),
            key(ns, 3, "library/nginx", 'b'),
            key(ns, 3, "team/library/nginx", 'a'),
            key(ns, 3, "library/nginx-old", 'a'),
            key(ns, 31, "library/nginx", 'a'),
            key("other", 3, "library/nginx", 'a'),
        ];
        let scopes = [
            (
                PurgeScope {
                    registry_id: 3,
                    repository: None,
                    digest: None,
                },
                vec![0, 1, 2, 3],
            ),
            (
                PurgeScope {
                    registry_id: 3,
                    repository: Some("library/nginx".into()),
                    digest: None,
                },
                vec![0, 1],
            ),
            (
                PurgeScope {
                    registry_id: 3,
                    repository: Some("library/nginx".into()),
                    digest: Some(digest('b')),
                },
                vec![1],
            ),
        ];
        for (scope, expected) in scopes {
            let pattern = scope.pattern(ns);
            for (i, key) in keys.iter().enumerate() {
                let wanted = expected.contains(&i);
                assert_eq!(scope.matches(ns, key), wanted, "{scope:?} {key}");
                assert_eq!(glob(&pattern, key), wanted, "{pattern} {key}");
                assert!(!scope.matches(ns, &lock_key(key)), "a lock is no list");
            }
        }
    }

    #[test]
    fn a_namespace_with_glob_characters_is_matched_literally() {
        let scope = PurgeScope {
            registry_id: 3,
            repository: None,
            digest: None,
        };
        let pattern = scope.pattern("team*[a]");
        assert!(glob(&pattern, &key("team*[a]", 3, "x", 'a')));
        assert!(!glob(&pattern, &key("teamXa", 3, "x", 'a')));
    }

    #[test]
    fn the_message_round_trips_and_anything_else_is_ignored() {
        let scope = PurgeScope {
            registry_id: 3,
            repository: Some("library/nginx".into()),
            digest: Some(digest('c')),
        };
        assert_eq!(
            PurgeScope::from_message(&scope.to_message("replica-a")),
            Some(("replica-a".to_owned(), scope))
        );
        assert_eq!(PurgeScope::from_message(b"flush everything"), None);
        assert_eq!(purge_channel("ns"), "referrers-sidecar:v2:ns:purge");
    }
}
