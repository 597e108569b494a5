//! Who may use the operator API, by Harbor's word: the caller's own credentials are checked
//! with Harbor's API (`GET /api/v2.0/users/current`, `GET /api/v2.0/projects/{project}`);
//! a member may read a project's status, a project admin or a system admin may purge and warm. Every
//! decision is logged with the user name, and remembered for a few seconds only, under a hash
//! of the credentials, in a memory bounded in bytes; credentials Harbor refuses are not
//! remembered, and a user name longer than Harbor's is refused before Harbor is asked.

use std::time::Duration;

use harbor_client::{BasicAuth, CoreClient, HarborError};
use moka::future::Cache;
use sha2::{Digest as _, Sha256};

/// How long Harbor's word on one caller and project is reused: long enough to spare Harbor a
/// burst of calls (the CLI's retries, a dashboard), short enough that a revoked role or a
/// changed password takes effect at once for a person.
const DECISION_TTL: Duration = Duration::from_secs(5);

/// What the remembered decisions weigh at most, in bytes of their keys (a credentials hash and a
/// project name, at most 255 bytes): whoever calls, the memory they take stays bounded.
const MAX_DECISION_BYTES: u64 = 4 * 1024 * 1024;

/// Longest user name asked about: Harbor's are far shorter, and a longer one is refused before
/// anything is asked or remembered.
const MAX_USERNAME_BYTES: usize = 255;

/// What the caller asks to do with a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read its status: any member, or anyone who may read the project in Harbor.
    Status,
    /// Purge its cached lists: a project admin or a system admin.
    Purge,
    /// Warm its artifacts' lists: a project admin or a system admin.
    Warm,
}

impl Action {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Purge => "purge",
            Self::Warm => "warm",
        }
    }
}

/// Harbor's word on one caller and project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The caller may read the project; `admin`: a project admin or a system admin.
    Reader { admin: bool },
    /// Harbor knows no such project (and accepts the caller's credentials).
    UnknownProject,
    /// Harbor refuses the credentials.
    Unauthorized,
    /// Harbor accepts the credentials, and the caller may not read the project.
    Forbidden,
}

/// A caller allowed to do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    /// Harbor knows the project.
    pub project_exists: bool,
}

/// Why the caller may not.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("Harbor credentials (Basic) are required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("Harbor knows no project {0}")]
    UnknownProject(String),
    #[error("cannot ask Harbor who the caller is: {0}")]
    Unavailable(HarborError),
}

/// A remembered decision's key: a hash of the credentials (a wrong password never rides on a
/// right one's decision, and no user name is kept), and the project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    credentials: [u8; 32],
    project: String,
}

impl DecisionKey {
    /// What the key takes in memory, roughly: its hash and its project name.
    fn weight(&self) -> u32 {
        u32::try_from(32 + self.project.len()).unwrap_or(u32::MAX)
    }
}

/// Why a decision is not remembered.
#[derive(Debug)]
enum NotRemembered {
    /// Harbor refuses the credentials: asked again next time, so that a flood of wrong
    /// credentials takes no memory.
    Refused,
    /// Harbor could not be asked.
    Unavailable(HarborError),
}

pub struct OperatorAccess {
    decisions: Cache<DecisionKey, Verdict>,
}

impl Default for OperatorAccess {
    fn default() -> Self {
        Self {
            decisions: Cache::builder()
                .weigher(|key: &DecisionKey, _| key.weight())
                .max_capacity(MAX_DECISION_BYTES)
                .time_to_live(DECISION_TTL)
                .build(),
        }
    }
}

impl OperatorAccess {
    /// Whether `caller` (its Basic credentials, if it sent any) may do `action` on `project`;
    /// logs the decision with the user name.
    pub async fn authorize(
        &self,
        core: &CoreClient,
        caller: Option<&BasicAuth>,
        project: &str,
        action: Action,
    ) -> Result<Authorized, Refusal> {
        let Some(caller) = caller else {
            tracing::info!(
                user = "",
                project,
                action = action.as_str(),
                decision = "unauthorized",
                "operator API authorization (no Harbor credentials)"
            );
            return Err(Refusal::Unauthorized);
        };
        if caller.username.len() > MAX_USERNAME_BYTES {
            tracing::info!(
                user_bytes = caller.username.len(),
                project,
                action = action.as_str(),
                decision = "unauthorized",
                "operator API authorization (a user name longer than Harbor's)"
            );
            return Err(Refusal::Unauthorized);
        }
        let key = DecisionKey {
            credentials: Sha256::new()
                .chain_update(caller.username.as_bytes())
                .chain_update([0])
                .chain_update(caller.password.as_bytes())
                .finalize()
                .into(),
            project: project.to_owned(),
        };
        let asked = self
            .decisions
            .try_get_with(key, async {
                match ask_harbor(core, caller, project).await {
                    Ok(Verdict::Unauthorized) => Err(NotRemembered::Refused),
                    Ok(verdict) => Ok(verdict),
                    Err(error) => Err(NotRemembered::Unavailable(error)),
                }
            })
            .await;
        let verdict = match asked {
            Ok(verdict) => verdict,
            Err(not) => match not.as_ref() {
                NotRemembered::Refused => Verdict::Unauthorized,
                NotRemembered::Unavailable(error) => {
                    tracing::warn!(user = %caller.username, project, action = action.as_str(), error = %error, "operator API: cannot ask Harbor about the caller");
                    return Err(Refusal::Unavailable(error.clone()));
                }
            },
        };
        let decision = decide(verdict, action, project);
        let outcome = match &decision {
            Ok(_) => "allowed",
            Err(Refusal::Unauthorized) => "unauthorized",
            Err(Refusal::Forbidden(_)) => "forbidden",
            Err(Refusal::UnknownProject(_)) => "unknown_project",
            Err(Refusal::Unavailable(_)) => "unavailable",
        };
        tracing::info!(
            user = %caller.username,
            project,
            action = action.as_str(),
            decision = outcome,
            "operator API authorization"
        );
        decision.map(|project_exists| Authorized { project_exists })
    }
}

/// The decision for `action` from Harbor's `verdict`: `Ok(whether the project exists)`.
fn decide(verdict: Verdict, action: Action, project: &str) -> Result<bool, Refusal> {
    match (verdict, action) {
        (Verdict::Unauthorized, _) => Err(Refusal::Unauthorized),
        (Verdict::Forbidden, _) => Err(Refusal::Forbidden(
            "the caller may not read this project in Harbor",
        )),
        (Verdict::UnknownProject, Action::Status) => Ok(false),
        (Verdict::UnknownProject, Action::Purge | Action::Warm) => {
            Err(Refusal::UnknownProject(project.to_owned()))
        }
        (Verdict::Reader { .. }, Action::Status) | (Verdict::Reader { admin: true }, _) => Ok(true),
        (Verdict::Reader { admin: false }, Action::Purge) => Err(Refusal::Forbidden(
            "purging needs the project admin role or a system admin",
        )),
        (Verdict::Reader { admin: false }, Action::Warm) => Err(Refusal::Forbidden(
            "warming needs the project admin role or a system admin",
        )),
    }
}

/// Asks Harbor, with the caller's credentials, who the caller is and what it may do with
/// `project` (both at once). Harbor reads a wrong password as an anonymous caller on some
/// paths (a public project answers 200), so the credentials are checked on their own.
async fn ask_harbor(
    core: &CoreClient,
    caller: &BasicAuth,
    project: &str,
) -> Result<Verdict, HarborError> {
    let (identity, access) =
        futures_util::future::join(core.identify(caller), core.project_as(project, caller)).await;
    let identity = match identity {
        Ok(identity) => identity,
        Err(HarborError::Unauthorized(_)) => return Ok(Verdict::Unauthorized),
        Err(other) => return Err(other),
    };
    match access {
        Ok(Some(access)) => Ok(Verdict::Reader {
            admin: access.is_project_admin() || identity.is_system_admin(),
        }),
        Ok(None) => Ok(Verdict::UnknownProject),
        Err(HarborError::Unauthorized(_)) => Ok(Verdict::Unauthorized),
        Err(HarborError::Forbidden(_)) => Ok(Verdict::Forbidden),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_admins_purge_and_the_rest_is_refused() {
        let reader = Verdict::Reader { admin: false };
        let admin = Verdict::Reader { admin: true };
        assert!(matches!(decide(reader, Action::Status, "p"), Ok(true)));
        assert!(matches!(
            decide(reader, Action::Purge, "p"),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(decide(admin, Action::Purge, "p"), Ok(true)));
        assert!(matches!(decide(admin, Action::Warm, "p"), Ok(true)));
        assert!(matches!(
            decide(reader, Action::Warm, "p"),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            decide(Verdict::UnknownProject, Action::Warm, "p"),
            Err(Refusal::UnknownProject(_))
        ));
        assert!(matches!(
            decide(Verdict::UnknownProject, Action::Status, "p"),
            Ok(false)
        ));
        assert!(matches!(
            decide(Verdict::UnknownProject, Action::Purge, "p"),
            Err(Refusal::UnknownProject(_))
        ));
        for action in [Action::Status, Action::Purge, Action::Warm] {
            assert!(matches!(
                decide(Verdict::Unauthorized, action, "p"),
                Err(Refusal::Unauthorized)
            ));
            assert!(matches!(
                decide(Verdict::Forbidden, action, "p"),
                Err(Refusal::Forbidden(_))
            ));
        }
    }
}
