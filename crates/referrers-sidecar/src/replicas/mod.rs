//! Purges spread across replicas: a purge drops lists from the shared tier and from this
//! replica's in-process tier, and is published so that every other replica drops them from its
//! own; each replica listens for the others' purges. A client of the cache: it uses the cache's
//! purge surface (drop locally, remove from the shared tier, the purge channel), never its tiers.

mod message;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use crate::cache::{PurgeScope, ReferrersCache};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// How long a replica waits before subscribing again to the purge channel, at first and at
/// most (doubling in between while Redis stays away).
const RESUBSCRIBE_FIRST_DELAY: Duration = Duration::from_millis(500);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(5);

/// What one purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Lists dropped, each counted once: from the shared tier, and from this replica's
    /// in-process tier.
    pub lists: usize,
    pub shared: SharedPurge,
}

/// What became of a purge in the shared tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedPurge {
    /// No shared tier: only this replica's in-process tier was purged.
    None,
    /// Purged there, and published to every replica.
    Done,
    /// Redis did not answer: only this replica's in-process tier was purged.
    Unavailable,
}

/// This replica among the others.
pub struct Replicas {
    cache: Arc<ReferrersCache>,
    /// This process among the replicas: it skips its own purge messages.
    origin: String,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl Replicas {
    #[must_use]
    pub fn new(cache: Arc<ReferrersCache>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        Self {
            cache,
            origin: uuid::Uuid::new_v4().to_string(),
            clock,
            metrics,
        }
    }

    /// Drops the lists of `scope` from the shared tier, then from this replica's in-process
    /// tier, and publishes the purge so that every other replica drops them from its own.
    pub async fn purge(&self, scope: &PurgeScope) -> Purged {
        let mut dropped = HashSet::new();
        let shared = match self.cache.purge_channel() {
            None => SharedPurge::None,
            Some(channel) => match self.cache.remove_shared(scope).await {
                // Published after the shared tier is purged: a replica that drops its entry
                // must not read the old one back from Redis.
                Some(keys) if channel.publish(&message::encode(&self.origin, scope)).await => {
                    dropped.extend(keys);
                    SharedPurge::Done
                }
                _ => SharedPurge::Unavailable,
            },
        };
        dropped.extend(self.cache.drop_local(scope).await);
        Purged {
            lists: dropped.len(),
            shared,
        }
    }

    /// Listens for other replicas' purges on the shared tier until the process ends,
    /// subscribing again whenever the subscription ends (Redis restarted, a failover).
    /// Without a shared tier, returns at once.
    pub async fn listen_for_purges(self: Arc<Self>) {
        let Some(channel) = self.cache.purge_channel() else {
            return;
        };
        let mut delay = RESUBSCRIBE_FIRST_DELAY;
        // Whether purges may have been published while this replica was not listening.
        let mut missed = false;
        loop {
            match channel.subscribe().await {
                Ok(mut messages) => {
                    self.metrics.cache_purge_subscribed.set(1);
                    delay = RESUBSCRIBE_FIRST_DELAY;
                    if missed {
                        // A purge missed would leave a purged list served here until it
                        // expires: drop them all instead.
                        let dropped = self.cache.clear_in_process().await;
                        tracing::info!(
                            dropped,
                            "listening for purges again; the in-process tier was cleared, as purges published meanwhile were missed"
                        );
                    } else {
                        tracing::info!(
                            channel = channel.name(),
                            "listening for other replicas' purges"
                        );
                    }
                    while let Some(message) = messages.next().await {
                        self.apply_purge_message(&message).await;
                    }
                    self.metrics.cache_purge_subscribed.set(0);
                    tracing::warn!(
                        "the purge subscription ended (Redis restarted or failed over); subscribing again"
                    );
                }
                Err(error) => {
                    if !missed {
                        tracing::warn!(error = %error, "cannot listen for purges on Redis; trying again");
                    }
                }
            }
            missed = true;
            self.clock.sleep(delay).await;
            delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
        }
    }

    /// Applies a purge another replica published.
    async fn apply_purge_message(&self, message: &[u8]) {
        match message::decode(message) {
            Some((origin, _)) if origin == self.origin => {}
            Some((_, scope)) => {
                let dropped = self.cache.drop_local(&scope).await;
                self.metrics.cache_purges_received.inc();
                tracing::info!(
                    registry_id = scope.registry_id,
                    repository = scope.repository.as_deref(),
                    digest = scope.digest.as_ref().map(ToString::to_string),
                    dropped = dropped.len(),
                    "purge from another replica applied"
                );
            }
            None => tracing::warn!("unreadable message on the purge channel; ignored"),
        }
    }
}
