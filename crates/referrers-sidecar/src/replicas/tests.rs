//! Purges across replicas in process: two caches over one stub shared store, a stub upstream
//! and a manual clock; and the purge message as it travels.

use std::sync::Arc;

use super::*;
use crate::cache::UpstreamAnswer;
use crate::cache::testing::{
    Answer, Fault, StubStore, StubUpstream, digest, key_of, replica_cache, target,
};
use crate::clock::ManualClock;

const T0: u64 = 1_700_000_000_000;
const REGISTRY_ID: i64 = 7;

/// One replica: its cache, its purge spreading, upstream and metrics.
struct Replica {
    cache: Arc<ReferrersCache>,
    replicas: Replicas,
    upstream: Arc<StubUpstream>,
    metrics: Arc<Metrics>,
}

impl Replica {
    fn new(
        shared: Option<&Arc<StubStore>>,
        upstream: Arc<StubUpstream>,
        clock: &Arc<ManualClock>,
    ) -> Self {
        let (cache, metrics) = replica_cache(shared, &upstream, clock);
        let replicas = Replicas::new(
            Arc::clone(&cache),
            Arc::clone(clock) as Arc<dyn Clock>,
            Arc::clone(&metrics),
        );
        Self {
            cache,
            replicas,
            upstream,
            metrics,
        }
    }

    async fn ask(&self) -> UpstreamAnswer {
        self.cache
            .upstream_referrers(&target(), REGISTRY_ID, &digest())
            .await
    }
}

fn key() -> String {
    key_of(REGISTRY_ID, &target(), &digest())
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(T0))
}

fn scope(repository: Option<&str>) -> PurgeScope {
    PurgeScope {
        registry_id: REGISTRY_ID,
        repository: repository.map(str::to_owned),
        digest: None,
    }
}

#[tokio::test]
async fn a_purge_drops_the_list_from_both_tiers_publishes_it_and_the_next_ask_fetches() {
    let (clock, store) = (clock(), Arc::new(StubStore::default()));
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    replica.ask().await;
    assert_eq!(replica.cache.cached_lists(REGISTRY_ID), 1);
    assert_eq!(replica.cache.cached_lists(REGISTRY_ID + 1), 0);

    let other = replica.replicas.purge(&scope(Some("library/other"))).await;
    assert_eq!(other.lists, 0);
    assert!(store.value(&key()).is_some());

    let purged = replica.replicas.purge(&scope(Some("library/nginx"))).await;
    assert_eq!(
        purged,
        Purged {
            lists: 1,
            shared: SharedPurge::Done
        }
    );
    assert!(store.value(&key()).is_none());
    assert_eq!(replica.cache.cached_lists(REGISTRY_ID), 0);
    let published = store.published();
    assert_eq!(published.len(), 2);
    assert_eq!(published[1].0, "referrers-sidecar:v2:harbor-a:purge");
    assert_eq!(
        message::decode(&published[1].1).map(|(_, scope)| scope),
        Some(scope(Some("library/nginx")))
    );

    let after = replica.ask().await;
    assert_eq!(
        (after.cache, replica.upstream.fetches()),
        (crate::outcome::CacheResult::Miss, 2)
    );
}

#[tokio::test]
async fn a_purge_message_from_another_replica_drops_the_in_process_list_and_its_own_is_skipped() {
    let (clock, store) = (clock(), Arc::new(StubStore::default()));
    let first = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    let second = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    first.ask().await;
    second.ask().await;
    assert_eq!(second.cache.cached_lists(REGISTRY_ID), 1);

    first.replicas.purge(&scope(None)).await;
    let (_, message) = store.published().remove(0);
    first.replicas.apply_purge_message(&message).await;
    assert_eq!(first.metrics.cache_purges_received.get(), 0, "its own");
    second.replicas.apply_purge_message(&message).await;
    assert_eq!(second.metrics.cache_purges_received.get(), 1);
    assert_eq!(second.cache.cached_lists(REGISTRY_ID), 0);
    second.replicas.apply_purge_message(b"not a purge").await;
    assert_eq!(second.metrics.cache_purges_received.get(), 1);
}

#[tokio::test]
async fn a_purge_with_redis_down_still_drops_the_in_process_list_and_forgets_a_too_large_one() {
    let (clock, store) = (clock(), Arc::new(StubStore::default()));
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::TooLarge),
        &clock,
    );
    replica.ask().await;
    replica.ask().await;
    assert_eq!(replica.upstream.fetches(), 1, "remembered too large");
    replica.upstream.answer(Answer::Referrers(1));
    store.inject(Fault::Down);
    let purged = replica.replicas.purge(&scope(None)).await;
    assert_eq!(purged.shared, SharedPurge::Unavailable);
    assert!(store.published().is_empty());
    replica.ask().await;
    assert_eq!(
        replica.upstream.fetches(),
        2,
        "fetched again after the purge"
    );

    let alone = Replica::new(None, StubUpstream::answering(Answer::Referrers(1)), &clock);
    alone.ask().await;
    assert_eq!(
        alone.replicas.purge(&scope(None)).await,
        Purged {
            lists: 1,
            shared: SharedPurge::None
        }
    );
}

#[test]
fn the_message_round_trips_and_anything_else_is_ignored() {
    let scope = PurgeScope {
        registry_id: 3,
        repository: Some("library/nginx".into()),
        digest: Some(format!("sha256:{}", "c".repeat(64)).parse().unwrap()),
    };
    assert_eq!(
        message::decode(&message::encode("replica-a", &scope)),
        Some(("replica-a".to_owned(), scope))
    );
    assert_eq!(message::decode(b"flush everything"), None);
}

/// Replicas of the previous version publish and read the same JSON.
#[test]
fn the_message_is_the_json_every_version_shares() {
    let scope = PurgeScope {
        registry_id: 3,
        repository: Some("library/nginx".into()),
        digest: None,
    };
    assert_eq!(
        String::from_utf8(message::encode("replica-a", &scope)).unwrap(),
        r#"{"origin":"replica-a","registry_id":3,"repository":"library/nginx"}"#
    );
}
