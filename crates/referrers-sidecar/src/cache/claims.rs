//! Claims in the shared tier on work that one replica does for all of them (a referrer stored
//! in Harbor): taken and released behind the shared tier's breaker, under keys
//! [`super::keys::claim_key`] names.

use std::sync::Arc;
use std::time::Duration;

use super::keys::claim_key;
use super::shared::{Lock, SharedTier};

/// Whether this replica does a piece of work.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Its own now, in the shared tier, under this token.
    Won(String),
    /// Another replica took it.
    Taken,
    /// No shared tier (or it is unavailable): remembered in this process only.
    Alone,
}

/// The claims of this sidecar's namespace. Cloning is cheap.
#[derive(Clone)]
pub struct Claims {
    tier: Option<Arc<SharedTier>>,
    namespace: String,
}

impl Claims {
    pub(super) fn new(tier: Option<Arc<SharedTier>>, namespace: String) -> Self {
        Self { tier, namespace }
    }

    /// Takes `what` (`<repository>@<digest>`) for this replica for `ttl`.
    pub async fn claim(&self, what: &str, ttl: Duration) -> Claim {
        let Some(tier) = &self.tier else {
            return Claim::Alone;
        };
        match tier.take(&claim_key(&self.namespace, what), ttl).await {
            Lock::Won(token) => Claim::Won(token),
            Lock::Lost => Claim::Taken,
            Lock::Unavailable => Claim::Alone,
        }
    }

    /// Lets go of `what`, claimed with `token` (a claim another replica took after this one's
    /// ran out stays).
    pub async fn release(&self, what: &str, token: &str) {
        if let Some(tier) = &self.tier {
            tier.release(&claim_key(&self.namespace, what), token).await;
        }
    }
}
