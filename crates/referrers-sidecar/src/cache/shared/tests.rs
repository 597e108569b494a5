//! The shared tier over a stub store: reads, stores, the breaker, the lock and the wait for
//! another replica's entry, on a manual clock.

use futures_util::FutureExt;

use super::stub::{Fault, StubStore};
use super::*;
use crate::clock::ManualClock;
use oci_referrers::PreparedList;
use registry_client::ReferrersSource;

const KEY: &str = "referrers-sidecar:v2:ns:1:abc:def:library/nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Where [`KEY`] is listed.
fn index() -> ListIndex {
    ListIndex::of("ns", KEY).expect("a list's key")
}

struct World {
    store: Arc<StubStore>,
    clock: Arc<ManualClock>,
    metrics: Arc<Metrics>,
    tier: SharedTier,
}

fn world() -> World {
    let store = Arc::new(StubStore::default());
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let tier = SharedTier::new(
        Arc::clone(&store) as Arc<dyn SharedStore>,
        EntryBounds::new(1024 * 1024),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
    );
    World {
        store,
        clock,
        metrics,
        tier,
    }
}

fn list() -> CachedList {
    CachedList {
        fetched_at_ms: 1_700_000_000_000,
        source: ReferrersSource::Api,
        tag_digest: None,
        descriptors: PreparedList::default(),
    }
}

impl World {
    fn breaker_gauge(&self) -> i64 {
        self.metrics
            .breaker_state
            .with_label_values(&[REDIS_BREAKER])
            .get()
    }
}

#[tokio::test]
async fn reads_what_was_put_and_counts_the_store() {
    let w = world();
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
    let ttl = Duration::from_secs(60);
    assert!(w.tier.put(KEY, &list().encode(), ttl, &index()).await);
    assert_eq!(w.store.ttl(KEY), Some(ttl));
    match w.tier.read(KEY).await {
        SharedRead::Found(found) => assert_eq!(found, list()),
        other => panic!("{other:?}"),
    }
    let stores = w.metrics.cache_stores.with_label_values(&["redis"]).get();
    assert_eq!(stores, 1);
    assert_eq!(w.tier.report().state, SharedState::Up);
}

/// A stored list is listed in its repository's index and the repository in its registry's, for
/// as long as the list lives; taking it out deletes it and empties both.
#[tokio::test]
async fn a_list_is_listed_while_it_lives_and_unlisted_with_its_repository() {
    let w = world();
    let index = index();
    let ttl = Duration::from_secs(60);
    assert!(w.tier.put(KEY, b"v", ttl, &index).await);
    assert_eq!(
        w.tier.listed(&index.repository_index, 0, 10).await,
        Some(vec![KEY.to_owned()])
    );
    assert_eq!(
        w.tier.listed(&index.registry_index, 0, 10).await,
        Some(vec!["library/nginx".to_owned()])
    );
    w.clock.advance(ttl + Duration::from_millis(1));
    assert_eq!(
        w.tier.listed(&index.repository_index, 0, 10).await,
        Some(vec![]),
        "expired"
    );

    assert_eq!(w.tier.unlist(&index, &[KEY.to_owned()]).await, Some(1));
    assert_eq!(w.store.value(KEY), None);
    assert!(w.store.index(&index.repository_index).is_empty());
    assert!(w.store.index(&index.registry_index).is_empty());
    let calls = w.store.calls("unlist");
    assert_eq!(w.tier.unlist(&index, &[]).await, Some(0));
    assert_eq!(
        w.store.calls("unlist"),
        calls,
        "nothing to take out: no call"
    );
}

#[tokio::test]
async fn a_corrupt_value_is_a_miss_and_no_failure() {
    let w = world();
    w.store.inject(Fault::Corrupt);
    for _ in 0..5 {
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
    }
    assert_eq!(w.tier.report().state, SharedState::Up);
    assert_eq!(w.metrics.redis_errors.get(), 0);
}

#[tokio::test]
async fn a_down_store_opens_the_breaker_then_costs_nothing_until_a_probe_closes_it() {
    let w = world();
    w.store.inject(Fault::Down);
    for _ in 0..BREAKER_FAILURES {
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    }
    assert_eq!(w.tier.report().state, SharedState::Down);
    assert_eq!(w.breaker_gauge(), 1);
    assert_eq!(w.metrics.redis_errors.get(), u64::from(BREAKER_FAILURES));

    // Open: nothing reaches the store.
    let calls = w.store.calls("get");
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    assert!(
        !w.tier
            .put(KEY, b"v", Duration::from_secs(1), &index())
            .await
    );
    assert_eq!(
        w.tier.lock(KEY, Duration::from_secs(1)).await,
        Lock::Unavailable
    );
    assert_eq!(w.store.calls("get"), calls);
    assert_eq!(w.store.calls("set") + w.store.calls("try_lock"), 0);

    // After the cool-down one probe goes; it fails, so the breaker opens again.
    w.clock.advance(BREAKER_COOLDOWN);
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    assert_eq!(w.store.calls("get"), calls + 1);
    assert_eq!(w.tier.report().state, SharedState::Down);

    // Back up: the next probe succeeds and closes it.
    w.store.inject(Fault::None);
    w.clock.advance(BREAKER_COOLDOWN);
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
    assert_eq!(w.tier.report().state, SharedState::Up);
    assert_eq!(w.breaker_gauge(), 0);
    assert!(
        w.tier
            .put(KEY, b"v", Duration::from_secs(1), &index())
            .await
    );
}

#[tokio::test]
async fn a_probe_whose_caller_went_away_reports_probing_until_the_next_cool_down() {
    let w = world();
    w.store.inject(Fault::Down);
    for _ in 0..BREAKER_FAILURES {
        assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    }
    w.clock.advance(BREAKER_COOLDOWN);
    w.store.inject(Fault::Hang);
    assert!(w.tier.read(KEY).now_or_never().is_none(), "the probe hangs");
    assert_eq!(w.tier.report().state, SharedState::Probing);
    assert_eq!(w.breaker_gauge(), 2);
    w.store.inject(Fault::None);
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    w.clock.advance(BREAKER_COOLDOWN);
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Missing));
    assert_eq!(w.tier.report().state, SharedState::Up);
}

#[tokio::test]
async fn slow_calls_count_as_failures() {
    let w = world();
    w.store.inject(Fault::Slow);
    assert_eq!(
        w.tier.lock(KEY, Duration::from_secs(1)).await,
        Lock::Unavailable
    );
    assert!(
        !w.tier
            .put(KEY, b"v", Duration::from_secs(1), &index())
            .await
    );
    assert!(matches!(w.tier.read(KEY).await, SharedRead::Unavailable));
    assert_eq!(w.tier.report().state, SharedState::Down);
}

#[tokio::test]
async fn the_lock_is_won_once_and_released_by_its_holder() {
    let w = world();
    let ttl = Duration::from_secs(10);
    let Lock::Won(token) = w.tier.lock(KEY, ttl).await else {
        panic!("the first caller wins");
    };
    assert_eq!(w.store.ttl(&lock_key(KEY)), Some(ttl));
    assert_eq!(w.tier.lock(KEY, ttl).await, Lock::Lost);
    w.tier.unlock(KEY, "another replica's token").await;
    assert_eq!(w.tier.lock(KEY, ttl).await, Lock::Lost);
    w.tier.unlock(KEY, &token).await;
    assert!(matches!(w.tier.lock(KEY, ttl).await, Lock::Won(_)));
    let locks = |result| w.metrics.cache_locks.with_label_values(&[result]).get();
    assert_eq!((locks("won"), locks("lost")), (2, 2));
}

#[tokio::test]
async fn a_waiter_gets_the_winners_entry() {
    let w = world();
    w.store.put(&lock_key(KEY), b"winner");
    let waiting = w.tier.wait_for_winner(KEY, Duration::from_secs(10));
    let (found, ()) = futures_util::join!(waiting, async {
        // The winner stores its entry while the loser polls.
        while w.store.calls("get") < 4 {
            tokio::task::yield_now().await;
        }
        w.store.put(KEY, &list().encode());
        w.store.remove(&lock_key(KEY));
    });
    assert_eq!(found, Some(list()));
}

#[tokio::test]
async fn a_lock_let_go_without_an_entry_ends_the_wait() {
    let w = world();
    w.store.put(&lock_key(KEY), b"winner");
    let started = w.clock.instant();
    let waiting = w.tier.wait_for_winner(KEY, Duration::from_secs(10));
    let (found, ()) = futures_util::join!(waiting, async {
        while w.store.calls("get") < 4 {
            tokio::task::yield_now().await;
        }
        w.store.remove(&lock_key(KEY));
    });
    assert_eq!(found, None);
    assert!(w.clock.instant() - started < Duration::from_secs(1));
}

#[tokio::test]
async fn a_lock_held_to_the_end_ends_the_wait_at_its_deadline() {
    let w = world();
    w.store
        .put(&lock_key(KEY), b"abandoned by a replica that died");
    let started = w.clock.instant();
    let patience = Duration::from_secs(10);
    assert_eq!(w.tier.wait_for_winner(KEY, patience).await, None);
    let waited = w.clock.instant() - started;
    assert!(waited >= patience && waited < patience + LOCK_POLL_INTERVAL * 2);
}

#[tokio::test]
async fn a_failing_store_ends_the_wait() {
    let w = world();
    w.store.put(&lock_key(KEY), b"winner");
    w.store.inject(Fault::Down);
    assert_eq!(
        w.tier.wait_for_winner(KEY, Duration::from_secs(10)).await,
        None
    );
    assert_eq!(w.store.calls("get"), 1);
}
