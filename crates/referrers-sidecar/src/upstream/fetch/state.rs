//! What is known of each registry for operators: its breaker and rate-limit rest as they are
//! now, and the trouble its last call found.

use std::collections::HashMap;
use std::time::Duration;

use registry_client::{AuthError, UpstreamError};

use super::UpstreamFetcher;
use crate::breaker::BreakerState;

/// A registry's breaker and rate-limit rest as they are now, and what its last call said of it,
/// for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryState {
    pub breaker: BreakerState,
    /// How long the registry still rests after a rate limit; `None` when it does not.
    pub rest_left: Option<Duration>,
    /// The trouble the last call that said anything of the registry found; `None` when it
    /// answered (or was never called).
    pub trouble: Option<Trouble>,
}

/// What a failed call says is wrong with a registry (the error's text is logged where it
/// happens, never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// No usable answer: no connection, no TLS, no answer in time, a 5xx (of the registry or
    /// its token endpoint), or a registry that cannot be called as configured.
    Unreachable,
    /// The registry or its token endpoint refused the credentials, or its challenge could not
    /// be answered.
    AuthFailed,
}

/// What a failed call says of its registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard {
    /// The registry is in trouble.
    Trouble(Trouble),
    /// It answered; the failure was this request's (a 4xx, an unusable or oversized answer, a
    /// redirect not followed).
    Answered,
    /// Nothing of the registry: this replica's memory budget, or a rate limit (its rest says
    /// so).
    Nothing,
}

impl Heard {
    pub(super) fn of(error: &UpstreamError) -> Self {
        match error {
            UpstreamError::Connect { .. }
            | UpstreamError::Tls { .. }
            | UpstreamError::Timeout(_)
            | UpstreamError::Config(_)
            | UpstreamError::Auth(AuthError::TokenEndpoint { .. }) => {
                Self::Trouble(Trouble::Unreachable)
            }
            UpstreamError::Api { status }
            | UpstreamError::Fallback { status }
            | UpstreamError::Manifest { status }
                if *status >= 500 =>
            {
                Self::Trouble(Trouble::Unreachable)
            }
            UpstreamError::Api { status: 401 | 403 }
            | UpstreamError::Fallback { status: 401 | 403 }
            | UpstreamError::Manifest { status: 401 | 403 }
            | UpstreamError::Auth(_) => Self::Trouble(Trouble::AuthFailed),
            UpstreamError::OverBudget(_) | UpstreamError::RateLimited { .. } => Self::Nothing,
            UpstreamError::Api { .. }
            | UpstreamError::Fallback { .. }
            | UpstreamError::Manifest { .. }
            | UpstreamError::Decode { .. }
            | UpstreamError::Limit { .. }
            | UpstreamError::Redirect { .. } => Self::Answered,
        }
    }
}

impl UpstreamFetcher {
    /// The breaker and rest of the registry labelled `name`, without changing either (a
    /// registry never called yet is closed and not resting).
    #[must_use]
    pub fn registry_state(&self, name: &str) -> RegistryState {
        let breaker = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .map_or(BreakerState::Closed, |breaker| breaker.state());
        RegistryState {
            breaker,
            rest_left: self.rests.rest_left(name, self.clock.instant()),
            trouble: self.troubles().get(name).copied(),
        }
    }

    fn troubles(&self) -> std::sync::MutexGuard<'_, HashMap<String, Trouble>> {
        self.troubles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps what a call to the registry labelled `name` said of it.
    pub(super) fn hear(&self, name: &str, heard: Heard) {
        match heard {
            Heard::Trouble(trouble) => {
                let mut troubles = self.troubles();
                if troubles.get(name) != Some(&trouble) {
                    troubles.insert(name.to_owned(), trouble);
                }
            }
            Heard::Answered => {
                self.troubles().remove(name);
            }
            Heard::Nothing => {}
        }
    }
}
