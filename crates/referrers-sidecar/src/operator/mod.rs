//! The operator API's use cases — why a project is or is not served, purging its cached lists
//! on every replica, and warming its artifacts' lists — each authorized by Harbor with the
//! caller's own credentials, and done for a project only so often.

mod access;
mod limit;
mod purge;
mod status;
mod warm;

pub use access::{Action, Authorized, OperatorAccess, Refusal};
pub use limit::{CallBudget, Limited, OperatorBudgets};
pub use purge::{PurgeError, PurgeReport, PurgeTargets, purge};
pub use status::{
    ProjectStatus, RegistryStatus, StatusSources, project_status, track_served_projects,
};
pub use warm::{WarmError, WarmPacing, WarmReport, WarmTargets, warm};

/// Harbor's project names: lowercase letters, digits and `._-`, at most 255 characters.
#[must_use]
pub fn is_project_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}
