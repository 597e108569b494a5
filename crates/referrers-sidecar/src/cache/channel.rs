//! The pub/sub channel of the shared tier that replicas hear each other's purges on: a handle
//! the cache gives out, so that its user never holds the store itself.

use std::sync::Arc;

use futures_util::stream::BoxStream;

use super::redis::RedisError;
use super::shared::SharedTier;

/// The purge channel of this sidecar's namespace ([`super::keys::purge_channel`]).
pub struct PurgeChannel {
    tier: Arc<SharedTier>,
    name: String,
}

impl PurgeChannel {
    pub(super) fn new(tier: Arc<SharedTier>, name: String) -> Self {
        Self { tier, name }
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Publishes `message`, behind the shared tier's breaker; false when the tier is
    /// unavailable.
    pub async fn publish(&self, message: &[u8]) -> bool {
        self.tier.publish(&self.name, message).await
    }

    /// The channel's messages from now on, on a long-lived connection of its own, outside the
    /// breaker (it reconnects at its own pace); the stream ends with the connection.
    pub async fn subscribe(&self) -> Result<BoxStream<'static, Vec<u8>>, RedisError> {
        self.tier.store().subscribe(&self.name).await
    }
}
