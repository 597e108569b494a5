//! The upstream side: from a proxy-cache project to the registry and repository to ask
//! (`target`), and the fetch of a referrers list there behind that registry's breaker (`fetch`).

pub mod fetch;
pub mod target;

pub use fetch::{Fetch, Upstream, UpstreamFetcher, UpstreamRequestMetrics};
pub use target::{UpstreamTarget, resolve};
