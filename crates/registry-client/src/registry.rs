//! The upstream a listing talks to, and the credentials bound to it.

use std::fmt;

use sha2::{Digest as _, Sha256};
use url::Url;

/// How a registry is to be treated beyond the distribution spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryKind {
    /// Docker Hub: a `GET` of a manifest counts as a pull against the rate limit, so the
    /// fallback tag is checked with `HEAD` first.
    DockerHub,
    /// Any registry that follows the distribution spec and its token auth.
    Distribution,
}

/// One upstream registry, as resolved from Harbor's registry record and the sidecar config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// Label for metrics and per-registry state: the config alias or Harbor's registry name.
    pub name: String,
    /// Where the registry API lives, already mapped (`https://registry-1.docker.io`).
    pub base_url: Url,
    /// How to treat it.
    pub kind: RegistryKind,
    /// Harbor's `insecure` flag: plain HTTP and unverified TLS are allowed only then.
    pub insecure: bool,
    /// Credentials from the sidecar config, if any.
    pub credentials: Option<Credentials>,
}

/// A username and password bound to one upstream host: sent only when the registry's URL has
/// that host, and only to it and the token realm it names.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username (or robot name).
    pub username: String,
    /// Password or access token; never printed.
    pub password: String,
    /// The host these credentials belong to, e.g. `registry-1.docker.io` (a `:port` may follow).
    pub bound_host: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"********")
            .field("bound_host", &self.bound_host)
            .finish()
    }
}

impl Registry {
    /// The credentials to use with this registry: only when they are bound to its host, so
    /// renaming or repointing a registry in Harbor never sends them elsewhere.
    #[must_use]
    pub fn bound_credentials(&self) -> Option<&Credentials> {
        let credentials = self.credentials.as_ref()?;
        let host = self.base_url.host_str()?;
        let bound = credentials.bound_host.trim().trim_end_matches('.');
        let matches = match self.base_url.port() {
            // An explicit port must match when the binding names one.
            Some(port) => {
                bound.eq_ignore_ascii_case(&format!("{host}:{port}"))
                    || bound.eq_ignore_ascii_case(host)
            }
            None => {
                bound.eq_ignore_ascii_case(host)
                    || self
                        .base_url
                        .port_or_known_default()
                        .is_some_and(|port| bound.eq_ignore_ascii_case(&format!("{host}:{port}")))
            }
        };
        matches.then_some(credentials)
    }

    /// Who this client is towards the registry: `<name>/<hash of the username>` when bound
    /// credentials are used, `anonymous` otherwise. Never holds the secret, so it may key
    /// shared state and appear in logs; two registries share it only when they would
    /// authenticate the same way.
    #[must_use]
    pub fn credential_identity(&self) -> String {
        match self.bound_credentials() {
            Some(credentials) => {
                let hash = Sha256::digest(credentials.username.as_bytes());
                format!("{}/{}", self.name, hex::encode(&hash[..8]))
            }
            None => "anonymous".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(url: &str, bound_host: &str) -> Registry {
        Registry {
            name: "r".into(),
            base_url: url.parse().unwrap(),
            kind: RegistryKind::Distribution,
            insecure: false,
            credentials: Some(Credentials {
                username: "u".into(),
                password: "secret".into(),
                bound_host: bound_host.into(),
            }),
        }
    }

    #[test]
    fn credentials_only_for_their_host() {
        assert!(
            registry("https://registry-1.docker.io", "registry-1.docker.io")
                .bound_credentials()
                .is_some()
        );
        assert!(
            registry("https://Registry-1.Docker.io", "registry-1.docker.io")
                .bound_credentials()
                .is_some()
        );
        assert!(
            registry("https://evil.example", "registry-1.docker.io")
                .bound_credentials()
                .is_none()
        );
        assert!(
            registry(
                "https://registry-1.docker.io.evil.example",
                "registry-1.docker.io"
            )
            .bound_credentials()
            .is_none()
        );
        assert!(
            registry("http://127.0.0.1:5000", "127.0.0.1:5000")
                .bound_credentials()
                .is_some()
        );
        assert!(
            registry("http://127.0.0.1:5001", "127.0.0.1:5000")
                .bound_credentials()
                .is_none()
        );
        assert!(
            registry("https://r.example", "r.example:443")
                .bound_credentials()
                .is_some()
        );
    }

    #[test]
    fn the_identity_names_the_user_by_hash_and_never_the_secret() {
        let bound = registry("https://r.example", "r.example");
        let identity = bound.credential_identity();
        assert!(identity.starts_with("r/"), "{identity}");
        assert!(
            !identity.contains("secret") && !identity.contains('u'),
            "{identity}"
        );
        let mut other_user = bound.clone();
        if let Some(credentials) = &mut other_user.credentials {
            credentials.username = "v".into();
        }
        assert_ne!(other_user.credential_identity(), identity);
        let mut other_password = bound.clone();
        if let Some(credentials) = &mut other_password.credentials {
            credentials.password = "other".into();
        }
        assert_eq!(other_password.credential_identity(), identity);
        let unbound = registry("https://elsewhere.example", "r.example");
        assert_eq!(unbound.credential_identity(), "anonymous");
    }

    #[test]
    fn debug_masks_the_password() {
        let text = format!("{:?}", registry("https://r.example", "r.example"));
        assert!(!text.contains("secret"));
        assert!(text.contains("********"));
    }
}
