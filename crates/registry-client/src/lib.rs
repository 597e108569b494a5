//! Upstream OCI registry client: the complete referrers list of a subject on any registry,
//! through the referrers API (with `Link` pagination) or the referrers tag schema, and a
//! referrer's manifest by digest, with token auth, egress proxy, custom CA, and guards
//! against hostile or broken upstreams.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod budget;
mod challenge;
mod client;
mod config;
pub mod endpoint;
mod error;
mod fallback;
pub mod guard;
mod listing;
mod observer;
mod rate_limit;
mod referrers;
mod registry;
mod registry_type;
mod session;
mod state;
mod transport;

pub use auth::MAX_TOKEN_ANSWER_BYTES;
pub use budget::{MemoryBudget, OverBudget, Reservation};
pub use client::RegistryClient;
pub use config::ClientConfig;
pub use endpoint::{Endpoint, EndpointError, map_endpoint, map_registry, map_repository};
pub use error::{AuthError, ClientError, LimitKind, UpstreamError};
pub use listing::{ReferrersSource, UpstreamReferrers};
pub use observer::{RequestKind, RequestObserver, SPAN_TARGET};
pub use registry::{Credentials, Registry, RegistryKind};
pub use registry_type::{RegistryType, UnknownRegistryType};
