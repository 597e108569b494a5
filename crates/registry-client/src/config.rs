//! What one [`crate::RegistryClient`] is allowed to do: time, size and concurrency bounds.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::budget::MemoryBudget;
use crate::observer::RequestObserver;

/// Settings of the upstream client. The service builds it from its `upstream.*` keys, which
/// hold the defaults; this crate has none of its own.
#[derive(Clone)]
pub struct ClientConfig {
    /// Bounds a whole listing: auth, every page, the fallback tag.
    pub timeout: Duration,
    /// Bounds opening one connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Most referrers-API pages read for one listing; more sets `truncated`.
    pub max_pages: usize,
    /// Largest referrers page or fallback index read, in bytes.
    pub max_page_bytes: usize,
    /// Bytes of pages all listings may hold at once; shared with whoever holds a clone.
    pub memory_budget: MemoryBudget,
    /// Requests in flight at once per registry.
    pub max_concurrent_per_registry: usize,
    /// How long "this registry has no referrers API for this repository" is remembered.
    pub api_absent_ttl: Duration,
    /// Allow token realms on loopback, link-local and cloud-metadata addresses.
    pub allow_private_realms: bool,
    /// `User-Agent` of every request.
    pub user_agent: String,
    /// A PEM bundle trusted in addition to the system's roots (corporate CA, TLS-inspecting
    /// proxy, self-signed upstream).
    pub extra_ca_file: Option<PathBuf>,
    /// Told about every request, for metrics.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_pages", &self.max_pages)
            .field("max_page_bytes", &self.max_page_bytes)
            .field("memory_budget", &self.memory_budget.limit())
            .field(
                "max_concurrent_per_registry",
                &self.max_concurrent_per_registry,
            )
            .field("api_absent_ttl", &self.api_absent_ttl)
            .field("allow_private_realms", &self.allow_private_realms)
            .field("user_agent", &self.user_agent)
            .field("extra_ca_file", &self.extra_ca_file)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

#[cfg(test)]
impl ClientConfig {
    /// The service's default bounds, for this crate's unit tests.
    pub(crate) fn for_tests() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_pages: 100,
            max_page_bytes: 4 * 1024 * 1024,
            memory_budget: MemoryBudget::new(64 * 1024 * 1024),
            max_concurrent_per_registry: 16,
            api_absent_ttl: Duration::from_secs(3600),
            allow_private_realms: false,
            user_agent: "registry-client-tests".into(),
            extra_ca_file: None,
            observer: None,
        }
    }
}
