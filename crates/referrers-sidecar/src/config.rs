//! The whole configuration schema, its defaults, loading (YAML + environment) and validation.
//!
//! Every key and its default lives in this file and nowhere else. The YAML file is read first,
//! then `REFERRERS_SIDECAR__SECTION__KEY` environment variables override any key; secrets may be
//! given inline or as `*_file`, and are resolved (read) here, once, at load time.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use registry_client::RegistryType;
use serde::{Deserialize, Serialize};
use url::Url;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "REFERRERS_SIDECAR";
/// Separator between key segments in those variables (`REFERRERS_SIDECAR__HARBOR__URL`).
pub const ENV_SEPARATOR: &str = "__";

/// Harbor's own Redis DB indexes (core, jobservice, registry, Trivy, …): sharing them risks
/// key collisions and `FLUSHDB` accidents, so the default is 10 and these get a warning.
pub const HARBOR_TAKEN_REDIS_DBS: &[u32] = &[0, 1, 2, 5, 6, 7];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Referrers, pass-through, `/healthz` and `/readyz`.
    pub listen: String,
    /// `/metrics` (Harbor's metrics port).
    pub metrics_listen: String,
    pub harbor: HarborSettings,
    pub projects: ProjectsSettings,
    /// Upstream credentials and registry facts, keyed by a lowercase alias.
    pub registries: BTreeMap<String, RegistrySettings>,
    pub cache: CacheSettings,
    pub upstream: UpstreamSettings,
    pub response: ResponseSettings,
    pub log: LogSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "[::]:8080".into(),
            metrics_listen: "[::]:8001".into(),
            harbor: HarborSettings::default(),
            projects: ProjectsSettings::default(),
            registries: BTreeMap::new(),
            cache: CacheSettings::default(),
            upstream: UpstreamSettings::default(),
            response: ResponseSettings::default(),
            log: LogSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HarborSettings {
    /// Core's internal URL (https with Harbor's internal TLS).
    pub url: String,
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
    #[serde(with = "human_duration")]
    pub project_info_ttl: Duration,
}

/// Where the chart mounts the robot's password; a missing file here means "no password".
pub const DEFAULT_HARBOR_PASSWORD_FILE: &str = "/etc/referrers-sidecar/harbor-password";

impl Default for HarborSettings {
    fn default() -> Self {
        Self {
            url: "http://harbor-core:8080".into(),
            ca_file: None,
            username: Some("robot$referrers-sidecar".into()),
            password: None,
            password_file: Some(PathBuf::from(DEFAULT_HARBOR_PASSWORD_FILE)),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            project_info_ttl: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectsSettings {
    /// Proxy-cache projects served, or `["*"]` for every proxy-cache project.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub enabled: Vec<String>,
}

impl Default for ProjectsSettings {
    fn default() -> Self {
        Self {
            enabled: vec!["dockerhub-proxy".into()],
        }
    }
}

impl ProjectsSettings {
    /// Whether the toggle is on for `project` (it must still be a proxy-cache project).
    #[must_use]
    pub fn is_enabled(&self, project: &str) -> bool {
        self.enabled.iter().any(|p| p == "*" || p == project)
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
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// `memory` or `redis`; the in-process tier is always on.
    pub backend: CacheBackend,
    /// `redis://`, `rediss://` or Harbor's `redis+sentinel://h1:26379,h2:26379/<master>/<db>`.
    pub redis_url: SecretUrl,
    pub redis_pool_size: usize,
    #[serde(with = "human_duration")]
    pub redis_timeout: Duration,
    #[serde(with = "human_duration")]
    pub fresh_for: Duration,
    #[serde(with = "human_duration")]
    pub keep_stale_for: Duration,
    #[serde(with = "human_duration")]
    pub keep_empty_for: Duration,
    pub max_entry_bytes: usize,
    pub memory_max_bytes: u64,
    #[serde(with = "human_duration")]
    pub lock_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            backend: CacheBackend::Memory,
            redis_url: SecretUrl::new("redis://harbor-redis:6379/10"),
            redis_pool_size: 16,
            redis_timeout: Duration::from_millis(250),
            fresh_for: Duration::from_secs(10 * 60),
            keep_stale_for: Duration::from_secs(7 * 24 * 3600),
            keep_empty_for: Duration::from_secs(3600),
            max_entry_bytes: 1024 * 1024,
            memory_max_bytes: 64 * 1024 * 1024,
            lock_ttl: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Bounds the whole listing, all pages.
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    #[serde(with = "human_duration")]
    pub connect_timeout: Duration,
    pub max_pages: usize,
    pub max_page_bytes: usize,
    pub max_concurrent_per_registry: usize,
    /// How long "no referrers API here" is remembered per registry and repository.
    #[serde(with = "human_duration")]
    pub api_absent_ttl: Duration,
    pub breaker_failures: u32,
    #[serde(with = "human_duration")]
    pub breaker_cooldown: Duration,
    /// Allow token realms and links on loopback or link-local addresses.
    pub allow_private_realms: bool,
    /// Extra CA bundle (PEM) trusted for upstream registries and their token realms, besides
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Default: `referrers-sidecar/<version>`.
    pub user_agent: Option<String>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_pages: 100,
            max_page_bytes: 4 * 1024 * 1024,
            max_concurrent_per_registry: 16,
            api_absent_ttl: Duration::from_secs(3600),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            allow_private_realms: false,
            ca_file: None,
            user_agent: None,
        }
    }
}

impl UpstreamSettings {
    /// The `User-Agent` sent upstream.
    #[must_use]
    pub fn effective_user_agent(&self) -> String {
        self.user_agent
            .clone()
            .unwrap_or_else(|| format!("referrers-sidecar/{}", env!("CARGO_PKG_VERSION")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseSettings {
    /// Page size in bytes for requests without `n` (what clients accept as a manifest).
    pub max_bytes: usize,
    /// Largest `n` a client may ask for.
    pub max_page_size: usize,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        Self {
            max_bytes: 4 * 1024 * 1024,
            max_page_size: 1000,
        }
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

/// A secret value: never printed, masked when serialized (so `check-config` masks it).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "String")]
pub struct Secret(String);

impl Secret {
    pub const MASK: &'static str = "*****";

    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::MASK)
    }
}

/// A URL that may carry a password (`redis://:pw@host/10`): printed with the password masked.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "String")]
pub struct SecretUrl(String);

impl SecretUrl {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL itself, password included, for the one place that connects.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by the mask.
    #[must_use]
    pub fn masked(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rfind('@') {
            Some(at) => {
                let user = rest[..at].split_once(':').map_or(&rest[..at], |(u, _)| u);
                format!("{scheme}://{user}:{}{}", Secret::MASK, &rest[at..])
            }
            None => self.0.clone(),
        }
    }
}

impl From<String> for SecretUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for SecretUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
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

impl Settings {
    /// Reads `path` (YAML), applies `REFERRERS_SIDECAR__…` overrides from the process
    /// environment, reads secret files and validates the result.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml_with_env(&text, env)
    }

    /// Builds the settings from YAML text and environment overrides.
    pub fn from_yaml_with_env(
        yaml: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: config::Map<String, String> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        // Values stay strings (no `try_parsing`: it would turn a password "0123" into 123);
        // typed keys convert on deserialization, and lists accept a comma-separated string.
        let environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(overrides));
        let mut settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
            .add_source(environment)
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Parse(e.to_string()))?;
        settings.resolve_secret_files()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Replaces every `*_file` with the secret it holds, so the rest of the service sees one
    /// value. An inline value wins over a file.
    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        if self.harbor.password.is_none()
            && let Some(path) = &self.harbor.password_file
        {
            let optional = path == Path::new(DEFAULT_HARBOR_PASSWORD_FILE);
            self.harbor.password = read_secret_file("harbor.password_file", path, optional)?;
        }
        for (alias, registry) in &mut self.registries {
            if registry.password.is_none()
                && let Some(path) = &registry.password_file
            {
                let key = format!("registries.{alias}.password_file");
                registry.password = read_secret_file(&key, path, false)?;
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
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

    /// The effective configuration as YAML, secrets masked.
    #[must_use]
    pub fn to_masked_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
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

fn read_secret_file(key: &str, path: &Path, optional: bool) -> Result<Option<Secret>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::invalid(
            key,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
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

/// A YAML list, or a comma-separated string as environment variables give it.
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(list) => list,
        ListOrString::String(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Human-readable durations (`250ms`, `30s`, `10m`, `7d`) in both directions.
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration such as 250ms, 30s, 10m or 7d ({e})"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Settings::from_yaml_with_env(yaml, env)
    }

    #[test]
    fn empty_file_gives_every_default() {
        let s = load("{}", &[]).unwrap();
        assert_eq!(s.listen, "[::]:8080");
        assert_eq!(s.metrics_listen, "[::]:8001");
        assert_eq!(s.harbor.url, "http://harbor-core:8080");
        assert_eq!(s.harbor.timeout, Duration::from_secs(10));
        assert_eq!(s.harbor.connect_timeout, Duration::from_secs(2));
        assert_eq!(s.harbor.project_info_ttl, Duration::from_secs(30));
        assert_eq!(s.projects.enabled, vec!["dockerhub-proxy"]);
        assert_eq!(s.cache.backend, CacheBackend::Memory);
        assert_eq!(s.cache.redis_timeout, Duration::from_millis(250));
        assert_eq!(s.cache.keep_stale_for, Duration::from_secs(7 * 86400));
        assert_eq!(s.cache.max_entry_bytes, 1_048_576);
        assert_eq!(s.cache.memory_max_bytes, 67_108_864);
        assert_eq!(s.upstream.max_page_bytes, 4_194_304);
        assert_eq!(s.upstream.api_absent_ttl, Duration::from_secs(3600));
        assert_eq!(s.response.max_page_size, 1000);
        assert_eq!(s.log.format, LogFormat::Json);
        assert!(
            s.upstream
                .effective_user_agent()
                .starts_with("referrers-sidecar/")
        );
    }

    #[test]
    fn environment_overrides_nested_keys_lists_and_registry_maps() {
        let yaml = r#"
registries:
  dockerhub:
    harbor_registry: dockerhub
    host: registry-1.docker.io
    username: someone
    password: from-file
"#;
        let s = load(
            yaml,
            &[
                (
                    "REFERRERS_SIDECAR__HARBOR__URL",
                    "https://core.example:8443",
                ),
                ("REFERRERS_SIDECAR__PROJECTS__ENABLED", "a-proxy,b-proxy"),
                ("REFERRERS_SIDECAR__CACHE__FRESH_FOR", "2m"),
                (
                    "REFERRERS_SIDECAR__REGISTRIES__DOCKERHUB__PASSWORD",
                    "from-env",
                ),
                ("REFERRERS_SIDECAR__REGISTRIES__GHCR__HARBOR_REGISTRY", "7"),
                ("REFERRERS_SIDECAR__REGISTRIES__GHCR__HOST", "ghcr.io"),
                ("REFERRERS_SIDECAR__REGISTRIES__GHCR__USERNAME", "u"),
                ("REFERRERS_SIDECAR__REGISTRIES__GHCR__PASSWORD", "0123"),
                ("REFERRERS_SIDECAR__UPSTREAM__MAX_PAGES", "7"),
                ("REFERRERS_SIDECAR__UPSTREAM__ALLOW_PRIVATE_REALMS", "true"),
                ("OTHER__HARBOR__URL", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(s.harbor.url, "https://core.example:8443");
        assert_eq!(s.projects.enabled, vec!["a-proxy", "b-proxy"]);
        assert_eq!(s.cache.fresh_for, Duration::from_secs(120));
        assert_eq!(
            s.registries["dockerhub"]
                .password
                .as_ref()
                .unwrap()
                .expose(),
            "from-env"
        );
        assert_eq!(s.registries["ghcr"].host, "ghcr.io");
        assert_eq!(s.registries["ghcr"].harbor_registry, "7");
        assert_eq!(
            s.registries["ghcr"].password.as_ref().unwrap().expose(),
            "0123"
        );
        assert_eq!(s.upstream.max_pages, 7);
        assert!(s.upstream.allow_private_realms);
        let single = load("{}", &[("REFERRERS_SIDECAR__PROJECTS__ENABLED", "123")]).unwrap();
        assert_eq!(single.projects.enabled, vec!["123"]);
    }

    #[test]
    fn secrets_are_read_from_files_and_masked_when_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret-value\n").unwrap();
        let yaml = format!(
            "harbor:\n  password_file: {}\nregistries:\n  hub:\n    harbor_registry: hub\n    host: registry-1.docker.io\n    username: u\n    password: inline-secret\n",
            file.display()
        );
        let s = load(&yaml, &[]).unwrap();
        assert_eq!(s.harbor.password.as_ref().unwrap().expose(), "s3cret-value");
        let printed = s.to_masked_yaml();
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(!printed.contains("inline-secret"), "{printed}");
        assert!(printed.contains(Secret::MASK));
        assert!(!format!("{s:?}").contains("s3cret-value"));
    }

    #[test]
    fn a_missing_explicit_secret_file_names_the_key() {
        let err = load("harbor:\n  password_file: /nonexistent/pw\n", &[]).unwrap_err();
        assert!(err.to_string().contains("harbor.password_file"), "{err}");
        // The default location is optional: the chart mounts it only when a secret exists.
        assert!(load("{}", &[]).unwrap().harbor.password.is_none());
    }

    #[test]
    fn bad_values_name_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("cache:\n  fresh_for: soon\n", &[], "cache.fresh_for"),
            ("cache:\n  backend: memcached\n", &[], "cache.backend"),
            ("harbor:\n  url: ftp://core\n", &[], "harbor.url"),
            ("listen: 8080\n", &[], "listen"),
            (
                "response:\n  max_page_size: 0\n",
                &[],
                "response.max_page_size",
            ),
            ("projects:\n  enabled: ['*', a]\n", &[], "projects.enabled"),
            (
                "projects:\n  enabled: [Bad_Name]\n",
                &[],
                "projects.enabled",
            ),
            ("cache:\n  redis_url: http://x\n", &[], "cache.redis_url"),
            ("log:\n  level: 'info,=='\n", &[], "log.level"),
            (
                "{}",
                &[("REFERRERS_SIDECAR__UPSTREAM__MAX_PAGES", "many")],
                "max_pages",
            ),
            (
                "registries:\n  hub:\n    harbor_registry: hub\n",
                &[],
                "registries.hub",
            ),
            (
                "registries:\n  hub:\n    harbor_registry: hub\n    host: 'a/b'\n",
                &[],
                "registries.hub.host",
            ),
            ("harbor:\n  urll: http://x\n", &[], "urll"),
        ];
        for (yaml, env, key) in cases {
            let err = load(yaml, env).expect_err(yaml).to_string();
            assert!(err.contains(key), "{yaml:?}: {err:?} should name {key}");
        }
    }

    #[test]
    fn every_registry_type_the_client_reaches_is_accepted_and_unknown_ones_are_listed() {
        let entry = |registry_type: &str| {
            format!(
                "registries:\n  up:\n    harbor_registry: up\n    host: up.example\n    type: {registry_type}\n    url: https://up.example\n"
            )
        };
        for (name, registry_type) in [
            ("google-gar", RegistryType::GoogleGar),
            ("dtr", RegistryType::Dtr),
        ] {
            let s = load(&entry(name), &[]).expect(name);
            assert_eq!(s.registries["up"].registry_type, Some(registry_type));
            assert!(s.warnings().iter().all(|w| !w.contains("registries.up")));
            assert!(s.to_masked_yaml().contains(&format!("type: {name}")));
        }
        let err = load(&entry("new-cloud"), &[]).unwrap_err().to_string();
        assert!(err.contains("registries.up.type"), "{err}");
        for valid in RegistryType::names() {
            assert!(err.contains(valid), "{err} should list {valid}");
        }
        let ecr = load(&entry("aws-ecr"), &[]).unwrap();
        assert!(
            ecr.warnings()
                .iter()
                .any(|w| w.contains("registries.up.type aws-ecr is not supported"))
        );
    }

    #[test]
    fn redis_passwords_are_masked_but_the_rest_of_the_url_is_shown() {
        let url = SecretUrl::new("redis+sentinel://:pw1@h1:26379,h2:26379/mymaster/10");
        assert_eq!(
            url.masked(),
            "redis+sentinel://:*****@h1:26379,h2:26379/mymaster/10"
        );
        assert_eq!(
            SecretUrl::new("rediss://user:pw@h/3").masked(),
            "rediss://user:*****@h/3"
        );
        assert_eq!(
            SecretUrl::new("redis://h:6379/10").masked(),
            "redis://h:6379/10"
        );
        assert!(!format!("{url:?}").contains("pw1"));
    }

    #[test]
    fn redis_db_index_reads_plain_and_sentinel_urls() {
        assert_eq!(redis_db_index("redis://h:6379/10"), Some(10));
        assert_eq!(redis_db_index("redis://h:6379"), Some(0));
        assert_eq!(redis_db_index("rediss://:pw@h:6380/2?x=y"), Some(2));
        assert_eq!(
            redis_db_index("redis+sentinel://h1:26379,h2:26379/mymaster/5"),
            Some(5)
        );
        let s = load(
            "cache:\n  backend: redis\n  redis_url: redis://h:6379/1\n",
            &[],
        )
        .unwrap();
        assert!(s.warnings().iter().any(|w| w.contains("DB 1")));
    }
}
