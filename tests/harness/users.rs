//! The accounts of the suite: the sidecar's robot, a user who may pull from the proxy-cache
//! projects, and one who may not.

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

impl User {
    /// The account in the Harbor double, with pull access to `projects`.
    #[must_use]
    pub fn account(self, projects: &[&str]) -> DoubleAccount {
        DoubleAccount {
            name: self.name.into(),
            password: self.password.into(),
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            system_reader: false,
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
