//! Validation at start: every value checked once, the error naming the key at fault.

use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::{
    CacheBackend, CacheSettings, ConfigError, HarborSettings, RegistrySettings, ResponseSettings,
    Settings, UpstreamSettings,
};

/// Harbor's own Redis DB indexes (core, jobservice, registry, Trivy, …): sharing them risks
/// key collisions and `FLUSHDB` accidents, so the default is 10 and these get a warning.
pub const HARBOR_TAKEN_REDIS_DBS: &[u32] = &[0, 1, 2, 5, 6, 7];

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        parse_listen("listen", &self.listen)?;
        parse_listen("metrics_listen", &self.metrics_listen)?;
        self.harbor.validate()?;
        validate_projects(&self.projects.enabled)?;
        for (alias, registry) in &self.registries {
            registry.validate(alias)?;
        }
        self.cache.validate()?;
        self.upstream.validate()?;
        self.response.validate()?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
        Ok(())
    }

    /// Warnings about valid but risky choices, for the log at start.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.cache.backend == CacheBackend::Redis
            && let Some(db) = redis_db_index(self.cache.redis_url.expose())
            && HARBOR_TAKEN_REDIS_DBS.contains(&db)
        {
            warnings.push(format!(
                        "cache.redis_url uses Redis DB {db}, which Harbor itself uses; pick a free index such as 10"
                    ));
        }
        for (alias, registry) in &self.registries {
            if let Some(registry_type) = registry.registry_type
                && let Some(reason) = registry_type.unsupported_reason()
            {
                warnings.push(format!(
                    "registries.{alias}.type {registry_type} is not supported ({reason}): no upstream call is made for it"
                ));
            }
        }
        if self.harbor.password.is_none() {
            warnings.push(
                "no Harbor password configured (harbor.password / harbor.password_file): Harbor's API is called anonymously".into(),
            );
        }
        warnings
    }
}

impl HarborSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let url = parse_http_url("harbor.url", &self.url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::invalid(
                "harbor.url",
                "must not carry a query or fragment",
            ));
        }
        positive("harbor.timeout", self.timeout)?;
        positive("harbor.connect_timeout", self.connect_timeout)?;
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
            parse_http_url(&key("url"), url)?;
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
        let url = self.redis_url.expose();
        let scheme = url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "redis" | "rediss" | "redis+sentinel") || !url.contains("://") {
            return Err(ConfigError::invalid(
                "cache.redis_url",
                "must start with redis://, rediss:// or redis+sentinel://",
            ));
        }
        if self.redis_pool_size == 0 {
            return Err(ConfigError::invalid(
                "cache.redis_pool_size",
                "must be at least 1",
            ));
        }
        positive("cache.redis_timeout", self.redis_timeout)?;
        positive("cache.lock_ttl", self.lock_ttl)?;
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
        Ok(())
    }
}

impl UpstreamSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("upstream.timeout", self.timeout)?;
        positive("upstream.connect_timeout", self.connect_timeout)?;
        for (key, value) in [
            ("upstream.max_pages", self.max_pages),
            ("upstream.max_page_bytes", self.max_page_bytes),
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

fn validate_projects(enabled: &[String]) -> Result<(), ConfigError> {
    if enabled.iter().any(|p| p == "*") && enabled.len() > 1 {
        return Err(ConfigError::invalid(
            "projects.enabled",
            "\"*\" (every proxy-cache project) stands alone",
        ));
    }
    for project in enabled.iter().filter(|p| *p != "*") {
        // A Harbor project name is one repository-name component.
        let valid =
            project.parse::<oci_referrers::RepositoryName>().is_ok() && !project.contains('/');
        if !valid {
            return Err(ConfigError::invalid(
                "projects.enabled",
                format!("{project:?} is not a Harbor project name"),
            ));
        }
    }
    Ok(())
}

/// Parses a listen address; `[::]` means every address, IPv6 and IPv4.
pub fn parse_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not an address:port such as [::]:8080 or 127.0.0.1:8080"),
        )
    })
}

fn parse_http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} must be an http:// or https:// URL"),
        ));
    }
    Ok(url)
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    Ok(())
}

/// The DB index of a `redis://…/<db>` or `redis+sentinel://…/<master>/<db>` URL (0 when absent).
#[must_use]
pub fn redis_db_index(url: &str) -> Option<u32> {
    let (scheme, rest) = url.split_once("://")?;
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or_default();
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let db = match scheme {
        "redis+sentinel" => path.split('/').nth(1).unwrap_or_default(),
        _ => path,
    };
    if db.is_empty() {
        Some(0)
    } else {
        db.parse().ok()
    }
}
