//! The cache in process: a stub shared tier with failure injection, a stub upstream, and a
//! manual clock, so freshness, locks and breakers are driven step by step without real time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use registry_client::UpstreamReferrers;
use sha2::Digest as _;

use super::entry::EntryBounds;
use super::keys::{self, ListIndex, lock_key};
use super::shared::stub::{Fault, StubStore};
use super::testing::*;
use super::*;
use crate::clock::ManualClock;

const T0: u64 = 1_700_000_000_000;
const REGISTRY_ID: i64 = 7;

/// One replica: its cache, upstream and metrics.
struct Replica {
    cache: Arc<ReferrersCache>,
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
        Self {
            cache,
            upstream,
            metrics,
        }
    }

    async fn ask(&self) -> UpstreamAnswer {
        self.cache
            .upstream_referrers(&target(), REGISTRY_ID, &digest())
            .await
    }

    fn lookups(&self, tier: &str, result: &str) -> u64 {
        self.metrics
            .cache_lookups
            .with_label_values(&[tier, result])
            .get()
    }

    fn locks(&self, result: &str) -> u64 {
        self.metrics.cache_locks.with_label_values(&[result]).get()
    }

    fn refreshes(&self, outcome: &str) -> u64 {
        self.metrics
            .cache_refreshes
            .with_label_values(&[outcome])
            .get()
    }
}

fn key() -> String {
    cache_key(
        "harbor-a",
        REGISTRY_ID,
        &target().cache_scope,
        "library/nginx",
        &digest(),
    )
}

fn bounds() -> EntryBounds {
    EntryBounds::new(config().max_entry_bytes)
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(T0))
}

/// Lets spawned tasks run until `done` holds (bounded: a test that waits for nothing fails).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

fn served(answer: &UpstreamAnswer) -> usize {
    answer
        .list
        .as_ref()
        .map_or(0, |list| list.descriptors.len())
}

#[tokio::test]
async fn a_miss_fetches_then_hits_while_fresh() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(2)), &clock);

    let first = replica.ask().await;
    assert_eq!(
        (first.cache, first.upstream, served(&first), first.kept),
        (CacheResult::Miss, UpstreamResult::Api, 2, true)
    );
    clock.advance(FRESH_FOR - Duration::from_millis(1));
    let second = replica.ask().await;
    assert_eq!(
        (second.cache, served(&second), second.kept),
        (CacheResult::Hit, 2, true)
    );
    assert_eq!(replica.upstream.fetches(), 1);
    assert_eq!(replica.lookups("memory", "hit"), 1);
}

#[tokio::test]
async fn a_stale_entry_is_served_while_one_refresh_replaces_it() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(1)), &clock);
    replica.ask().await;
    replica.upstream.answer(Answer::Referrers(3));
    clock.advance(FRESH_FOR);

    let stale = replica.ask().await;
    assert_eq!((stale.cache, served(&stale)), (CacheResult::Stale, 1));
    until("the refresh", || replica.refreshes("refreshed") == 1).await;
    assert_eq!(replica.upstream.fetches(), 2);

    let refreshed = replica.ask().await;
    assert_eq!((refreshed.cache, served(&refreshed)), (CacheResult::Hit, 3));
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_stale_entry_until_it_expires() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(1)), &clock);
    replica.ask().await;
    replica.upstream.answer(Answer::Failing);
    clock.advance(FRESH_FOR);

    assert_eq!(replica.ask().await.cache, CacheResult::Stale);
    until("the failed refresh", || replica.refreshes("failed") == 1).await;
    clock.advance(KEEP_STALE_FOR - FRESH_FOR - Duration::from_millis(1));
    let last = replica.ask().await;
    assert_eq!((last.cache, served(&last)), (CacheResult::Stale, 1));
    until("the second failed refresh", || {
        replica.refreshes("failed") == 2
    })
    .await;

    // Expired: never served, even with the upstream down.
    clock.advance(Duration::from_millis(1));
    let expired = replica.ask().await;
    assert_eq!(
        (expired.cache, expired.upstream, served(&expired)),
        (CacheResult::Miss, UpstreamResult::Error, 0)
    );
}

#[tokio::test]
async fn an_empty_list_is_kept_for_keep_empty_for_only() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(0)), &clock);
    assert_eq!(replica.ask().await.upstream, UpstreamResult::Api);
    clock.advance(KEEP_EMPTY_FOR - Duration::from_millis(1));
    assert_eq!(replica.ask().await.cache, CacheResult::Stale);
    until("the refresh", || replica.refreshes("refreshed") == 1).await;
    clock.advance(KEEP_EMPTY_FOR);
    assert_eq!(replica.ask().await.cache, CacheResult::Miss);
}

#[tokio::test]
async fn a_truncated_list_is_served_once_then_not_fetched_for_keep_empty_for() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Truncated(2)), &clock);
    let answer = replica.ask().await;
    assert_eq!(
        (answer.cache, answer.upstream, served(&answer), answer.kept),
        (CacheResult::Miss, UpstreamResult::Truncated, 2, false)
    );
    clock.advance(KEEP_EMPTY_FOR - Duration::from_millis(1));
    let again = replica.ask().await;
    assert_eq!(
        (again.cache, again.upstream, served(&again)),
        (CacheResult::Miss, UpstreamResult::Truncated, 0),
        "remembered: no download, the local referrers only"
    );
    assert_eq!(replica.upstream.fetches(), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(served(&replica.ask().await), 2);
    assert_eq!(replica.upstream.fetches(), 2);
}

#[tokio::test]
async fn a_list_too_large_or_over_the_budget_is_remembered_per_key_for_keep_empty_for() {
    for (answer, result) in [
        (Answer::TooLarge, UpstreamResult::TooLarge),
        (Answer::OverBudget, UpstreamResult::OverBudget),
    ] {
        let clock = clock();
        let replica = Replica::new(None, StubUpstream::answering(answer), &clock);
        for _ in 0..2 {
            let answer = replica.ask().await;
            assert_eq!(
                (answer.cache, answer.upstream, served(&answer)),
                (CacheResult::Miss, result, 0)
            );
        }
        assert_eq!(replica.upstream.fetches(), 1);
        let other: Digest = format!("sha256:{}", "e".repeat(64)).parse().unwrap();
        replica
            .cache
            .upstream_referrers(&target(), REGISTRY_ID, &other)
            .await;
        assert_eq!(replica.upstream.fetches(), 2, "another key is fetched");
        clock.advance(KEEP_EMPTY_FOR);
        replica.upstream.answer(Answer::Referrers(1));
        assert_eq!(
            served(&replica.ask().await),
            1,
            "retried after keep_empty_for"
        );
        assert_eq!(replica.upstream.fetches(), 3);
    }
}

#[tokio::test]
async fn a_list_over_max_entry_bytes_is_served_once_then_not_fetched_for_keep_empty_for() {
    let clock = clock();
    let metrics = Arc::new(Metrics::new(&[]).unwrap());
    let upstream = StubUpstream::answering(Answer::Referrers(3));
    let cache = Arc::new(ReferrersCache::new(
        CacheConfig {
            max_entry_bytes: 64,
            ..config()
        },
        None,
        Arc::clone(&upstream) as Arc<dyn Upstream>,
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
    ));
    let (target, digest) = (target(), digest());
    let ask = || cache.upstream_referrers(&target, REGISTRY_ID, &digest);
    let first = ask().await;
    assert_eq!(
        (first.upstream, served(&first), first.kept),
        (UpstreamResult::Api, 3, false),
        "served as what it is, and not kept"
    );
    let again = ask().await;
    assert_eq!(
        (again.upstream, served(&again)),
        (UpstreamResult::TooLarge, 0)
    );
    assert_eq!(upstream.fetches(), 1);
    assert_eq!(metrics.cache_oversize.get(), 1);
}

#[tokio::test]
async fn a_stale_entry_is_served_without_a_refresh_while_its_list_is_remembered_too_large() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(2)), &clock);
    replica.ask().await;
    replica.upstream.answer(Answer::TooLarge);
    clock.advance(FRESH_FOR);
    assert_eq!(replica.ask().await.cache, CacheResult::Stale);
    until("the refresh", || replica.refreshes("too_large") == 1).await;
    assert_eq!(replica.upstream.fetches(), 2);
    let stale = replica.ask().await;
    assert_eq!((stale.cache, served(&stale)), (CacheResult::Stale, 2));
    until("the second refresh", || replica.refreshes("too_large") == 2).await;
    assert_eq!(
        replica.upstream.fetches(),
        2,
        "no download while remembered"
    );
}

#[tokio::test]
async fn an_open_registry_breaker_skips_the_fetch_and_the_lock() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    replica.upstream.breaker_open.store(true, Ordering::SeqCst);
    let answer = replica.ask().await;
    assert_eq!(
        (answer.cache, answer.upstream),
        (CacheResult::Miss, UpstreamResult::Skipped)
    );
    assert_eq!(replica.upstream.fetches(), 0);
    assert_eq!(store.calls("try_lock"), 0);
}

#[tokio::test]
async fn a_rate_limited_miss_serves_no_list_and_the_rest_costs_no_fetch_nor_lock() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::RateLimited),
        &clock,
    );
    for _ in 0..3 {
        let answer = replica.ask().await;
        assert_eq!(
            (answer.cache, answer.upstream, served(&answer)),
            (CacheResult::Miss, UpstreamResult::RateLimited, 0)
        );
    }
    assert_eq!(
        replica.upstream.fetches(),
        1,
        "only the first asked the registry"
    );
    assert_eq!(store.calls("try_lock"), 1);
    assert_eq!(store.value(&key()), None, "a rate limit is not cached");
}

#[tokio::test]
async fn a_stale_entry_of_a_resting_registry_is_served_without_a_refresh() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(2)), &clock);
    replica.ask().await;
    replica.upstream.answer(Answer::RateLimited);
    clock.advance(FRESH_FOR);

    // The first stale answer starts a refresh, which the registry rate-limits.
    let stale = replica.ask().await;
    assert_eq!(
        (stale.cache, stale.upstream, served(&stale)),
        (CacheResult::Stale, UpstreamResult::Api, 2)
    );
    until("the rate-limited refresh", || {
        replica.refreshes("rate_limited") == 1
    })
    .await;

    // From then on the stale list is served as rate-limited, and nothing is fetched.
    let resting = replica.ask().await;
    assert_eq!(
        (resting.cache, resting.upstream, served(&resting)),
        (CacheResult::Stale, UpstreamResult::RateLimited, 2)
    );
    assert_eq!(replica.upstream.fetches(), 2);
    assert_eq!(
        replica.refreshes("rate_limited"),
        1,
        "no refresh while resting"
    );
}

#[tokio::test]
async fn replicas_share_entries_and_their_age() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let a = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    let b = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(5)),
        &clock,
    );
    assert_eq!(a.ask().await.cache, CacheResult::Miss);
    assert_eq!(store.ttl(&key()), Some(KEEP_STALE_FOR));

    let hit = b.ask().await;
    assert_eq!((hit.cache, served(&hit)), (CacheResult::Hit, 2));
    assert_eq!(b.lookups("redis", "hit"), 1);
    assert_eq!(b.upstream.fetches(), 0);
    // Kept in B's memory from then on, aging from A's fetch.
    clock.advance(FRESH_FOR);
    let gets = store.calls("get");
    let stale = b.ask().await;
    assert_eq!((stale.cache, served(&stale)), (CacheResult::Stale, 2));
    assert_eq!(b.lookups("memory", "stale"), 1);
    until("B's refresh", || b.refreshes("refreshed") == 1).await;
    assert!(
        store.calls("get") > gets,
        "the refresh looked for a fresher entry first"
    );
}

#[tokio::test]
async fn a_refresh_takes_a_fresher_entry_another_replica_stored() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let a = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let b = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(9)),
        &clock,
    );
    a.ask().await;
    b.ask().await;
    clock.advance(FRESH_FOR);
    // A refreshes first; B, stale too, then finds A's fresher entry instead of fetching.
    a.upstream.answer(Answer::Referrers(4));
    assert_eq!(a.ask().await.cache, CacheResult::Stale);
    until("A's refresh", || a.refreshes("refreshed") == 1).await;
    assert_eq!(b.ask().await.cache, CacheResult::Stale);
    until("B's refresh", || b.refreshes("refreshed") == 1).await;
    assert_eq!(b.upstream.fetches(), 0);
    let fresh = b.ask().await;
    assert_eq!((fresh.cache, served(&fresh)), (CacheResult::Hit, 4));
}

#[tokio::test]
async fn the_lock_winner_fetches_stores_and_releases() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    replica.ask().await;
    assert_eq!(replica.locks("won"), 1);
    assert_eq!(store.ttl(&lock_key(&key())), Some(LOCK_TTL));
    assert_eq!(store.value(&lock_key(&key())), None, "released");
    assert!(store.value(&key()).is_some());
}

#[tokio::test]
async fn the_lock_loser_serves_the_winners_entry_without_a_fetch() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let a = Replica::new(
        Some(&store),
        StubUpstream::gated(Answer::Referrers(3)),
        &clock,
    );
    let b = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(8)),
        &clock,
    );
    let a_cache = Arc::clone(&a.cache);
    let a_answer = tokio::spawn(async move {
        a_cache
            .upstream_referrers(&target(), REGISTRY_ID, &digest())
            .await
    });
    until("A fetching under the lock", || a.upstream.fetches() == 1).await;

    let (b_answer, ()) = futures_util::join!(b.ask(), async {
        until("B losing the lock", || b.locks("lost") == 1).await;
        a.upstream.gate.add_permits(1);
    });
    assert_eq!(
        (b_answer.cache, b_answer.upstream, served(&b_answer)),
        (CacheResult::Miss, UpstreamResult::Api, 3)
    );
    assert_eq!(b.upstream.fetches(), 0);
    assert_eq!(a_answer.await.unwrap().cache, CacheResult::Miss);
    assert_eq!(a.locks("won"), 1);
}

#[tokio::test]
async fn a_lock_abandoned_by_its_holder_delays_the_loser_only_until_the_wait_ends() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    // A replica took the lock and died: the lock stays until its TTL, with no entry.
    store.put(&lock_key(&key()), b"dead replica");
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    let started = clock.instant();
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 2));
    assert_eq!(replica.locks("lost"), 1);
    assert_eq!(
        replica.upstream.fetches(),
        1,
        "fetched itself after the wait"
    );
    assert!(clock.instant() - started >= LOCK_TTL);
    assert!(
        store.value(&key()).is_some(),
        "and stored it for the others"
    );
}

#[tokio::test]
async fn a_down_shared_tier_costs_one_call_per_request_then_none_and_memory_answers() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    store.inject(Fault::Down);
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let first = replica.ask().await;
    assert_eq!((first.cache, served(&first)), (CacheResult::Miss, 1));
    assert_eq!(replica.lookups("redis", "bypass"), 1);
    // The lookup, the lock and the store failed: the breaker is open.
    assert_eq!(
        replica.cache.redis_report().unwrap().state,
        shared::SharedState::Down
    );
    assert_eq!(replica.metrics.redis_errors.get(), 3);

    let calls = store.calls("get") + store.calls("set") + store.calls("try_lock");
    let second = replica.ask().await;
    assert_eq!((second.cache, served(&second)), (CacheResult::Hit, 1));
    assert_eq!(
        store.calls("get") + store.calls("set") + store.calls("try_lock"),
        calls
    );
}

#[tokio::test]
async fn a_corrupt_shared_value_is_a_miss_then_overwritten() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    store.put(&key(), b"RS\x02 written by something else");
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 1));
    assert_eq!(replica.lookups("redis", "miss"), 1);
    let stored = store.value(&key()).unwrap();
    assert_eq!(
        CachedList::decode(&stored, bounds()).map(|l| l.descriptors.len()),
        Some(1)
    );
}

#[tokio::test]
async fn a_shared_entry_from_the_future_is_a_miss_then_overwritten() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let ahead = policy::MAX_CLOCK_SKEW + Duration::from_millis(1);
    let from_the_future = CachedList::new(
        listed(5, false),
        T0 + u64::try_from(ahead.as_millis()).unwrap(),
    );
    store.put(&key(), &from_the_future.encode());
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 1));
    assert_eq!(replica.lookups("redis", "miss"), 1);
    let stored = CachedList::decode(&store.value(&key()).unwrap(), bounds()).unwrap();
    assert_eq!((stored.fetched_at_ms, stored.descriptors.len()), (T0, 1));
}

#[tokio::test]
async fn a_shared_value_that_inflates_past_the_bound_is_a_miss_then_overwritten() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    // Small stored, huge decoded: one annotation of 20 MiB of the same letter.
    let bomb = CachedList::new(
        UpstreamReferrers {
            descriptors: vec![
                serde_json::from_value(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", "e".repeat(64)),
                    "size": 10,
                    "annotations": {"a": "x".repeat(20 * 1024 * 1024)},
                }))
                .unwrap(),
            ],
            ..listed(0, false)
        },
        T0,
    );
    let bytes = bomb.encode();
    assert!(bytes.len() <= config().max_entry_bytes);
    store.put(&key(), &bytes);
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 2));
    assert_eq!(replica.lookups("redis", "miss"), 1);
    assert_eq!(replica.upstream.fetches(), 1);
    let stored = CachedList::decode(&store.value(&key()).unwrap(), bounds()).unwrap();
    assert_eq!(stored.descriptors.len(), 2, "overwritten");
}

#[tokio::test]
async fn a_shared_value_over_max_entry_bytes_is_a_miss_then_overwritten() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    // A well-formed entry another writer stored with a larger bound: digests that do not
    // compress.
    let large = CachedList::new(
        UpstreamReferrers {
            descriptors: (0u32..40_000)
                .map(|i| {
                    let digest = hex::encode(sha2::Sha256::digest(i.to_le_bytes()));
                    serde_json::from_value(serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{digest}"),
                        "size": 10,
                    }))
                    .unwrap()
                })
                .collect(),
            ..listed(0, false)
        },
        T0,
    );
    let bytes = large.encode();
    assert!(bytes.len() > config().max_entry_bytes, "{}", bytes.len());
    store.put(&key(), &bytes);
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 1));
    assert_eq!(replica.upstream.fetches(), 1);
    let stored = CachedList::decode(&store.value(&key()).unwrap(), bounds()).unwrap();
    assert_eq!(stored.descriptors.len(), 1, "overwritten");
}

#[tokio::test]
async fn an_expired_shared_entry_is_a_miss() {
    let clock = clock();
    let store = Arc::new(StubStore::default());
    let old = CachedList::new(listed(1, false), T0);
    store.put(&key(), &old.encode());
    clock.advance(KEEP_STALE_FOR);
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(2)),
        &clock,
    );
    let answer = replica.ask().await;
    assert_eq!((answer.cache, served(&answer)), (CacheResult::Miss, 2));
    assert_eq!(replica.lookups("redis", "miss"), 1);
}

/// A miss that starts its flight just after another flight for the key ended (and stored a
/// fresh entry) takes that entry: one upstream call for a stampede, however the requests
/// interleave.
#[tokio::test]
async fn a_flight_started_after_another_stored_the_key_makes_no_upstream_call() {
    let clock = clock();
    let replica = Replica::new(None, StubUpstream::answering(Answer::Referrers(2)), &clock);
    let first = replica.ask().await;
    assert_eq!((first.cache, served(&first)), (CacheResult::Miss, 2));
    assert_eq!(replica.upstream.fetches(), 1);

    // The second request's lookup missed before the first flight stored; its flight starts now.
    let fetched = Arc::clone(&replica.cache)
        .fetch(key(), target(), digest(), None)
        .await;
    assert_eq!(
        (
            fetched.upstream,
            fetched.list.map(|list| list.descriptors.len())
        ),
        (UpstreamResult::Api, Some(2))
    );
    assert_eq!(replica.upstream.fetches(), 1, "no second upstream call");

    // Once the entry is stale, a miss flight does fetch again.
    clock.advance(FRESH_FOR + Duration::from_secs(1));
    let fetched = Arc::clone(&replica.cache)
        .fetch(key(), target(), digest(), None)
        .await;
    assert!(fetched.upstream == UpstreamResult::Api && fetched.list.is_some());
    assert_eq!(replica.upstream.fetches(), 2);
}

/// A purge reads the indexes a page at a time: a subject whose list is past the first page is
/// found, the repository's other lists stay, and a registry's purge takes every list of every
/// repository however many pages they fill.
#[tokio::test]
async fn a_purge_pages_through_the_indexes_and_takes_what_its_scope_names() {
    let (clock, store) = (
        Arc::new(ManualClock::at(T0)),
        Arc::new(StubStore::default()),
    );
    let replica = Replica::new(
        Some(&store),
        StubUpstream::answering(Answer::Referrers(1)),
        &clock,
    );
    let namespace = config().namespace;
    let subject = |n: u32| -> Digest { format!("sha256:{n:064x}").parse().unwrap() };
    let store_list = |repository: &str, n: u32| {
        let key = keys::cache_key(&namespace, REGISTRY_ID, "0a:1b", repository, &subject(n));
        let index = ListIndex::new(&namespace, REGISTRY_ID, repository);
        let store = Arc::clone(&store);
        async move {
            // Later subjects expire later: they come last in the index.
            let ttl = Duration::from_secs(3_600 + u64::from(n));
            SharedStore::set(store.as_ref(), &key, b"v", ttl, &index, T0)
                .await
                .unwrap();
            key
        }
    };
    let mut nginx = Vec::new();
    for n in 0..1_234 {
        nginx.push(store_list("library/nginx", n).await);
    }
    let other = store_list("library/other", 0).await;
    let scope = |repository: Option<&str>, digest: Option<Digest>| PurgeScope {
        registry_id: REGISTRY_ID,
        repository: repository.map(str::to_owned),
        digest,
    };

    let last = replica
        .cache
        .remove_shared(&scope(Some("library/nginx"), Some(subject(1_233))))
        .await;
    assert_eq!(last, Some(vec![nginx[1_233].clone()]), "past two pages");
    assert!(store.value(&nginx[1_233]).is_none());
    assert!(store.value(&nginx[0]).is_some() && store.value(&other).is_some());

    let all = replica
        .cache
        .remove_shared(&scope(None, None))
        .await
        .unwrap();
    assert_eq!(all.len(), 1_234);
    assert!(all.contains(&other) && all.contains(&nginx[0]));
    assert!(store.value(&other).is_none());
    let registry_index = keys::registry_index(&namespace, REGISTRY_ID);
    assert!(
        store.index(&registry_index).is_empty(),
        "no repository left"
    );
}
