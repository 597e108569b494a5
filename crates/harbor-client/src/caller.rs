//! What a caller may do, asked of Harbor with the caller's own credentials: the caller's roles
//! in a project (swagger `Project`) and whether the caller is a system admin (`UserResp`).

use serde::Deserialize;

use crate::api::{BasicAuth, CoreClient, project_path};
use crate::error::HarborError;

/// Harbor's role id of a project admin (`current_user_role_id(s)`).
pub const PROJECT_ADMIN_ROLE: i64 = 1;

/// `GET /api/v2.0/projects/{name}` as the caller sees it: only the caller's roles are read.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectAccess {
    pub project_id: i64,
    pub name: String,
    /// The caller's highest role (deprecated by Harbor, still sent); 0 or absent for a
    /// non-member who may read the project (a public project, a system admin).
    #[serde(default)]
    pub current_user_role_id: Option<i64>,
    /// Every role the caller has, directly or through groups; `null` when none.
    #[serde(default)]
    pub current_user_role_ids: Option<Vec<i64>>,
}

impl ProjectAccess {
    /// Whether the caller is an admin of this project.
    #[must_use]
    pub fn is_project_admin(&self) -> bool {
        self.current_user_role_id == Some(PROJECT_ADMIN_ROLE)
            || self
                .current_user_role_ids
                .as_deref()
                .is_some_and(|ids| ids.contains(&PROJECT_ADMIN_ROLE))
    }
}

/// `GET /api/v2.0/users/current` (swagger `UserResp`): only what authorization needs.
#[derive(Debug, Clone, Deserialize)]
pub struct CurrentUser {
    pub username: String,
    #[serde(default)]
    pub sysadmin_flag: bool,
}

/// Who the caller is, by Harbor's word.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A user account.
    User(CurrentUser),
    /// Credentials Harbor accepts that are no user's: a robot account (Harbor answers 412).
    Robot,
}

impl Identity {
    #[must_use]
    pub fn is_system_admin(&self) -> bool {
        matches!(self, Self::User(user) if user.sysadmin_flag)
    }
}

impl CoreClient {
    /// Who `caller` is: `Unauthorized` when Harbor refuses the credentials.
    pub async fn identify(&self, caller: &BasicAuth) -> Result<Identity, HarborError> {
        let answer = self
            .get_json_as::<CurrentUser>(
                "/api/v2.0/users/current",
                "current user",
                false,
                Some(caller),
            )
            .await;
        match answer {
            Ok(Some(user)) => Ok(Identity::User(user)),
            Err(HarborError::Status { status: 412, .. }) => Ok(Identity::Robot),
            Ok(None) => Err(HarborError::Status {
                what: "current user".into(),
                status: 404,
            }),
            Err(other) => Err(other),
        }
    }

    /// The project named `name` as `caller` sees it: `None` when Harbor says it does not
    /// exist, `Forbidden` when the caller may not read it, `Unauthorized` when Harbor refuses
    /// the credentials.
    pub async fn project_as(
        &self,
        name: &str,
        caller: &BasicAuth,
    ) -> Result<Option<ProjectAccess>, HarborError> {
        let (path, by_name) = project_path(name);
        self.get_json_as(&path, &format!("project {name}"), by_name, Some(caller))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_admin_is_told_by_either_role_field() {
        let access = |json: &str| serde_json::from_str::<ProjectAccess>(json).unwrap();
        assert!(
            access(r#"{"project_id":3,"name":"p","current_user_role_id":1}"#).is_project_admin()
        );
        assert!(
            access(r#"{"project_id":3,"name":"p","current_user_role_id":4,"current_user_role_ids":[4,1]}"#)
                .is_project_admin()
        );
        assert!(
            !access(r#"{"project_id":3,"name":"p","current_user_role_id":2,"current_user_role_ids":[2]}"#)
                .is_project_admin()
        );
        assert!(
            !access(r#"{"project_id":3,"name":"p","current_user_role_id":0,"current_user_role_ids":null}"#)
                .is_project_admin()
        );
    }

    #[test]
    fn the_system_admin_flag_is_read_from_the_current_user() {
        let user: CurrentUser = serde_json::from_str(
            r#"{"user_id":1,"username":"admin","sysadmin_flag":true,"admin_role_in_auth":false,"email":"a@b"}"#,
        )
        .unwrap();
        assert!(Identity::User(user).is_system_admin());
        assert!(!Identity::Robot.is_system_admin());
    }
}
