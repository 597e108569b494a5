//! The upstream side: the registry and repository a list is fetched from (`target`), the fetch
//! of a referrers list there behind that registry's breaker (`fetch`), and the rest a registry
//! takes after it rate-limited us (`rest`).

mod fetch;
mod rest;
mod target;

pub use fetch::{
    Admission, Fetch, RegistryState, Trouble, Upstream, UpstreamFetcher, UpstreamRequestMetrics,
};
pub use target::{UpstreamTarget, registry_scope};
