//! The `upstream` section: how the registries behind proxy-cache projects are called, and the
//! upstream client's bounds it gives.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use registry_client::{ClientConfig, MemoryBudget, RequestObserver};
use serde::{Deserialize, Serialize};

use super::human_duration;

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
    /// Bytes of upstream pages all listings may hold at once.
    pub memory_budget_bytes: usize,
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
            memory_budget_bytes: 64 * 1024 * 1024,
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

    /// The upstream client's bounds from `upstream.*`, each request told to `observer`.
    #[must_use]
    pub fn client_config(&self, observer: Option<Arc<dyn RequestObserver>>) -> ClientConfig {
        ClientConfig {
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            max_pages: self.max_pages,
            max_page_bytes: self.max_page_bytes,
            memory_budget: MemoryBudget::new(self.memory_budget_bytes),
            max_concurrent_per_registry: self.max_concurrent_per_registry,
            api_absent_ttl: self.api_absent_ttl,
            allow_private_realms: self.allow_private_realms,
            user_agent: self.effective_user_agent(),
            extra_ca_file: self.ca_file.clone(),
            observer,
        }
    }
}
