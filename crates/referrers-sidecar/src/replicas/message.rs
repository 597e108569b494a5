//! The message that carries a purge from one replica to the others: the sender and the scope,
//! as JSON (replicas of other versions read and write the same).

use serde::{Deserialize, Serialize};

use crate::cache::PurgeScope;

/// A purge as it travels: the sender hears its own message too, and skips it by `origin`.
#[derive(Serialize, Deserialize)]
struct PurgeMessage {
    origin: String,
    #[serde(flatten)]
    scope: PurgeScope,
}

/// The message that carries the purge of `scope` from the replica `origin` to the others.
#[must_use]
pub fn encode(origin: &str, scope: &PurgeScope) -> Vec<u8> {
    let message = PurgeMessage {
        origin: origin.to_owned(),
        scope: scope.clone(),
    };
    // Strings and a number always serialize.
    serde_json::to_vec(&message).unwrap_or_default()
}

/// The replica that sent a purge message, and the purge; `None` for anything else.
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<(String, PurgeScope)> {
    let message: PurgeMessage = serde_json::from_slice(bytes).ok()?;
    Some((message.origin, message.scope))
}
