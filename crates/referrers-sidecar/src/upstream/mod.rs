//! The upstream side: from a proxy-cache project to the registry and repository to ask
//! (`target`), the fetch of a referrers list there behind that registry's breaker (`fetch`), and
//! the rest a registry takes after it rate-limited us (`rest`).

pub mod fetch;
pub mod rest;
pub mod target;

pub use fetch::{
    Admission, Fetch, RegistryState, Upstream, UpstreamFetcher, UpstreamRequestMetrics,
};
pub use target::{
    ResolvedRegistries, UpstreamRegistry, UpstreamTarget, registry_facts, resolve, resolve_cached,
};
