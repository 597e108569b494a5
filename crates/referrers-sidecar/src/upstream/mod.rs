//! The upstream side: the registry and repository a list is fetched from (`target`), the fetch
//! of a referrers list (or of a referrer's manifest) there behind that registry's breaker
//! (`fetch`), and the rest a registry takes after it rate-limited us (`rest`).

mod fetch;
mod rest;
mod target;

pub use fetch::{
    Admission, Fetch, ManifestRead, Manifests, RegistryState, Trouble, Upstream, UpstreamFetcher,
    UpstreamRequestMetrics,
};
pub use target::{UpstreamTarget, registry_scope};
