//! Per-project webhook secrets. `webhook.auth_header` is the operator's master secret and is
//! never written into a Harbor policy (Harbor shows policies to project admins and
//! maintainers): each project's policy carries a header derived from it for that project alone,
//! so whoever reads one project's policy can sign events for that project and no other.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The `Authorization` value of project `project`'s webhook policy: `Bearer ` and the hex of
/// HMAC-SHA256 keyed with the master secret's bytes exactly as configured, over the project's
/// name.
#[must_use]
pub fn project_header(master: &str, project: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(master.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(project.as_bytes());
    format!("Bearer {}", hex::encode(mac.finalize().into_bytes()))
}

/// Who a webhook's `Authorization` (`sent`) speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The master secret: any project.
    Master,
    /// Not the master secret: at most the projects whose derived header it is.
    Other,
}

impl Signer {
    /// Compared in constant time.
    #[must_use]
    pub fn of(master: &str, sent: &[u8]) -> Self {
        if bool::from(sent.ct_eq(master.as_bytes())) {
            Self::Master
        } else {
            Self::Other
        }
    }

    /// Whether events of project `project` signed with `sent` are taken.
    #[must_use]
    pub fn may_speak_for(self, master: &str, sent: &[u8], project: &str) -> bool {
        match self {
            Self::Master => true,
            Self::Other => bool::from(sent.ct_eq(project_header(master, project).as_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projects_header_is_the_hmac_of_its_name_under_the_master_secret() {
        // Computed apart: HMAC-SHA256(key = b"Bearer s3cret", msg = b"hub-proxy").
        assert_eq!(
            project_header("Bearer s3cret", "hub-proxy"),
            "Bearer 636496062cab883513a1f839e09b5767d0c1aced59122d6a6fc60250ca647f97"
        );
    }

    #[test]
    fn a_projects_header_speaks_for_that_project_alone_and_the_master_for_all() {
        let master = "Bearer s3cret";
        let hub = project_header(master, "hub");
        let signer = Signer::of(master, hub.as_bytes());
        assert_eq!(signer, Signer::Other);
        assert!(signer.may_speak_for(master, hub.as_bytes(), "hub"));
        assert!(!signer.may_speak_for(master, hub.as_bytes(), "ghcr"));
        let master_signed = Signer::of(master, master.as_bytes());
        assert_eq!(master_signed, Signer::Master);
        assert!(master_signed.may_speak_for(master, master.as_bytes(), "ghcr"));
        let wrong = b"Bearer guess";
        assert!(!Signer::of(master, wrong).may_speak_for(master, wrong, "hub"));
    }
}
