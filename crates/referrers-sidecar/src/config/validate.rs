//! Validation at start: every value checked once, the error naming the key at fault (what is
//! said of a valid configuration is in `notes`).

use std::time::Duration;

use url::Url;

use super::{
    CacheSettings, ConfigError, HarborSettings, OperatorSettings, RegistrySettings,
    ResponseSettings, Settings, StoreSettings, UpstreamSettings, WebhookSettings,
};

/// Harbor's own Redis DB indexes (core, jobservice, registry, Trivy, …): sharing them risks
/// key collisions and `FLUSHDB` accidents, so the default is 10 and these get a warning.
pub const HARBOR_TAKEN_REDIS_DBS: &[u16] = &[0, 1, 2, 5, 6, 7];

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.check_durations()?;
        self.harbor.validate()?;
        validate_projects("projects.enabled", &self.projects.enabled)?;
        validate_projects("projects.store_in_harbor", &self.projects.store_in_harbor)?;
        for (key, label) in [
            ("projects.label", &self.projects.label),
            ("projects.store_label", &self.projects.store_label),
        ] {
            if label.as_deref().is_some_and(|l| l.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    key,
                    "must name a label, or be null to turn this label off",
                ));
            }
        }
        self.store.validate()?;
        for (alias, registry) in &self.registries {
            registry.validate(alias)?;
        }
        self.cache.validate()?;
        self.upstream.validate()?;
        self.response.validate()?;
        self.webhook.validate()?;
        self.operator.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
        self.trace.validate()?;
        Ok(())
    }

    /// Every duration key with the longest value that makes sense for it: a longer one is a
    /// typo (`7000d` for `7d`), and deadlines computed from it could overflow.
    fn check_durations(&self) -> Result<(), ConfigError> {
        // (key, value, whether zero is allowed, upper bound)
        let (harbor, cache, upstream) = (&self.harbor, &self.cache, &self.upstream);
        let durations = [
            ("harbor.timeout", harbor.timeout, false, 5 * MINUTE),
            (
                "harbor.connect_timeout",
                harbor.connect_timeout,
                false,
                MINUTE,
            ),
            (
                "harbor.project_info_ttl",
                harbor.project_info_ttl,
                true,
                DAY,
            ),
            ("response.deadline", self.response.deadline, false, MINUTE),
            ("cache.redis_timeout", cache.redis_timeout, false, MINUTE),
            ("cache.fresh_for", cache.fresh_for, true, 30 * DAY),
            (
                "cache.keep_stale_for",
                cache.keep_stale_for,
                true,
                365 * DAY,
            ),
            ("cache.keep_empty_for", cache.keep_empty_for, true, 30 * DAY),
            ("cache.lock_ttl", cache.lock_ttl, false, 10 * MINUTE),
            ("upstream.timeout", upstream.timeout, false, 10 * MINUTE),
            (
                "upstream.connect_timeout",
                upstream.connect_timeout,
                false,
                MINUTE,
            ),
            (
                "upstream.api_absent_ttl",
                upstream.api_absent_ttl,
                true,
                30 * DAY,
            ),
            (
                "upstream.breaker_cooldown",
                upstream.breaker_cooldown,
                true,
                DAY,
            ),
        ];
        for (key, value, zero_allowed, max) in durations {
            if value.is_zero() && !zero_allowed {
                return Err(ConfigError::invalid(key, "must be longer than zero"));
            }
            if value > max {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{} is longer than the {} this setting allows",
                        humantime::format_duration(value),
                        humantime::format_duration(max)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl HarborSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check_http_url("harbor.url", &self.url)?;
        if self.url.query().is_some() || self.url.fragment().is_some() {
            return Err(ConfigError::invalid(
                "harbor.url",
                "must not carry a query or fragment",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "harbor.max_connections",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl RegistrySettings {
    fn validate(&self, alias: &str) -> Result<(), ConfigError> {
        let key = |field: &str| format!("registries.{alias}.{field}");
        if alias.is_empty()
            || !alias
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(ConfigError::invalid(
                format!("registries.{alias}"),
                "an alias is lowercase letters, digits, '-' and '_'",
            ));
        }
        if self.harbor_registry.trim().is_empty() {
            return Err(ConfigError::invalid(
                key("harbor_registry"),
                "name or id of the Harbor registry this entry belongs to is required",
            ));
        }
        let host_ok = !self.host.is_empty()
            && !self.host.contains(['/', '@', ' '])
            && Url::parse(&format!("https://{}/", self.host)).is_ok();
        if !host_ok {
            return Err(ConfigError::invalid(
                key("host"),
                "a host name (optionally with :port) the credentials are bound to is required",
            ));
        }
        if let Some(url) = &self.url {
            check_http_url(&key("url"), url)?;
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::invalid(
                key("username"),
                "a password is configured without a username",
            ));
        }
        Ok(())
    }
}

impl CacheSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.redis_pool_size == 0 {
            return Err(ConfigError::invalid(
                "cache.redis_pool_size",
                "must be at least 1",
            ));
        }
        if self.keep_stale_for < self.fresh_for {
            return Err(ConfigError::invalid(
                "cache.keep_stale_for",
                "must be at least cache.fresh_for",
            ));
        }
        if self.max_entry_bytes == 0 {
            return Err(ConfigError::invalid(
                "cache.max_entry_bytes",
                "must be at least 1",
            ));
        }
        // It is a segment of every key: no separator, nothing a Redis pattern would match.
        if let Some(namespace) = &self.namespace
            && (namespace.is_empty()
                || namespace.len() > 64
                || !namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(ConfigError::invalid(
                "cache.namespace",
                "must be 1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(())
    }
}

impl UpstreamSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("upstream.max_pages", self.max_pages),
            ("upstream.max_page_bytes", self.max_page_bytes),
            ("upstream.memory_budget_bytes", self.memory_budget_bytes),
            (
                "upstream.max_concurrent_per_registry",
                self.max_concurrent_per_registry,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if self.breaker_failures == 0 {
            return Err(ConfigError::invalid(
                "upstream.breaker_failures",
                "must be at least 1",
            ));
        }
        if let Some(agent) = &self.user_agent
            && (agent.is_empty() || agent.chars().any(|c| c.is_control()))
        {
            return Err(ConfigError::invalid(
                "upstream.user_agent",
                "must be a non-empty header value",
            ));
        }
        Ok(())
    }
}

impl ResponseSettings {
    /// Below this a page could not hold even one typical descriptor.
    const MIN_MAX_BYTES: usize = 1024;

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_bytes < Self::MIN_MAX_BYTES {
            return Err(ConfigError::invalid(
                "response.max_bytes",
                format!("must be at least {}", Self::MIN_MAX_BYTES),
            ));
        }
        if self.max_page_size == 0 {
            return Err(ConfigError::invalid(
                "response.max_page_size",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl WebhookSettings {
    /// Each queued digest holds a few hundred bytes: beyond this the bound no longer bounds.
    const MAX_QUEUE_SIZE: usize = 100_000;

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(header) = &self.auth_header {
            let value = header.expose();
            // Harbor sends it as a header value: a secret that cannot be one never matches.
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    "webhook.auth_header",
                    "must be a non-empty header value (no control characters)",
                ));
            }
        }
        if self.queue_size == 0 || self.queue_size > Self::MAX_QUEUE_SIZE {
            return Err(ConfigError::invalid(
                "webhook.queue_size",
                format!("must be between 1 and {}", Self::MAX_QUEUE_SIZE),
            ));
        }
        Ok(())
    }
}

impl OperatorSettings {
    /// Each waiting artifact holds a request open: beyond this the bound no longer bounds.
    const MAX_WARM_QUEUE: u32 = 1000;

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, per_minute) in [
            ("operator.purges_per_minute", self.purges_per_minute),
            ("operator.status_per_minute", self.status_per_minute),
            ("operator.warm_per_minute", self.warm_per_minute),
        ] {
            if per_minute == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if !(1..=Self::MAX_WARM_QUEUE).contains(&self.warm_queue_per_project) {
            return Err(ConfigError::invalid(
                "operator.warm_queue_per_project",
                format!("must be between 1 and {}", Self::MAX_WARM_QUEUE),
            ));
        }
        Ok(())
    }
}

fn validate_projects(key: &str, projects: &[String]) -> Result<(), ConfigError> {
    if projects.iter().any(|p| p == "*") && projects.len() > 1 {
        return Err(ConfigError::invalid(
            key,
            "\"*\" (every proxy-cache project) stands alone",
        ));
    }
    for project in projects.iter().filter(|p| *p != "*") {
        // A Harbor project name is one repository-name component.
        let valid =
            project.parse::<oci_referrers::RepositoryName>().is_ok() && !project.contains('/');
        if !valid {
            return Err(ConfigError::invalid(
                key,
                format!("{project:?} is not a Harbor project name"),
            ));
        }
    }
    Ok(())
}

impl StoreSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        for artifact_type in &self.artifact_types {
            artifact_type
                .parse::<oci_referrers::ArtifactType>()
                .map_err(|e| {
                    ConfigError::invalid("store.artifact_types", format!("{artifact_type:?}: {e}"))
                })?;
        }
        let off = "must be at least 1 (turn storing off with an empty projects.store_in_harbor and projects.store_label: null)";
        if self.pulls_per_hour == 0 {
            return Err(ConfigError::invalid("store.pulls_per_hour", off));
        }
        if self.max_artifact_bytes == 0 {
            return Err(ConfigError::invalid("store.max_artifact_bytes", off));
        }
        if self.max_per_subject == 0 {
            return Err(ConfigError::invalid("store.max_per_subject", off));
        }
        if self.queue_size == 0 {
            return Err(ConfigError::invalid(
                "store.queue_size",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// An http(s) URL with a host and no credentials: a password in a URL would be shown wherever
/// the URL is (logs, `check-config`), and would compete with the key that holds it.
pub(super) fn check_http_url(key: &str, url: &Url) -> Result<(), ConfigError> {
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{:?} must not carry credentials: give them as the username and password keys beside it",
                super::mask_password(url.as_str())
            ),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            key,
            format!("{:?} must be an http:// or https:// URL", url.as_str()),
        ));
    }
    Ok(())
}
