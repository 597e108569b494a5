//! The accounts of the suite: the sidecar's robot, a user who may pull from the proxy-cache
//! projects, one who may not, a project admin and the system admin.

use base64::Engine;

use crate::harbor_double::DoubleAccount;

/// A Harbor account, by its basic credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub name: &'static str,
    pub password: &'static str,
}

/// The sidecar's robot account: project and registry read on the whole system.
pub const ROBOT: User = User {
    name: "robot$referrers-sidecar",
    password: "robot-secret",
};
/// A user who may pull from the projects a world gives her.
pub const ALICE: User = User {
    name: "alice",
    password: "alice-secret",
};
/// A user with access to a local project only.
pub const BOB: User = User {
    name: "bob",
    password: "bob-secret",
};
/// A project admin of the projects a world gives her.
pub const PAM: User = User {
    name: "pam",
    password: "pam-secret",
};
/// The demo's user (`make demo`), who may pull from its proxy-cache project.
pub const DEMO: User = User {
    name: "demo",
    password: "demo-password",
};
/// Harbor's system admin.
pub const ADMIN: User = User {
    name: "admin",
    password: "Harbor12345",
};

impl User {
    /// The account in the Harbor double, with pull access to `projects`.
    #[must_use]
    pub fn account(self, projects: &[&str]) -> DoubleAccount {
        DoubleAccount {
            name: self.name.into(),
            password: self.password.into(),
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            system_reader: false,
            admin_of: Vec::new(),
            sysadmin: false,
        }
    }

    /// The account as a project admin of `projects`.
    #[must_use]
    pub fn project_admin(self, projects: &[&str]) -> DoubleAccount {
        DoubleAccount {
            admin_of: projects.iter().map(|p| (*p).to_owned()).collect(),
            ..self.account(projects)
        }
    }

    /// The account as a system admin.
    #[must_use]
    pub fn sysadmin(self) -> DoubleAccount {
        DoubleAccount {
            sysadmin: true,
            ..self.account(&[])
        }
    }

    /// The account as a system reader (what the sidecar's robot is on Harbor ≥ 2.10).
    #[must_use]
    pub fn system_reader(self) -> DoubleAccount {
        DoubleAccount {
            system_reader: true,
            ..self.account(&[])
        }
    }

    /// The `Authorization` header value of basic credentials.
    #[must_use]
    pub fn basic_authorization(self) -> String {
        let credentials = format!("{}:{}", self.name, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }
}
