//! The sidecar's configuration file, typed: tests set what they need with setters, and this
//! module alone knows the YAML keys it is written with.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::users::User;

/// A configuration for one sidecar. Unset keys keep the service's defaults; the listeners are
/// always free loopback ports and the logs JSON, which [`crate::Sidecar`] reads.
#[derive(Debug, Clone, Serialize)]
pub struct SidecarConfig {
    listen: &'static str,
    metrics_listen: &'static str,
    log: Log,
    harbor: Harbor,
    #[serde(skip_serializing_if = "is_default")]
    projects: Projects,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    registries: BTreeMap<String, Registry>,
    #[serde(skip_serializing_if = "is_default")]
    upstream: Upstream,
    #[serde(skip_serializing_if = "is_default")]
    cache: Cache,
    #[serde(skip_serializing_if = "is_default")]
    response: Response,
    #[serde(skip_serializing_if = "is_default")]
    webhook: Webhook,
}

#[derive(Debug, Clone, Serialize)]
struct Log {
    format: &'static str,
    level: &'static str,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Harbor {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    timeout: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    connect_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    project_info_ttl: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Projects {
    enabled: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    store_in_harbor: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    store_label: Option<String>,
}

/// Credentials and facts for one upstream registry (`registries.<alias>`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registry {
    harbor_registry: String,
    host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl Registry {
    /// The registry Harbor names `harbor_registry`, reached at `host`.
    #[must_use]
    pub fn new(harbor_registry: &str, host: &str) -> Self {
        Self {
            harbor_registry: harbor_registry.into(),
            host: host.into(),
            username: None,
            password: None,
        }
    }

    /// Credentials for the upstream, bound to `host`.
    #[must_use]
    pub fn credentials(mut self, username: &str, password: &str) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Upstream {
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_private_realms: Option<bool>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pages: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    breaker_failures: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    breaker_cooldown: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Cache {
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    redis_timeout: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    fresh_for: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    keep_stale_for: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    keep_empty_for: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_entry_bytes: Option<usize>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    lock_ttl: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Response {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "human_duration"
    )]
    deadline: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_page_size: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
struct Webhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_size: Option<usize>,
}

impl SidecarConfig {
    /// A sidecar in front of Harbor core at `harbor_url`, everything else at its default.
    #[must_use]
    pub fn new(harbor_url: &str) -> Self {
        Self {
            listen: "127.0.0.1:0",
            metrics_listen: "127.0.0.1:0",
            log: Log {
                format: "json",
                level: "info",
            },
            harbor: Harbor {
                url: harbor_url.into(),
                ..Harbor::default()
            },
            projects: Projects::default(),
            registries: BTreeMap::new(),
            upstream: Upstream::default(),
            cache: Cache::default(),
            response: Response::default(),
            webhook: Webhook::default(),
        }
    }

    /// The file's text.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("configuration YAML")
    }

    /// `harbor.url`.
    #[must_use]
    pub fn harbor_url(mut self, url: &str) -> Self {
        self.harbor.url = url.into();
        self
    }

    /// `harbor.username` and `harbor.password`: the sidecar's robot account.
    #[must_use]
    pub fn robot(mut self, robot: User) -> Self {
        self.harbor.username = Some(robot.name.into());
        self.harbor.password = Some(robot.password.into());
        self
    }

    /// `harbor.timeout`.
    #[must_use]
    pub fn harbor_timeout(mut self, timeout: Duration) -> Self {
        self.harbor.timeout = Some(timeout);
        self
    }

    /// `harbor.connect_timeout`.
    #[must_use]
    pub fn harbor_connect_timeout(mut self, timeout: Duration) -> Self {
        self.harbor.connect_timeout = Some(timeout);
        self
    }

    /// `harbor.max_connections`.
    #[must_use]
    pub fn harbor_max_connections(mut self, connections: usize) -> Self {
        self.harbor.max_connections = Some(connections);
        self
    }

    /// `harbor.project_info_ttl`: how long Harbor's facts (and a project's labels) are kept.
    #[must_use]
    pub fn project_info_ttl(mut self, ttl: Duration) -> Self {
        self.harbor.project_info_ttl = Some(ttl);
        self
    }

    /// `projects.enabled` (`*` enables every proxy-cache project).
    #[must_use]
    pub fn enable<S: AsRef<str>>(mut self, projects: &[S]) -> Self {
        self.projects.enabled = projects.iter().map(|p| p.as_ref().to_owned()).collect();
        self
    }

    /// `projects.store_in_harbor`: projects whose upstream signatures and SBOMs are pulled into
    /// Harbor.
    #[must_use]
    pub fn store_in_harbor(mut self, projects: &[&str]) -> Self {
        self.projects.store_in_harbor = projects.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// `projects.store_label`: the project label that does the same.
    #[must_use]
    pub fn store_label(mut self, label: &str) -> Self {
        self.projects.store_label = Some(label.into());
        self
    }

    /// `registries.<alias>`.
    #[must_use]
    pub fn registry(mut self, alias: &str, registry: Registry) -> Self {
        self.registries.insert(alias.into(), registry);
        self
    }

    /// `upstream.allow_private_realms: true`: upstreams (and their token realms) on loopback,
    /// as every upstream of this suite is.
    #[must_use]
    pub fn allow_private_realms(mut self) -> Self {
        self.upstream.allow_private_realms = Some(true);
        self
    }

    /// `upstream.timeout`.
    #[must_use]
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream.timeout = Some(timeout);
        self
    }

    /// `upstream.max_pages`.
    #[must_use]
    pub fn max_pages(mut self, pages: usize) -> Self {
        self.upstream.max_pages = Some(pages);
        self
    }

    /// `upstream.breaker_failures` and `upstream.breaker_cooldown`.
    #[must_use]
    pub fn registry_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.upstream.breaker_failures = Some(failures);
        self.upstream.breaker_cooldown = Some(cooldown);
        self
    }

    /// `cache.backend: redis` with `cache.redis_url`.
    #[must_use]
    pub fn redis(mut self, url: &str) -> Self {
        self.cache.backend = Some("redis");
        self.cache.redis_url = Some(url.into());
        self
    }

    /// `cache.redis_timeout`.
    #[must_use]
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.cache.redis_timeout = Some(timeout);
        self
    }

    /// `cache.fresh_for`.
    #[must_use]
    pub fn fresh_for(mut self, lifetime: Duration) -> Self {
        self.cache.fresh_for = Some(lifetime);
        self
    }

    /// `cache.keep_stale_for`.
    #[must_use]
    pub fn keep_stale_for(mut self, lifetime: Duration) -> Self {
        self.cache.keep_stale_for = Some(lifetime);
        self
    }

    /// `cache.keep_empty_for`.
    #[must_use]
    pub fn keep_empty_for(mut self, lifetime: Duration) -> Self {
        self.cache.keep_empty_for = Some(lifetime);
        self
    }

    /// `cache.max_entry_bytes`.
    #[must_use]
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.cache.max_entry_bytes = Some(bytes);
        self
    }

    /// `cache.lock_ttl`.
    #[must_use]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.cache.lock_ttl = Some(ttl);
        self
    }

    /// `response.deadline`.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.response.deadline = Some(deadline);
        self
    }

    /// `webhook.auth_header`: the `Authorization` Harbor's webhooks must carry.
    #[must_use]
    pub fn webhook_auth_header(mut self, header: &str) -> Self {
        self.webhook.auth_header = Some(header.into());
        self
    }

    /// `webhook.queue_size`.
    #[must_use]
    pub fn webhook_queue_size(mut self, size: usize) -> Self {
        self.webhook.queue_size = Some(size);
        self
    }

    /// `response.max_bytes`.
    #[must_use]
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.response.max_bytes = Some(bytes);
        self
    }

    /// `response.max_page_size`.
    #[must_use]
    pub fn max_page_size(mut self, size: usize) -> Self {
        self.response.max_page_size = Some(size);
        self
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Durations as the service reads them (`250ms`, `2s`, `1h`).
#[allow(clippy::ref_option)] // serde hands `serialize_with` a reference to the field.
fn human_duration<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => {
            serializer.serialize_str(&humantime::format_duration(*duration).to_string())
        }
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_set_are_written() {
        let yaml = SidecarConfig::new("http://127.0.0.1:9")
            .robot(crate::users::ROBOT)
            .enable(&["hub-proxy"])
            .fresh_for(Duration::from_secs(2))
            .redis_timeout(Duration::from_millis(250))
            .registry("hub", Registry::new("hub", "registry-1.docker.io"))
            .to_yaml();
        let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("YAML");
        assert_eq!(parsed["harbor"]["url"], "http://127.0.0.1:9");
        assert_eq!(parsed["harbor"]["username"], crate::users::ROBOT.name);
        assert!(parsed["harbor"].get("timeout").is_none(), "{yaml}");
        assert_eq!(parsed["projects"]["enabled"][0], "hub-proxy");
        assert_eq!(parsed["cache"]["fresh_for"], "2s");
        assert_eq!(parsed["cache"]["redis_timeout"], "250ms");
        assert!(parsed["cache"].get("backend").is_none(), "{yaml}");
        assert!(parsed.get("upstream").is_none(), "{yaml}");
        assert_eq!(parsed["registries"]["hub"]["host"], "registry-1.docker.io");
        assert_eq!(parsed["listen"], "127.0.0.1:0");
    }
}
