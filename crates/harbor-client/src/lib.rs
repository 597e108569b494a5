//! Harbor core client: the connection to core (plain or with Harbor's internal TLS), Harbor's
//! REST API (systeminfo, projects with their repository allowlist, registries) with the
//! sidecar's robot account, a project's repositories and artifacts listed with the caller's own
//! credentials, what a caller may do (asked with the caller's own credentials),
//! core's referrers endpoint called with the caller's own credentials, and manifests pulled
//! through core with the robot account.

pub mod api;
pub mod artifacts;
pub mod caller;
pub mod error;
pub mod pull;
pub mod referrers;
pub mod repository_filter;
pub mod transport;
pub mod webhook_policy;

pub use api::{BasicAuth, CoreClient, Label, Project, RegistryInfo, SystemInfo};
pub use artifacts::{Artifact, Page, Repository};
pub use caller::{CurrentUser, Identity, ProjectAccess};
pub use error::HarborError;
pub use referrers::{CoreAnswer, CoreReferrers};
pub use repository_filter::RepositoryFilter;
pub use transport::{
    CoreConnections, CoreTransport, SendError, Slot, TransportError, copy_end_to_end_headers,
    signal_end,
};
