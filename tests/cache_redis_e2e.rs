//! The Redis tier, end to end, with real `redis-server` processes: replicas share entries,
//! Sentinel (with a failover) works, and a dead, restarted or black-holed Redis never turns
//! into an error for a client.

use std::time::{Duration, Instant};

use e2e::Sidecar;
use e2e::proxy_world::{ProxyWorld, ask, metric};
use e2e::redis::{BlackHole, RedisServer, SentinelSetup};
use e2e::scripted_upstream::{ScriptedUpstream, scripted_world, sidecar_for};

/// The Redis breaker's cool-down in the service: after it, Redis is tried again.
const REDIS_COOLDOWN: Duration = Duration::from_secs(10);

fn redis_cache(url: &str) -> String {
    format!("  backend: redis\n  redis_url: \"{url}\"\n  redis_timeout: 250ms\n  fresh_for: 10m\n")
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
    let world = ProxyWorld::start().await;
    let redis = RedisServer::start();
    let first = world.sidecar(&redis_cache(&redis.url(10)), "");
    let second = world.sidecar(&redis_cache(&redis.url(10)), "");
    let path = world.path();

    let (_, cache, upstream, listed) = ask(&first, &path).await;
    assert_eq!(
        (cache.as_str(), upstream.as_str(), listed.len()),
        ("miss", "api", 3)
    );
    let stored = redis.client(10).keys("referrers-sidecar:v1:*");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(&format!(":team/app@{}", world.sample.subject.digest)));
    assert!(
        redis.client(10).pttl(&stored[0]) > 0,
        "stored with a lifetime"
    );
    assert!(
        redis.client(0).keys("*").is_empty(),
        "only the configured DB index is used"
    );

    let (_, cache, upstream, again) = ask(&second, &path).await;
    assert_eq!((cache.as_str(), upstream.as_str()), ("hit", "api"));
    assert_eq!(again, listed);
    assert_eq!(
        world.upstream_referrers_requests(),
        1,
        "the second replica asked nobody upstream"
    );
    let metrics = second.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "harbor_referrers_cache_lookups_total{result=\"hit\",tier=\"memory\"}"
        ),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "harbor_referrers_cache_stores_total{tier=\"redis\"}"
        ),
        0.0
    );
    assert_eq!(
        readyz(&second).await["redis"]["state"],
        "up",
        "readyz reports the Redis tier"
    );
}

#[tokio::test]
async fn a_corrupt_value_under_a_key_is_a_miss_then_overwritten() {
    let world = ProxyWorld::start().await;
    let redis = RedisServer::start();
    let path = world.path();
    {
        let first = world.sidecar(&redis_cache(&redis.url(10)), "");
        ask(&first, &path).await;
    }
    let key = redis.client(10).keys("referrers-sidecar:v1:*").remove(0);
    redis.client(10).set_raw(&key, b"\x00not an entry of ours");

    let fresh = world.sidecar(&redis_cache(&redis.url(10)), "");
    let (status, cache, upstream, listed) = ask(&fresh, &path).await;
    assert_eq!(
        (status, cache.as_str(), upstream.as_str(), listed.len()),
        (200, "miss", "api", 3)
    );
    assert_eq!(world.upstream_referrers_requests(), 2);
    let value = redis.client(10).get_raw(&key).expect("overwritten");
    assert!(
        value.starts_with(b"RS\x01"),
        "the foreign value was replaced by a real entry"
    );
}

#[tokio::test]
async fn redis_killed_then_restarted_never_fails_a_request() {
    let world = ProxyWorld::start().await;
    let mut redis = RedisServer::start();
    let sidecar = world.sidecar(&redis_cache(&redis.url(10)), "");
    let path = world.path();
    assert_eq!(ask(&sidecar, &path).await.1, "miss");

    redis.kill();
    // Every request still answers, from the in-process tier, while the breaker opens.
    for _ in 0..6 {
        let (status, cache, _, listed) = ask(&sidecar, &path).await;
        assert_eq!((status, cache.as_str(), listed.len()), (200, "hit", 3));
    }
    // Cold keys need Redis for the lock and the store: they are answered without it.
    for i in 1..=4 {
        let cold = format!("/v2/hub-proxy/team/app/referrers/sha256:{i:064x}");
        let (status, cache, upstream, _) = ask(&sidecar, &cold).await;
        assert_eq!(
            (status, cache.as_str(), upstream.as_str()),
            (200, "miss", "api")
        );
    }
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(&metrics, "harbor_referrers_breaker_state{target=\"redis\"}"),
        1.0
    );
    assert!(metric(&metrics, "harbor_referrers_redis_errors_total") >= 1.0);
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "down");
    assert!(
        sidecar
            .logs()
            .iter()
            .any(|l| l.contains("Redis unavailable")),
        "the outage is logged"
    );

    redis.restart();
    // After the cool-down, a new entry goes to Redis again.
    let cold = format!("/v2/hub-proxy/team/app/referrers/sha256:{:064x}", 77);
    tokio::time::sleep(REDIS_COOLDOWN).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis.client(10).keys("referrers-sidecar:v1:*").is_empty() {
        assert!(
            Instant::now() < deadline,
            "Redis was not used again after its restart"
        );
        let (status, _, _, _) = ask(&sidecar, &cold).await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(&metrics, "harbor_referrers_breaker_state{target=\"redis\"}"),
        0.0
    );
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "up");
}

#[tokio::test]
async fn a_black_holed_redis_still_gets_answers() {
    let world = ProxyWorld::start().await;
    let hole = BlackHole::start();
    let sidecar = world.sidecar(&redis_cache(&hole.url(10)), "");
    let path = world.path();
    for _ in 0..5 {
        let (status, _, upstream, listed) = ask(&sidecar, &path).await;
        assert_eq!((status, upstream.as_str(), listed.len()), (200, "api", 3));
    }
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(&metrics, "harbor_referrers_breaker_state{target=\"redis\"}"),
        1.0
    );
    assert_eq!(readyz(&sidecar).await["redis"]["state"], "down");
}

#[tokio::test]
async fn sentinel_replicas_share_entries_across_a_master_failover() {
    let world = ProxyWorld::start().await;
    let mut sentinels = SentinelSetup::start();
    let url = sentinels.url(10);
    let first = world.sidecar(&redis_cache(&url), "");
    let second = world.sidecar(&redis_cache(&url), "");
    let path = world.path();
    assert_eq!(ask(&first, &path).await.1, "miss");
    assert_eq!(ask(&second, &path).await.1, "hit");
    assert_eq!(world.upstream_referrers_requests(), 1);

    sentinels.fail_over();
    // Subjects neither has seen: the first stores each in Redis once it reaches the new
    // master; the second can only have it from there.
    let deadline = Instant::now() + REDIS_COOLDOWN * 3;
    for i in 100.. {
        let cold = format!("/v2/hub-proxy/team/app/referrers/sha256:{i:064x}");
        let (status, _, _, _) = ask(&first, &cold).await;
        assert_eq!(status, 200, "requests are answered during the failover");
        let (status, cache, _, _) = ask(&second, &cold).await;
        assert_eq!(status, 200);
        if cache == "hit" {
            break;
        }
        assert!(Instant::now() < deadline, "the new master was never used");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn replicas_sharing_redis_make_one_upstream_fetch_for_a_cold_key() {
    // One referrer: one listing is one referrers request.
    let upstream = ScriptedUpstream::start(1);
    // Slow enough that both replicas ask while the first fetch is still running.
    upstream.slow_down(Duration::from_secs(3));
    let redis = RedisServer::start();
    let extra = format!(
        "upstream:\n  allow_private_realms: true\ncache:\n  backend: redis\n  redis_url: \"{}\"\n  lock_ttl: 10s\n",
        redis.url(10)
    );
    let (harbor, first) = scripted_world(&upstream, &extra);
    let second = sidecar_for(&harbor, &extra);
    let path = "/v2/hub-proxy/team/app/referrers/sha256:".to_owned() + &"5".repeat(64);
    let asks = (0..20).map(|i| {
        let sidecar = if i % 2 == 0 { &first } else { &second };
        ask(sidecar, &path)
    });
    let answers = futures_util::future::join_all(asks).await;
    for (status, _, upstream_result, listed) in &answers {
        assert_eq!(
            (*status, upstream_result.as_str(), listed.len()),
            (200, "api", 1)
        );
    }
    assert_eq!(
        upstream.referrers_requests(),
        1,
        "one fetch across both replicas"
    );
    let (first_metrics, second_metrics) = (first.metrics().await, second.metrics().await);
    let won = metric(
        &first_metrics,
        "harbor_referrers_cache_locks_total{result=\"won\"}",
    ) + metric(
        &second_metrics,
        "harbor_referrers_cache_locks_total{result=\"won\"}",
    );
    let lost = metric(
        &first_metrics,
        "harbor_referrers_cache_locks_total{result=\"lost\"}",
    ) + metric(
        &second_metrics,
        "harbor_referrers_cache_locks_total{result=\"lost\"}",
    );
    assert_eq!(
        (won, lost),
        (1.0, 1.0),
        "one replica fetched, the other waited for its entry"
    );
}

#[tokio::test]
async fn a_refresh_takes_a_fresher_entry_another_replica_stored() {
    let world = ProxyWorld::start().await;
    let redis = RedisServer::start();
    let cache = format!(
        "  backend: redis\n  redis_url: \"{}\"\n  fresh_for: 2s\n",
        redis.url(10)
    );
    let first = world.sidecar(&cache, "");
    let second = world.sidecar(&cache, "");
    let path = world.path();
    assert_eq!(ask(&first, &path).await.1, "miss");
    assert_eq!(
        ask(&second, &path).await.1,
        "hit",
        "from the first one's entry"
    );
    assert_eq!(world.upstream_referrers_requests(), 1);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The first replica refreshes its stale entry from the upstream and stores it in Redis.
    assert_eq!(ask(&first, &path).await.1, "stale");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &first.metrics().await,
        "harbor_referrers_cache_refreshes_total{outcome=\"refreshed\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the first replica's refresh did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(world.upstream_referrers_requests(), 2);

    // The second replica's copy is stale too; its refresh finds the first one's in Redis.
    assert_eq!(ask(&second, &path).await.1, "stale");
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &second.metrics().await,
        "harbor_referrers_cache_refreshes_total{outcome=\"refreshed\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the second replica's refresh did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ask(&second, &path).await.1, "hit");
    assert_eq!(
        world.upstream_referrers_requests(),
        2,
        "the second replica did not ask the upstream again"
    );
}
