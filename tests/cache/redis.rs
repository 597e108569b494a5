//! The Redis tier, end to end, with real `redis-server` processes: replicas share entries,
//! Sentinel (with a failover) works, and a dead, restarted or black-holed Redis never turns
//! into an error for a client.

use std::time::Duration;

use e2e::Sidecar;
use e2e::config::{Configure, Settings};
use e2e::metrics::{self, CacheResult, Lock, Refresh, Target, Tier};
use e2e::redis::{BlackHole, RedisServer, SentinelSetup};
use e2e::scripted_upstream::ScriptedUpstream;
use e2e::wait::{eventually, wait_for_metric};
use e2e::world::{Mirror, World, ask, ask_until, referrers_path};

/// A lifetime short enough to wait out, long enough that the request right after a miss still
/// finds the entry on a loaded machine.
const SHORT: Duration = Duration::from_secs(5);

/// The Redis tier at `url`, with the service's timeout and freshness spelled out.
fn redis_cache(url: &str) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.redis(url);
        s.cache.redis_timeout = Duration::from_millis(250);
        s.cache.fresh_for = Duration::from_secs(600);
    }
}

/// The referrers path of a made-up subject of `hub-proxy/team/app`.
fn cold(i: u32) -> String {
    referrers_path("hub-proxy/team/app", &format!("sha256:{i:064x}"))
}

async fn readyz(sidecar: &Sidecar) -> serde_json::Value {
    let response = e2e::get(&sidecar.url("/readyz")).await;
    assert_eq!(
        response.status(),
        200,
        "a Redis outage never makes the sidecar unready"
    );
    response.json().await.expect("readyz json")
}

#[tokio::test]
async fn a_second_replica_is_served_from_the_first_ones_entry() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let redis = RedisServer::start();
    let first = world.sidecar_with(redis_cache(&redis.url(10)));
    let second = world.sidecar_with(redis_cache(&redis.url(10)));
    let path = world.subject_path("hub-proxy");

    let listed = ask(&first, &path).await;
    assert_eq!(
        (
            listed.cache.as_str(),
            listed.upstream.as_str(),
            listed.digests.len()
        ),
        ("miss", "api", 3)
    );
    // The list, and the indexes of its registry and repository that purges read.
    let (indexes, stored): (Vec<String>, Vec<String>) = redis
        .client(10)
        .keys("referrers-sidecar:v2:*")
        .into_iter()
        .partition(|key| key.contains(":lists:"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    let subject = &world.mirror("hub-proxy").sample.subject.digest;
    assert!(stored[0].ends_with(&format!(":team/app@{subject}")));
    assert!(
        redis.client(10).pttl(&stored[0]) > 0,
        "stored with a lifetime"
    );
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    assert!(indexes[0].ends_with(":lists:1") && indexes[1].ends_with(":lists:1:team/app"));
    for index in &indexes {
        assert!(
            redis.client(10).pttl(index) > 0,
            "{index} lives with its lists"
        );
    }
    assert!(
        redis.client(0).keys("*").is_empty(),
        "only the configured DB index is used"
    );

    let again = ask(&second, &path).await;
    assert_eq!(
        (again.cache.as_str(), again.upstream.as_str()),
        ("hit", "api")
    );
    assert_eq!(again.digests, listed.digests);
    assert_eq!(
        world.mirror("hub-proxy").referrers_requests(),
        1,
        "the second replica asked nobody upstream"
    );
    let metrics = second.metrics().await;
    assert_eq!(
        e2e::metric(
            &metrics,
            &metrics::cache_lookups(Tier::Memory, CacheResult::Hit)
        ),
        0.0
    );
    assert_eq!(
        e2e::metric(&metrics, &metrics::cache_stores(Tier::Redis)),
        0.0
    );
    assert_eq!(
        readyz(&second).await["redis"]["state"],
        "up",
        "readyz reports the Redis tier"
    );
}

#[tokio::test]
async fn redis_killed_then_restarted_never_fails_a_request() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let mut redis = RedisServer::start();
    let sidecar = world.sidecar_with(redis_cache(&redis.url(10)));
    let path = world.subject_path("hub-proxy");
    assert_eq!(ask(&sidecar, &path).await.cache, "miss");

    redis.kill();
    // Every request still answers, from the in-process tier, while the breaker opens.
    for _ in 0..6 {
        let answer = ask(&sidecar, &path).await;
        assert_eq!(
            (answer.status, answer.cache.as_str(), answer.digests.len()),
            (200, "hit", 3)
        );
    }
    // Cold keys need Redis for the lock and the store: they are answered without it.
    for i in 1..=4 {
        let answer = ask(&sidecar, &cold(i)).await;
        assert_eq!(
            (
                answer.status,
                answer.cache.as_str(),
                answer.upstream.as_str()
            ),
            (200, "miss", "api")
        );
    }
    assert_eq!(
        sidecar.metric(&metrics::breaker_state(Target::Redis)).await,
        1.0
    );
    assert!(sidecar.metric(&metrics::redis_errors()).await >= 1.0);
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "down");
    assert!(
        sidecar
            .logs()
            .iter()
            .any(|l| l.contains("Redis unavailable")),
        "the outage is logged"
    );

    redis.restart();
    // Once the breaker's cool-down is over, a new entry goes to Redis again: each ask is for
    // a subject not seen yet, so it cannot be answered from the in-process tier.
    let mut next = 77;
    eventually("Redis used again after its restart", async || {
        let answer = ask(&sidecar, &cold(next)).await;
        assert_eq!(answer.status, 200);
        next += 1;
        !redis.client(10).keys("referrers-sidecar:v2:*").is_empty()
    })
    .await;
    assert_eq!(
        sidecar.metric(&metrics::breaker_state(Target::Redis)).await,
        0.0
    );
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "up");
}

#[tokio::test]
async fn a_black_holed_redis_still_gets_answers() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let hole = BlackHole::start();
    let sidecar = world.sidecar_with(redis_cache(&hole.url(10)));
    let path = world.subject_path("hub-proxy");
    for _ in 0..5 {
        let answer = ask(&sidecar, &path).await;
        assert_eq!(
            (
                answer.status,
                answer.upstream.as_str(),
                answer.digests.len()
            ),
            (200, "api", 3)
        );
    }
    assert_eq!(
        sidecar.metric(&metrics::breaker_state(Target::Redis)).await,
        1.0
    );
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "down");
}

#[tokio::test]
async fn sentinel_replicas_share_entries_across_a_master_failover() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let mut sentinels = SentinelSetup::start();
    let url = sentinels.url(10);
    let first = world.sidecar_with(redis_cache(&url));
    let second = world.sidecar_with(redis_cache(&url));
    let path = world.subject_path("hub-proxy");
    assert_eq!(ask(&first, &path).await.cache, "miss");
    assert_eq!(ask(&second, &path).await.cache, "hit");
    assert_eq!(world.mirror("hub-proxy").referrers_requests(), 1);

    sentinels.fail_over();
    // Subjects neither has seen: the first stores each in Redis once it reaches the new
    // master; the second can only have it from there.
    let mut next = 100;
    eventually("the new master used by both replicas", async || {
        let subject = cold(next);
        next += 1;
        let answer = ask(&first, &subject).await;
        assert_eq!(
            answer.status, 200,
            "requests are answered during the failover"
        );
        let answer = ask(&second, &subject).await;
        assert_eq!(answer.status, 200);
        answer.cache == "hit"
    })
    .await;
}

#[tokio::test]
async fn replicas_sharing_redis_make_one_upstream_fetch_for_a_cold_key() {
    // One referrer: one listing is one referrers request.
    let upstream = ScriptedUpstream::start(1);
    let redis = RedisServer::start();
    let world = World::hub_proxy_over("scripted", &upstream.url());
    let cache = |s: &mut Settings| {
        s.redis(&redis.url(10));
        s.cache.lock_ttl = Duration::from_secs(10);
    };
    let (first, second) = (world.sidecar_with(cache), world.sidecar_with(cache));
    let path = cold(0x5555);
    // The first fetch is held upstream until both replicas have tried the cross-replica lock.
    upstream.hold();
    let asks = futures_util::future::join_all((0..20).map(|i| {
        let sidecar = if i % 2 == 0 { &first } else { &second };
        ask(sidecar, &path)
    }));
    let release = async {
        eventually("both replicas tried the lock", async || {
            let mut tried = 0.0;
            for sidecar in [&first, &second] {
                for result in Lock::ALL {
                    tried += sidecar.metric(&metrics::cache_locks(*result)).await;
                }
            }
            tried >= 2.0
        })
        .await;
        upstream.release();
    };
    let (answers, ()) = tokio::join!(asks, release);
    for answer in &answers {
        assert_eq!(
            (
                answer.status,
                answer.upstream.as_str(),
                answer.digests.len()
            ),
            (200, "api", 1)
        );
    }
    assert_eq!(
        upstream.referrers_requests(),
        1,
        "one fetch across both replicas"
    );
    let locks = async |result: Lock| {
        let series = metrics::cache_locks(result);
        first.metric(&series).await + second.metric(&series).await
    };
    assert_eq!(
        (locks(Lock::Won).await, locks(Lock::Lost).await),
        (1.0, 1.0),
        "one replica fetched, the other waited for its entry"
    );
}

#[tokio::test]
async fn a_refresh_takes_a_fresher_entry_another_replica_stored() {
    let world = World::hub_proxy(Mirror::with_referrers_api().await);
    let redis = RedisServer::start();
    let cache = |s: &mut Settings| {
        s.redis(&redis.url(10));
        s.cache.fresh_for = SHORT;
    };
    let (first, second) = (world.sidecar_with(cache), world.sidecar_with(cache));
    let path = world.subject_path("hub-proxy");
    let mirror = world.mirror("hub-proxy");
    assert_eq!(ask(&first, &path).await.cache, "miss");
    assert_eq!(
        ask(&second, &path).await.cache,
        "hit",
        "from the first one's entry"
    );
    assert_eq!(mirror.referrers_requests(), 1);

    // The first replica refreshes its stale entry from the upstream and stores it in Redis.
    let (hits, _) = ask_until(&first, &path, "stale").await;
    assert!(hits.iter().all(|a| a.cache == "hit"), "{hits:?}");
    wait_for_metric(&first, &metrics::cache_refreshes(Refresh::Refreshed), 1.0).await;
    assert_eq!(mirror.referrers_requests(), 2);

    // The second replica's copy is stale too; its refresh finds the first one's in Redis.
    assert_eq!(ask(&second, &path).await.cache, "stale");
    wait_for_metric(&second, &metrics::cache_refreshes(Refresh::Refreshed), 1.0).await;
    assert_eq!(ask(&second, &path).await.cache, "hit");
    assert_eq!(
        mirror.referrers_requests(),
        2,
        "the second replica did not ask the upstream again"
    );
}
